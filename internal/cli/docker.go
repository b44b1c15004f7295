package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
)

// createCluster creates a cluster with the driver named drv.
func createCluster(ctx context.Context, stderr io.Writer, drv, root string, spec driver.Spec) (driver.Driver, error) {
	switch drv {
	case local.Name:
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (local processes)\n", spec.Cluster, spec.Replicas, spec.Version)
		return local.Create(ctx, spec, local.Options{Home: root})
	case docker.Name:
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (docker containers, image %s)\n",
			spec.Cluster, spec.Replicas, spec.Version, docker.ImageRef(spec.Service.Name(), spec.Version))
		return docker.Create(ctx, spec, docker.Options{Home: root})
	}
	return nil, usageErr("unknown --driver %q: use %s or %s", drv, local.Name, docker.Name)
}
