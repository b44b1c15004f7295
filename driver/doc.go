// Package driver defines how ladder reaches a cluster's replicas.
//
// A Driver puts replicas somewhere (local processes, containers) and acts on
// one replica at a time: list, replace with another release keeping data and
// identity, restart, run a one-off job of a release, tear down. Optional
// capabilities are separate small interfaces, found with a type assertion.
//
// The package also holds Status, the observed state of a running cluster
// (replicas, their health and store membership, per-table readiness). It is
// the contract between the reference registry, which reports it, the
// `cluster status` and `status` commands, which print it, and the upgrade
// engine, which waits on it. The engine never imports a concrete driver or
// the registry: it sees only these types.
//
// Invariants every driver keeps (the conformance suite checks them):
//   - Replicas returns the replicas in a stable order, by ID.
//   - Replace and Restart keep the replica's ID, data and address; they
//     return once the new process or container has started, not once it is
//     healthy: waiting for health is the caller's job.
//   - Every method is safe to repeat: replacing a replica with the release
//     it already runs restarts it; destroying a destroyed cluster succeeds.
package driver
