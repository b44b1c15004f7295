package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/drivertest"
	"github.com/ladder-dev/ladder/internal/dockertest"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func engine(t *testing.T) *client.Client { return dockertest.Engine(t) }

var imagesBuild string // the build the tests' clusters run

// images builds the release images of the suite and of the fault tests
// once per test process.
func images(t *testing.T, cli *client.Client) {
	t.Helper()
	imagesBuild = dockertest.Images(t, cli, append(slices.Clone(drivertest.Versions), faultFrom, faultTo))
}

// newCluster creates a cluster for a test and removes it afterwards, even
// if the test fails.
func newCluster(t *testing.T, cli *client.Client, version string, replicas int) *docker.Driver {
	t.Helper()
	return drivertest.Create(t, "test", 2*time.Minute, func(ctx context.Context, name string) (*docker.Driver, error) {
		spec := drivertest.Spec(name, version, "")
		spec.Replicas = replicas
		return docker.Create(ctx, spec, docker.Options{Home: t.TempDir(), Client: cli, StopGrace: 5 * time.Second, Build: imagesBuild})
	})
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real containers; skipped with -short")
	}
	cli := engine(t)
	images(t, cli)
	var cluster string
	drivertest.Run(t, func(t *testing.T, version string) driver.Driver {
		d := newCluster(t, cli, version, drivertest.Replicas)
		cluster = d.Cluster()
		return d
	})
	assertNothingLeft(t, cli, cluster)
}

