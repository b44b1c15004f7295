package driver

import "errors"

var (
	// ErrNoCluster means the named cluster does not exist.
	ErrNoCluster = errors.New("no such cluster")
	// ErrClusterExists means a cluster of that name exists already.
	ErrClusterExists = errors.New("cluster exists")
	// ErrNoReplica means the replica ID is not part of the cluster.
	ErrNoReplica = errors.New("no such replica")
	// ErrNoArtifact means the release's binary or image is not available.
	ErrNoArtifact = errors.New("release artifact not available")
)
