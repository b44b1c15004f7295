package swarm_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/drivertest"
	ladderswarm "github.com/ladder-dev/ladder/driver/swarm"
	"github.com/ladder-dev/ladder/internal/dockertest"
	"github.com/ladder-dev/ladder/internal/swarmtest"
	"github.com/ladder-dev/ladder/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if !swarmtest.Leave() {
		code = 1
	}
	testbin.Cleanup()
	os.Exit(code)
}

func engine(t *testing.T) *client.Client { return swarmtest.Engine(t) }

var imagesBuild string

func images(t *testing.T, cli *client.Client) {
	t.Helper()
	imagesBuild = dockertest.Images(t, cli, drivertest.Versions)
}

func newCluster(t *testing.T, cli *client.Client, version string, replicas int) *ladderswarm.Driver {
	t.Helper()
	return drivertest.Create(t, "swtest", 3*time.Minute, func(ctx context.Context, name string) (*ladderswarm.Driver, error) {
		spec := drivertest.Spec(name, version, "")
		spec.Replicas = replicas
		d, err := ladderswarm.Create(ctx, spec, ladderswarm.Options{Home: t.TempDir(), Client: cli, StopGrace: 5 * time.Second, Build: imagesBuild})
		if err == nil {
			// Registered before drivertest.Create registers the destroy,
			// so it runs after it.
			t.Cleanup(func() { assertNothingLeft(t, cli, name) })
		}
		return d, err
	})
}

func assertNothingLeft(t *testing.T, cli *client.Client, name string) {
	t.Helper()
	left, err := ladderswarm.Leftovers(context.Background(), cli, name)
	if err != nil {
		t.Fatalf("leftovers: %v", err)
	}
	if left != "" {
		t.Errorf("after Destroy the swarm still holds %s of cluster %s", left, name)
	}
}

// TestOneReplica is the sample the normal suite runs: a one-replica
// cluster as a service, listed, replaced and destroyed.
func TestOneReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a swarm service; skipped with -short")
	}
	cli := engine(t)
	images(t, cli)
	d := newCluster(t, cli, drivertest.From, 1)
	ctx := context.Background()
	reps, err := d.Replicas(ctx)
	if err != nil || len(reps) != 1 || !reps[0].Running || reps[0].Version != drivertest.From {
		t.Fatalf("Replicas = %+v, %v; want one running replica of %s", reps, err, drivertest.From)
	}
	if err := d.Replace(ctx, reps[0].ID, drivertest.To); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	after, err := d.Replicas(ctx)
	if err != nil || len(after) != 1 || after[0].Version != drivertest.To || after[0].URL != reps[0].URL {
		t.Fatalf("after Replace: %+v, %v; want %s at %s", after, err, drivertest.To, reps[0].URL)
	}
	// The probe that asks a node whether it holds an image, run on this one.
	if err := d.ProbeImage(ctx, docker.ImageRef("registry", drivertest.To, imagesBuild)); err != nil {
		t.Errorf("probe an image the node holds: %v", err)
	}
	missing := docker.ImageRef("registry", "0.0.1", "nosuchbuild")
	if err := d.ProbeImage(ctx, missing); !errors.Is(err, driver.ErrNoArtifact) {
		t.Errorf("probe %s: err = %v, want ErrNoArtifact", missing, err)
	}
}

// TestConformance runs the driver suite; it takes minutes, so it runs only
// with LADDER_SWARM_TESTS=1.
func TestConformance(t *testing.T) {
	if os.Getenv("LADDER_SWARM_TESTS") != "1" {
		t.Skip("the swarm conformance suite takes minutes: run it with LADDER_SWARM_TESTS=1")
	}
	cli := engine(t)
	images(t, cli)
	drivertest.Run(t, func(t *testing.T, version string) driver.Driver {
		return newCluster(t, cli, version, drivertest.Replicas)
	})
}

func TestPlacement(t *testing.T) {
	for _, tc := range []struct {
		name, node, want string
		err              bool
	}{
		{"hostname", "node-a", "node.hostname==node-a", false},
		{"label", "ladder.slot=1", "node.labels.ladder.slot==1", false},
		{"empty label value", "ladder.slot=", "", true},
		{"empty", "", "", true},
		{"spaces", "node a", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ladderswarm.Constraint(tc.node)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("Constraint(%q) = %q, %v; want %q (error %v)", tc.node, got, err, tc.want, tc.err)
			}
		})
	}
	got := ladderswarm.Assign([]string{"replica-1", "replica-2", "replica-3"}, []string{"a", "b"})
	want := map[string]string{"replica-1": "a", "replica-2": "b", "replica-3": "a"}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("Assign: %s on %q, want %q", id, got[id], n)
		}
	}
}
