package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
)

// createdCluster is what `cluster create` needs of a new cluster.
type createdCluster interface {
	driver.Driver
	AdminPasswordFile() string
}

// createCluster creates a cluster with the driver named drv.
func createCluster(ctx context.Context, stderr io.Writer, drv, home string, spec driver.Spec) (createdCluster, error) {
	switch drv {
	case local.Name:
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (local processes)\n", spec.Cluster, spec.Replicas, spec.Version)
		return local.Create(ctx, spec, local.Options{Home: home})
	case docker.Name:
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (docker containers, image %s)\n",
			spec.Cluster, spec.Replicas, spec.Version, docker.ImageRef(spec.Version))
		return docker.Create(ctx, spec, docker.Options{Home: home})
	}
	return nil, usageErr("unknown --driver %q: use %s or %s", drv, local.Name, docker.Name)
}
