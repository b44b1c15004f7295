// Package faults is the fault matrix: real clusters upgraded by the ladder
// binary while a client pushes and pulls through the replicas, with one
// fault injected when a chosen step begins — a replica frozen (SIGSTOP,
// docker pause), killed (SIGKILL), restarted behind ladder's back, or cut
// off from its peers (docker only) — aimed at the replica being replaced, a
// follower, or the leader.
//
// Every case must end in a finished upgrade, or in a clean stop whose
// message names the replica, after which the same command finishes. A
// history check then reads back, on every replica, every tag the client
// was told was written (its manifest and its blobs), every image pushed
// before, and every seeded row. The run prints a table: the case, the time
// from the fault to the replica being named, the outcome, the requests
// that failed on every replica, and the writes lost.
//
// The tests run a fixed sample of cases; LADDER_FAULT_TESTS=1 runs the
// whole matrix for both drivers (an hour or more), and
// LADDER_FAULT_REPORT=FILE writes its table there too.
package faults
