package driver

import (
	"context"
	"fmt"
	"time"
)

// Replica is a replica as the driver sees it: where it runs, not how it is.
type Replica struct {
	ID string `json:"id"`
	// Version is the release the driver started the replica as.
	Version string `json:"version"`
	// URL is the base URL of the replica's API: the service's first port.
	URL string `json:"url"`
	// PID is the process id (local driver; 0 elsewhere).
	PID int `json:"pid,omitempty"`
	// Container is the container id (docker driver; empty elsewhere).
	Container string `json:"container,omitempty"`
	// Running reports whether the process or container is alive, as the
	// driver can tell without asking the replica itself.
	Running bool `json:"running"`
	// Paused reports that the process or container is stopped dead
	// (SIGSTOP, docker pause): alive, and doing nothing.
	Paused bool `json:"paused,omitempty"`
}

// Job is a one-off command run with a release's artifact against the
// cluster, such as a data migration. Args are the service's arguments;
// the service adds whatever connects the job to the cluster.
type Job struct {
	Name string
	Args []string
	// Secrets maps the cluster's secrets to their files as the job sees
	// them; the driver fills it in.
	Secrets map[string]string
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

// LogTailer is implemented by drivers that can show the last lines a
// replica logged, for errors that say why it stopped.
type LogTailer interface {
	LogTail(ctx context.Context, id string, lines int) string
}

// Spec describes a cluster to create.
type Spec struct {
	Cluster string
	// Service is what the replicas run.
	Service  Service
	Version  string
	Replicas int
	// Secrets are files every replica is given, by name (the registry's
	// "admin-password"). Drivers keep them readable only by their owner.
	Secrets map[string][]byte
	// Timeout bounds the wait for the new cluster's replicas to start.
	Timeout time.Duration
}

// MaxReplicas is the largest cluster a driver creates.
const MaxReplicas = 9

// Validate checks what every driver needs of a spec: a service, a release
// it has, and a replica count in range. It returns the spec with the
// version normalized.
func (s Spec) Validate() (Spec, error) {
	if s.Service == nil {
		return s, fmt.Errorf("create cluster %s: no service given", s.Cluster)
	}
	if s.Replicas < 1 || s.Replicas > MaxReplicas {
		return s, fmt.Errorf("%w: replica count %d: use 1 to %d (3 or 5 tolerate a failed replica)", ErrInvalidSpec, s.Replicas, MaxReplicas)
	}
	a, err := s.Service.Artifact(s.Version)
	if err != nil {
		return s, err
	}
	s.Version = a.Version
	return s, nil
}
