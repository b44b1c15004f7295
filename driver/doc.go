// Package driver is the port through which ladder reaches a cluster's
// replicas, and nothing else.
//
// A Driver puts replicas somewhere (local processes, containers) and acts on
// one replica at a time: list, replace with another release keeping data and
// identity, restart, run a one-off job of a release, tear down. Optional
// capabilities are separate small interfaces, found with a type assertion.
// What a replica runs comes from a Service: the program of a release, its
// command line for a placement the driver chose, the ports it needs. A
// driver never knows which service it runs.
//
// Invariants every driver keeps (the conformance suite, drivertest, checks
// them):
//   - Replicas returns the replicas in a stable order, by ID.
//   - Replace and Restart keep the replica's ID, data and address; they
//     return once the new process or container has started, not once it is
//     healthy: waiting for health is the caller's job.
//   - Every method is safe to repeat: replacing a replica with the release
//     it already runs restarts it; destroying a destroyed cluster succeeds.
package driver
