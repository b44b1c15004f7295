package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
)

// createCluster creates a cluster with the driver named drv; build is the
// docker driver's image build ("": the newest that holds the release).
func createCluster(ctx context.Context, stderr io.Writer, drv, build, root string, spec driver.Spec) (driver.Driver, error) {
	switch drv {
	case local.Name:
		if build != "" {
			return nil, usageErr("--build names docker images: it goes with --driver docker")
		}
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (local processes)\n", spec.Cluster, spec.Replicas, spec.Version)
		return local.Create(ctx, spec, local.Options{Home: root})
	case docker.Name:
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (docker containers)\n", spec.Cluster, spec.Replicas, spec.Version)
		d, err := docker.Create(ctx, spec, docker.Options{Home: root, Build: build})
		if err == nil {
			ref, _ := d.ImageOf(ctx, spec.Version)
			fmt.Fprintf(stderr, "  images of build %s (%s)\n", d.Build(), ref)
		}
		return d, err
	}
	return nil, usageErr("unknown --driver %q: use %s or %s", drv, local.Name, docker.Name)
}
