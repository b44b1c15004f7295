package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/driver/swarm"
)

// createCluster creates a cluster with the driver named drv; build is the
// docker driver's image build ("": the newest that holds the release).
func createCluster(ctx context.Context, stderr io.Writer, o createOpts, root string, spec driver.Spec) (driver.Driver, error) {
	drv, build := o.driver, o.build
	if len(o.nodes) > 0 && drv != swarm.Name {
		return nil, usageErr("--nodes places swarm services: it goes with --driver swarm")
	}
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
	case swarm.Name:
		fmt.Fprintf(stderr, "creating cluster %s: %d replicas of release %s (swarm services)\n", spec.Cluster, spec.Replicas, spec.Version)
		d, err := swarm.Create(ctx, spec, swarm.Options{Home: root, Build: build, Nodes: o.nodes})
		if errors.Is(err, swarm.ErrNoSwarm) {
			return nil, withCode(ExitUsage, err)
		}
		if err == nil {
			fmt.Fprintf(stderr, "  images of build %s (%s)\n", d.Build(), docker.ImageRef(spec.Service.Name(), spec.Version, d.Build()))
		}
		return d, err
	}
	return nil, usageErr("unknown --driver %q: use %s, %s or %s", drv, local.Name, docker.Name, swarm.Name)
}
