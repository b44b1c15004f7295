package etcd

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

var (
	// ErrVersion is wrapped by errors about a string that is not an etcd
	// release version.
	ErrVersion = errors.New("invalid etcd version")
	// ErrNotCached: the release has not been fetched into the cache.
	ErrNotCached = errors.New("etcd release not cached")
	// ErrWrongBuild: a built program does not report the release it was
	// built from.
	ErrWrongBuild = errors.New("build reports another version")
	// ErrBadSnapshot: a backup stream ended early or its checksum does not
	// match.
	ErrBadSnapshot = errors.New("bad snapshot stream")
	// ErrSnapshotBehind: a member's newest snapshot does not cover every
	// raft entry written before the cluster ran etcd 3.6, so etcd 3.7 would
	// panic replaying its log (see CheckSnapshots).
	ErrSnapshotBehind = errors.New("member snapshot does not cover pre-3.6 log entries")
	// ErrNotAllOn36: the cluster does not yet run etcd 3.6 on every member,
	// so no barrier for pre-3.6 entries can be set.
	ErrNotAllOn36 = errors.New("not every member runs etcd 3.6")
)

// SnapshotBehindError names the members whose newest snapshot is below the
// barrier: starting any of them on etcd 3.7 would replay (and panic on)
// log entries written before the cluster ran 3.6.
type SnapshotBehindError struct {
	Barrier uint64
	// Behind maps a member (its name, or whatever the caller keyed the
	// indexes by) to its newest snapshot index.
	Behind map[string]uint64
}

func (e *SnapshotBehindError) Error() string {
	var parts []string
	for _, m := range sortedKeys(e.Behind) {
		parts = append(parts, fmt.Sprintf("%s at %d", m, e.Behind[m]))
	}
	return fmt.Sprintf("check snapshots before etcd 3.7: %s, barrier %d: %v (make every member snapshot on 3.6 first: "+
		"propose entries until each has, or restart it on 3.6 with a low --snapshot-count such as 100)",
		strings.Join(parts, ", "), e.Barrier, ErrSnapshotBehind)
}

func (e *SnapshotBehindError) Unwrap() error { return ErrSnapshotBehind }

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
