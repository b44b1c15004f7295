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
//
// Invariants:
//   - A release folder in the cache is complete or absent: builds are
//     checked (etcd --version reports the release) and renamed into place.
//
// etcd's upgrade rules, for the policy that uses this package: patch
// upgrades freely; one minor at a time; the latest patch of a minor before
// the next minor (3.5 needs at least 3.5.20, later guides say 3.5.26, to
// go to 3.6; 3.6 needs 3.6.11 to go to 3.7). The cluster version (GET
// /version, etcdcluster) is the lowest minor any member runs; it moves up
// within seconds once the last member runs the new minor, and a hop is
// finished only then.
package etcd
