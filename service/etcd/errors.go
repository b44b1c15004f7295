package etcd

import "errors"

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
)
