// Package etcd is what ladder knows about upgrading real etcd clusters:
// the releases it can build, how to read a cluster's state, how to back it
// up, and the one hazard of the 3.6 → 3.7 hop the etcd guides do not name.
//
// It is a library of plain functions over client URLs, data directories
// and a release cache. It starts no members and decides nothing about
// order: drivers run the processes or containers, and the upgrade engine
// waits and decides. Every function that waits or does I/O takes a
// context first and logs through the *slog.Logger it is given (nil
// discards); nothing prints.
//
//   - Releases, Fetch, Cached: the built-in list of etcd releases the Go
//     module proxy serves, and static builds of etcd and etcdctl cached
//     under cacheDir/etcd/<version>/ (minutes to build, so built once).
//   - Probe, Prober, Settled: each member's maintenance status, health
//     (/health?serializable=true), readiness (/readyz) and cluster version
//     (/version), every request bounded by ProbeTimeout so a frozen member
//     is named within about two seconds; and the settled rule the engine
//     waits on before it takes a member down.
//   - Backup: a consistent snapshot of one member's store, checksum
//     verified, in the format `etcdctl snapshot save` writes.
//   - Barrier, SnapshotIndex, CheckSnapshots, ForceSnapshots: the 3.6 → 3.7
//     hazard (see hazard.go): detect it, fix it, verify the fix.
//
// Invariants:
//   - A release folder in the cache is complete or absent: builds are
//     checked (etcd --version reports the release) and renamed into place.
//   - Probe never fails as a whole: a member that cannot be asked is in
//     the report with the reason, so callers always see every member.
//   - Nothing here changes a cluster's keys. Barrier and ForceSnapshots
//     propose raft entries, but only no-op transactions.
//
// etcd's upgrade rules, for the policy that uses this package: patch
// upgrades freely; one minor at a time; the latest patch of a minor before
// the next minor (3.5 needs at least 3.5.20, later guides say 3.5.26, to
// go to 3.6; 3.6 needs 3.6.11 to go to 3.7). The cluster version (GET
// /version, etcdcluster) is the lowest minor any member runs; it moves up
// within seconds once the last member runs the new minor, and a hop is
// finished only then.
package etcd
