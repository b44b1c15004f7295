package driver

import (
	"context"
	"time"
)

// Replica is a replica as the driver sees it: where it runs, not how it is.
type Replica struct {
	ID string `json:"id"`
	// Version is the release the driver started the replica as.
	Version string `json:"version"`
	// URL is the base URL of the replica's HTTP API (status, health, UI, OCI).
	URL string `json:"url"`
	// PID is the process id (local driver; 0 elsewhere).
	PID int `json:"pid,omitempty"`
	// Container is the container id (docker driver; empty elsewhere).
	Container string `json:"container,omitempty"`
	// Running reports whether the process or container is alive, as the
	// driver can tell without asking the replica itself.
	Running bool `json:"running"`
}

// ExitAddrInUse is the exit status of a replica process (`ladder registry
// serve`) that could not listen because an address was taken. A driver
// creating a cluster may then choose other ports and try again.
const ExitAddrInUse = 5

// Job is a one-off command run with a release's artifact against the
// cluster, such as a data migration. Args are the arguments after the
// program name; the driver adds whatever connects the job to the cluster.
type Job struct {
	Name string
	Args []string
}

// Driver reaches the replicas of one cluster.
type Driver interface {
	// Name is the driver's name: "local", "docker".
	Name() string
	// Cluster is the name of the cluster the driver is bound to.
	Cluster() string
	// Replicas lists the replicas, ordered by ID.
	Replicas(ctx context.Context) ([]Replica, error)
	// Replace stops replica id and starts it again as version, with the
	// same data and identity.
	Replace(ctx context.Context, id, version string) error
	// Restart stops replica id and starts it again as the same version.
	Restart(ctx context.Context, id string) error
	// RunJob runs a one-off job of version's artifact and returns its
	// combined output. A non-zero exit is an error that carries the output.
	RunJob(ctx context.Context, version string, job Job) ([]byte, error)
	// Destroy stops every replica and removes everything the cluster owns.
	Destroy(ctx context.Context) error
}

// ArtifactChecker is implemented by drivers that can tell, before anything
// changes, whether a release's artifact (binary, image) is present.
type ArtifactChecker interface {
	CheckArtifact(ctx context.Context, version string) error
}

// Freezer is implemented by drivers that can stop a replica dead without
// ending it (SIGSTOP, docker pause), for fault demonstrations and tests.
type Freezer interface {
	Freeze(ctx context.Context, id string) error
	Thaw(ctx context.Context, id string) error
}

// Spec describes a cluster to create.
type Spec struct {
	Cluster       string
	Version       string
	Replicas      int
	AdminPassword string
	// Timeout bounds the wait for the new cluster to become healthy.
	Timeout time.Duration
}
