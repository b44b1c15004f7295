package docker_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/drivertest"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// Fault tests: real containers paused, killed and cut off the network,
// alone and in the middle of an upgrade. They take a few minutes, so
// they run only with LADDER_FAULT_TESTS=1.

// The upgrade the fault tests run: one hop with a data migration.
const (
	faultFrom = "2.3.2"
	faultTo   = "3.0.1"
)

func faultTests(t *testing.T) *client.Client {
	t.Helper()
	if os.Getenv("LADDER_FAULT_TESTS") != "1" {
		t.Skip("fault tests run with LADDER_FAULT_TESTS=1")
	}
	cli := engine(t)
	images(t, cli)
	return cli
}

// fault is one way to hurt a replica, and the way to undo it by hand.
type fault struct {
	name   string
	inject func(d *docker.Driver, ctx context.Context, id string) error
	// heal undoes the fault by hand. During an upgrade only a partition
	// is healed this way; the engine's remediation (a restart) is left to
	// heal the others.
	heal func(d *docker.Driver, ctx context.Context, id string) error
	// running is what Replicas reports for the hurt replica.
	running bool
}

var faults = []fault{
	{name: "paused", inject: (*docker.Driver).Freeze, heal: (*docker.Driver).Thaw, running: true},
	{name: "killed", inject: (*docker.Driver).Kill, heal: (*docker.Driver).Restart, running: false},
	{name: "partitioned", inject: (*docker.Driver).Disconnect, heal: (*docker.Driver).Reconnect, running: true},
}

// TestFaultRecovery hurts one replica of a settled cluster, checks that
// the status shows it down and the store not settled, writes while it is
// down, heals it, and checks that the store settles again with nothing
// lost on any replica.
func TestFaultRecovery(t *testing.T) {
	cli := faultTests(t)
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			ctx := context.Background()
			d := newCluster(t, cli, faultFrom, 3)
			waitStatus(t, ctx, d, "settled", func(st upgrade.Status) bool { return st.Store.Settled })
			before := push(t, ctx, d, "replica-1", "faults/before:v1")
			const hurt = "replica-2"
			if err := f.inject(d, ctx, hurt); err != nil {
				t.Fatalf("%s %s: %v", f.name, hurt, err)
			}
			reps, err := d.Replicas(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r := replicaOf(reps, hurt); r.Running != f.running {
				t.Errorf("a %s replica: Running = %v, want %v", f.name, r.Running, f.running)
			}
			waitStatus(t, ctx, d, hurt+" down and lagging", func(st upgrade.Status) bool {
				r, _ := st.Replica(hurt)
				return !r.Healthy && !st.Store.Settled && lagging(st, hurt)
			})
			// The two others keep a quorum: writes go on.
			during := push(t, ctx, d, "replica-3", "faults/during:v1")
			if err := f.heal(d, ctx, hurt); err != nil {
				t.Fatalf("heal %s: %v", hurt, err)
			}
			waitStatus(t, ctx, d, "settled again", func(st upgrade.Status) bool { return st.Store.Settled })
			assertImages(t, ctx, d, before, during)
			assertSameStats(t, ctx, d)
		})
	}
}

func waitStatus(t *testing.T, ctx context.Context, d driver.Driver, what string, cond func(upgrade.Status) bool) upgrade.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var st upgrade.Status
	for {
		reps, err := d.Replicas(ctx)
		if err == nil {
			st, _ = service.RegistryApp{Cluster: d.Cluster()}.Status(ctx, reps)
			if cond(st) {
				return st
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("cluster %s not %s: %+v", d.Cluster(), what, st)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func lagging(st upgrade.Status, id string) bool {
	for _, tb := range st.Store.Tables {
		if slices.Contains(tb.Lagging, id) {
			return true
		}
	}
	return false
}

func replicaOf(reps []driver.Replica, id string) driver.Replica {
	for _, r := range reps {
		if r.ID == id {
			return r
		}
	}
	return driver.Replica{}
}

var adminAuth = remote.WithAuth(&authn.Basic{Username: "admin", Password: drivertest.AdminPassword})

// push writes a random image through replica via and returns its
// reference by digest (repository@sha256:...), retrying while the store
// elects a leader.
func push(t *testing.T, ctx context.Context, d driver.Driver, via, repoTag string) string {
	t.Helper()
	reps, err := d.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(replicaOf(reps, via).URL, "http://")
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	dg, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = remote.Write(ref, img, adminAuth, remote.WithContext(ctx))
		if err == nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	repo, _, _ := strings.Cut(repoTag, ":")
	return repo + "@" + dg.String()
}

// assertImages checks that every replica serves every image reference.
func assertImages(t *testing.T, ctx context.Context, d driver.Driver, refs ...string) {
	t.Helper()
	reps, err := d.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		host := strings.TrimPrefix(r.URL, "http://")
		for _, s := range refs {
			ref, err := name.ParseReference(host+"/"+s, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			img, err := remote.Image(ref, remote.WithContext(ctx))
			if err != nil {
				t.Errorf("replica %s: pull %s: %v", r.ID, s, err)
				continue
			}
			if _, err := img.RawManifest(); err != nil {
				t.Errorf("replica %s: manifest of %s: %v", r.ID, s, err)
			}
		}
	}
}

// assertSameStats checks that every replica counts the same rows.
func assertSameStats(t *testing.T, ctx context.Context, d driver.Driver) {
	t.Helper()
	reps, err := d.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var first map[string]int
	for _, r := range reps {
		got, err := registry.Stats(ctx, nil, r.URL)
		if err != nil {
			t.Errorf("stats of %s: %v", r.ID, err)
			continue
		}
		if first == nil {
			first = got
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Errorf("stats differ: %s has %v, %s has %v", reps[0].ID, first, r.ID, got)
		}
	}
}