func TestCreateRefusals(t *testing.T) {
	// Refusals come before the engine is asked: no engine needed.
	cli, err := docker.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	root := t.TempDir()
	tests := []struct {
		name string
		spec driver.Spec
		want error
	}{
		{name: "release not in the catalog", spec: driver.Spec{Service: service.Registry{}, Cluster: "refused", Version: "9.9.9", Replicas: 1}, want: driver.ErrNoArtifact},
		{name: "invalid name", spec: driver.Spec{Service: service.Registry{}, Cluster: "Not_Valid", Version: drivertest.From, Replicas: 1}},
		{name: "no replicas", spec: driver.Spec{Service: service.Registry{}, Cluster: "refused", Version: drivertest.From, Replicas: 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := docker.Create(ctx, tc.spec, docker.Options{Home: root, Client: cli, Build: imagesBuild})
			if err == nil {
				t.Fatal("Create succeeded, want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(home.ClusterDir(root, "refused")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Create left its folder behind (stat: %v)", err)
	}
	if _, err := docker.Open("refused", service.Registry{}, docker.Options{Home: root, Client: cli, Build: imagesBuild}); !errors.Is(err, home.ErrNoCluster) {
		t.Errorf("Open of a cluster never created: err = %v, want ErrNoCluster", err)
	}
}

func TestFindReplica(t *testing.T) {
	reps := []driver.Replica{{ID: "replica-1"}, {ID: "replica-2"}}
	key := func(r driver.Replica) string { return r.ID }
	r, err := docker.FindReplica(reps, key, "c", "replica-2")
	if err != nil || r.ID != "replica-2" {
		t.Errorf("FindReplica(replica-2) = %+v, %v; want replica-2", r, err)
	}
	// The error lists the replicas there are, for the person who mistyped.
	_, err = docker.FindReplica(reps, key, "c", "replica-9")
	if !errors.Is(err, driver.ErrNoReplica) || !strings.Contains(err.Error(), "(replicas: replica-1, replica-2)") {
		t.Errorf("FindReplica(replica-9): err = %v, want ErrNoReplica listing replica-1 and replica-2", err)
	}
}

func TestCreateExisting(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real containers; skipped with -short")
	}
	cli := engine(t)
	images(t, cli)
	d := newCluster(t, cli, drivertest.From, 1)
	root := d.Dir()[:len(d.Dir())-len("/clusters/"+d.Cluster())]
	_, err := docker.Create(context.Background(), driver.Spec{Service: service.Registry{}, Cluster: d.Cluster(), Version: drivertest.From, Replicas: 1},
		docker.Options{Home: root, Client: cli, Build: imagesBuild})
	if !errors.Is(err, home.ErrClusterExists) {
		t.Fatalf("Create of an existing cluster: err = %v, want ErrClusterExists", err)
	}
	// The folder is gone but the engine still holds the cluster: refused too.
	other := t.TempDir()
	_, err = docker.Create(context.Background(), driver.Spec{Service: service.Registry{}, Cluster: d.Cluster(), Version: drivertest.From, Replicas: 1},
		docker.Options{Home: other, Client: cli, Build: imagesBuild})
	if !errors.Is(err, home.ErrClusterExists) {
		t.Fatalf("Create over leftovers on the engine: err = %v, want ErrClusterExists", err)
	}
	o, err := docker.Open(d.Cluster(), service.Registry{}, docker.Options{Home: root, Client: cli, Build: imagesBuild})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	reps, err := o.Replicas(context.Background())
	if err != nil || len(reps) != 1 || !reps[0].Running || reps[0].Container == "" {
		t.Fatalf("Replicas through Open: %+v, %v; want one running replica with its container", reps, err)
	}
}

// assertNothingLeft fails if containers, volumes or networks of cluster
// remain on the engine.
func assertNothingLeft(t *testing.T, cli *client.Client, cluster string) {
	t.Helper()
	ctx := context.Background()
	f := make(client.Filters).Add("label", docker.LabelCluster+"="+cluster)
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Items {
		t.Errorf("container %v of cluster %s left behind", c.Names, cluster)
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Items {
		t.Errorf("volume %s of cluster %s left behind", v.Name, cluster)
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns.Items {
		t.Errorf("network %s of cluster %s left behind", n.Name, cluster)
	}
}

// TestReplaceRollsBack replaces a replica with an image that cannot start:
// Replace must fail and leave the replica running its old release, with
// its data, under its name and URL.
func TestReplaceRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real containers; skipped with -short")
	}
	cli := engine(t)
	images(t, cli)
	ctx := context.Background()
	const broken = "1.4.0"
	brokenImage(t, cli, broken)
	d := newCluster(t, cli, drivertest.From, 1)
	before, err := d.Replicas(ctx)
	if err != nil || len(before) != 1 {
		t.Fatalf("Replicas: %+v, %v", before, err)
	}
	ref := push(t, ctx, d, "replica-1", "rollback/app:v1")

	err = d.Replace(ctx, "replica-1", broken)
	if err == nil {
		t.Fatal("Replace with an image that cannot start succeeded")
	}
	t.Logf("Replace failed as it should: %v", err)
	after, err := d.Replicas(ctx)
	if err != nil || len(after) != 1 {
		t.Fatalf("Replicas after the failed Replace: %+v, %v", after, err)
	}
	got := after[0]
	if got.Version != drivertest.From || got.URL != before[0].URL || !got.Running || got.Container != before[0].Container {
		t.Errorf("after a failed Replace: %+v, want the old container %s running %s at %s",
			got, before[0].Container, drivertest.From, before[0].URL)
	}
	waitStatus(t, ctx, d, "settled", func(st upgrade.Status) bool { return st.Store.Settled && st.Version == drivertest.From })
	assertImages(t, ctx, d, ref)
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", docker.LabelCluster+"="+d.Cluster())})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.Items) != 1 {
		t.Errorf("%d containers after the rollback, want 1: %+v", len(cs.Items), cs.Items)
	}
}

// brokenImage tags the image of VERSION in the tests' build as an image
// without the ladder binary, for the length of the test; an image of that
// tag that existed before gets its tag back afterwards.
func brokenImage(t *testing.T, cli *client.Client, version string) {
	t.Helper()
	ctx := context.Background()
	ref := docker.ImageRef(service.RegistryName, version, imagesBuild)
	prev, err := cli.ImageInspect(ctx, ref)
	hadPrev := err == nil
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := map[string]string{"Dockerfile": "FROM scratch\nCOPY empty /empty\n", "empty": ""}
	for _, n := range []string{"Dockerfile", "empty"} {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build a broken image: %v", err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("build a broken image: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if hadPrev {
			if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: prev.ID, Target: ref}); err != nil {
				t.Errorf("give %s its tag back: %v", ref, err)
			}
		}
		if _, err := cli.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: !hadPrev}); err != nil {
			t.Errorf("remove the broken image: %v", err)
		}
	})
}
