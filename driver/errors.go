package driver

import "errors"

var (
	// ErrNoReplica means the replica ID is not part of the cluster.
	ErrNoReplica = errors.New("no such replica")
	// ErrNoArtifact means the release's binary or image is not available.
	ErrNoArtifact = errors.New("release artifact not available")
	// ErrInvalidSpec means a cluster spec cannot be created as given.
	ErrInvalidSpec = errors.New("invalid cluster spec")
)
