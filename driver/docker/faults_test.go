package docker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
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

// TestFaultDuringUpgrade runs an upgrade with a migration and hurts a
// replica other than the one being rolled, once, as the roll of the second
// replica begins. Paused and killed replicas are left to the engine's
// remediation; a partition heals by itself a few seconds later. The
// upgrade must finish with every replica on the target, the store settled
// and every image pushed before it readable on every replica.
func TestFaultDuringUpgrade(t *testing.T) {
	cli := faultTests(t)
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			d := newCluster(t, cli, faultFrom, 3)
			waitStatus(t, ctx, d, "settled", func(st upgrade.Status) bool { return st.Store.Settled })
			var refs []string
			for i := range 3 {
				refs = append(refs, push(t, ctx, d, "replica-1", fmt.Sprintf("upgrade/app%d:v1", i)))
			}

			var (
				once     sync.Once
				hurt     string
				injected = make(chan error, 1)
				rolls    int
			)
			opts := upgrade.DefaultOptions()
			opts.StallAfter = 4 * time.Second
			opts.MaxWait = 2 * time.Minute
			opts.PollInterval = 200 * time.Millisecond
			opts.RemediationBudget = 4
			opts.BackupDir = t.TempDir()
			opts.Knobs.BeforeAct = func(step string) error {
				if !isRollReplace(step) {
					return nil
				}
				rolls++
				if rolls != 2 {
					return nil
				}
				once.Do(func() {
					hurt = otherReplica(step)
					t.Logf("%s: %s %s", step, f.name, hurt)
					err := f.inject(d, ctx, hurt)
					if err == nil && f.name == "partitioned" {
						time.AfterFunc(5*time.Second, func() {
							if err := f.heal(d, context.WithoutCancel(ctx), hurt); err != nil {
								t.Errorf("heal the partition of %s: %v", hurt, err)
							}
						})
					}
					injected <- err
				})
				return nil
			}
			j, err := journal.Open(filepath.Join(t.TempDir(), "journal"))
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Make(service.Registry{}.Catalog(), policy.MustParse(faultFrom), policy.MustParse(faultTo), plan.Options{})
			if err != nil {
				t.Fatal(err)
			}
			e := &upgrade.Engine{Driver: d, App: service.RegistryApp{Cluster: d.Cluster(), Password: drivertest.AdminPassword}, Journal: j, Options: opts,
				OnEvent: func(ev upgrade.Event) {
					switch ev.Type {
					case upgrade.EventStepStart, upgrade.EventWaitProgress:
						return
					}
					t.Logf("event %s %s %s", ev.Type, ev.Step, ev.Message)
				}}
			runErr := e.Run(ctx, p)
			select {
			case err := <-injected:
				if err != nil {
					t.Fatalf("inject the fault: %v", err)
				}
			default:
				t.Fatal("the fault was never injected: no second roll step")
			}
			if runErr != nil {
				t.Fatalf("upgrade with a %s replica: %v", f.name, runErr)
			}
			st := waitStatus(t, ctx, d, "settled on "+faultTo, func(st upgrade.Status) bool {
				return st.Store.Settled && st.Version == faultTo
			})
			want, _ := service.Registry{}.Catalog().SchemaOf(policy.MustParse(faultTo))
			if st.SchemaVersion != want {
				t.Errorf("schema after the upgrade = %d, want %d", st.SchemaVersion, want)
			}
			assertImages(t, ctx, d, refs...)
			assertSameStats(t, ctx, d)
		})
	}
}

func isRollReplace(step string) bool {
	ref, err := upgrade.ParseStep(step)
	return err == nil && ref.Name == upgrade.StepReplace
}

// otherReplica picks a replica other than the one a roll step acts on.
func otherReplica(step string) string {
	ref, _ := upgrade.ParseStep(step)
	for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
		if id != ref.Replica {
			return id
		}
	}
	return ""
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
