package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const testPassword = "s3cret"

// testCluster builds the configs of n replicas on free loopback ports.
func testCluster(t *testing.T, name, release string, n int) []Config {
	t.Helper()
	blobs := filepath.Join(t.TempDir(), "blobs")
	cfgs := make([]Config, n)
	var initial []string
	for i := range cfgs {
		id := fmt.Sprintf("replica-%d", i+1)
		cfgs[i] = Config{ID: id, Cluster: name, Release: release, DataDir: filepath.Join(t.TempDir(), id),
			BlobDir: blobs, Listen: freeAddr(t), PeerListen: freeAddr(t), ClientListen: freeAddr(t),
			AdminPassword: testPassword, TickMs: 25, ElectionMs: 250, UnsafeNoFsync: true}
		initial = append(initial, id+"=http://"+cfgs[i].PeerListen)
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
	}
	return cfgs
}

// startCluster makes and starts a cluster of n replicas. Free ports are
// chosen and then released before the replicas bind them, so a test running
// in parallel may take one first: a bind failure is retried with new ports.
func startCluster(t *testing.T, name, release string, n int) ([]Config, []*Replica) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cfgs := testCluster(t, name, release, n)
		reps, err := tryStartAll(cfgs)
		if err == nil {
			for _, r := range reps {
				t.Cleanup(func() { _ = r.Close() })
			}
			return cfgs, reps
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			t.Fatal(err)
		}
		t.Logf("attempt %d: %v; retrying with other ports", attempt, err)
	}
}

// startAll starts the replicas together and waits until each serves.
func startAll(t *testing.T, cfgs []Config) []*Replica {
	t.Helper()
	reps, err := tryStartAll(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		t.Cleanup(func() { _ = r.Close() })
	}
	return reps
}

// tryStartAll starts the replicas and waits until each serves; on failure
// it closes those it started.
func tryStartAll(cfgs []Config) (reps []*Replica, err error) {
	defer func() {
		if err != nil {
			for _, r := range reps {
				_ = r.Close()
			}
			reps = nil
		}
	}()
	for _, c := range cfgs {
		r, err := Start(context.Background(), c)
		if err != nil {
			return reps, err
		}
		reps = append(reps, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, r := range reps {
		if err := r.WaitReady(ctx); err != nil {
			return reps, err
		}
	}
	return reps, nil
}

func members(reps []*Replica, cfgs []Config) []Member {
	out := make([]Member, len(cfgs))
	for i, c := range cfgs {
		out[i] = Member{ID: c.ID, Release: c.Release, URL: "http://" + c.Listen}
		if reps[i] != nil {
			out[i].URL = reps[i].URL()
		}
	}
	return out
}

func waitSettled(t *testing.T, name string, drs []Member) ClusterReport {
	t.Helper()
	var st ClusterReport
	waitFor(t, 30*time.Second, "the store to settle", func() (bool, string) {
		st = Probe(context.Background(), name, drs, nil)
		return st.Store.Settled, fmt.Sprintf("%+v", st)
	})
	return st
}

func TestClusterOfThree(t *testing.T) {
	ctx := context.Background()
	cfgs, reps := startCluster(t, "demo", "2.2.4", 3)
	drs := members(reps, cfgs)

	st := waitSettled(t, "demo", drs)
	if st.Version != "2.2.4" || st.SchemaVersion != 4 || st.Leader() == "" {
		t.Errorf("status = version %s, schema %d, leader %q", st.Version, st.SchemaVersion, st.Leader())
	}
	for _, r := range st.Replicas {
		if !r.Healthy || !r.UI || !r.Voter || r.Error != "" {
			t.Errorf("replica %+v", r)
		}
	}
	if len(st.Store.Tables) != len(Tables()) {
		t.Errorf("%d tables in status, want %d", len(st.Store.Tables), len(Tables()))
	}

	// A write through one replica is read on all.
	m := testImage("shared", 100, 200)
	if err := reps[0].Store().PutManifest(ctx, "team/app", m, "v1"); err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		got, err := r.Store().GetManifest(ctx, "team/app", m.Digest)
		if err != nil || got.Digest != m.Digest {
			t.Errorf("%s: GetManifest = %v", r.ID(), err)
		}
		stats, err := Stats(ctx, nil, r.URL())
		if err != nil || stats[TableManifests] != 1 || stats["schema_version"] != 4 || stats[TableReplicas] != 3 {
			t.Errorf("%s: stats = %v, %v", r.ID(), stats, err)
		}
	}
	waitSettled(t, "demo", drs)

	// The cluster view from any replica finds the peers through the store.
	var cl ClusterReport
	if _, err := getJSON(ctx, http.DefaultClient, reps[1].URL()+"/api/v1/cluster", &cl); err != nil {
		t.Fatal(err)
	}
	if len(cl.Replicas) != 3 || cl.Cluster != "demo" || cl.Version != "2.2.4" {
		t.Errorf("/api/v1/cluster = %+v", cl)
	}

	// The UI page and the OCI API answer.
	page := httpGet(t, reps[2].URL()+"/", http.StatusOK)
	for _, want := range []string{"demo", "replica-3", "2.2.4", "Tables and readiness"} {
		if !strings.Contains(page, want) {
			t.Errorf("UI page lacks %q", want)
		}
	}
	// The API root challenges for a token (the Docker CLI sends
	// credentials only then); the token test takes it from there.
	httpGet(t, reps[2].URL()+"/v2/", http.StatusUnauthorized)
	testTokens(t, reps)
	httpGet(t, reps[2].URL()+"/nothing-here", http.StatusNotFound)

	// An image pushed through one replica's OCI API pulls from another.
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	host := func(r *Replica) string { return strings.TrimPrefix(r.URL(), "http://") }
	push, err := name.NewTag(host(reps[0])+"/team/pushed:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(push, img, remote.WithAuth(&authn.Basic{Username: "admin", Password: testPassword})); err != nil {
		t.Fatalf("push through %s: %v", reps[0].ID(), err)
	}
	pull, _ := name.NewTag(host(reps[1])+"/team/pushed:v1", name.Insecure)
	pulled, err := remote.Image(pull)
	if err != nil {
		t.Fatalf("pull through %s: %v", reps[1].ID(), err)
	}
	if want, _ := img.Digest(); func() bool { got, _ := pulled.Digest(); return got != want }() {
		t.Error("pulled image differs from the pushed one")
	}
	if layers, _ := pulled.Layers(); len(layers) != 2 {
		t.Errorf("pulled %d layers, want 2", len(layers))
	}
	anon, _ := name.NewTag(host(reps[1])+"/team/anon:v1", name.Insecure)
	if err := remote.Write(anon, img); err == nil {
		t.Error("anonymous push succeeded")
	}

	// Backups need the admin password.
	var buf bytes.Buffer
	if err := FetchBackup(ctx, nil, reps[0].URL(), testPassword, &buf); err != nil || buf.Len() < 1024 {
		t.Errorf("FetchBackup = %d bytes, %v", buf.Len(), err)
	}
	if err := FetchBackup(ctx, nil, reps[0].URL(), "wrong", io.Discard); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("FetchBackup with a wrong password: %v, want ErrUnauthorized", err)
	}

	// One replica stops: the others serve, and the probe marks it down.
	if err := reps[2].Close(); err != nil {
		t.Fatal(err)
	}
	if err := reps[2].Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	st = Probe(ctx, "demo", drs, nil)
	if st.Store.Settled {
		t.Error("settled with a replica down")
	}
	down, _ := st.Replica("replica-3")
	if down.Healthy || down.UI || down.Error == "" {
		t.Errorf("stopped replica = %+v", down)
	}
	for _, tb := range st.Store.Tables {
		if tb.Ready || !strings.Contains(strings.Join(tb.Lagging, ","), "replica-3") {
			t.Errorf("table %s: ready %v, lagging %v", tb.Name, tb.Ready, tb.Lagging)
		}
	}
	for _, id := range []string{"replica-1", "replica-2"} {
		if r, _ := st.Replica(id); !r.Healthy {
			t.Errorf("%s not healthy after replica-3 stopped: %+v", id, r)
		}
	}
	m2 := testImage("while-down", 300)
	if err := reps[1].Store().PutManifest(ctx, "team/app", m2, "v2"); err != nil {
		t.Fatalf("write with one replica down: %v", err)
	}

	// It restarts on its data and catches up.
	r3, err := Start(ctx, cfgs[2])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r3.Close() })
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r3.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	reps[2] = r3
	waitSettled(t, "demo", members(reps, cfgs))
	if got, err := r3.Store().ResolveTag(ctx, "team/app", "v2"); err != nil || got != m2.Digest {
		t.Errorf("restarted replica: ResolveTag = %s, %v", got, err)
	}
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("GET %s = %s, want %d", url, resp.Status, want)
	}
	return string(b)
}

func TestReplicaRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	cfgs, reps := startCluster(t, "solo", "3.1.0", 1)
	cfg := cfgs[0]
	if s := reps[0].Store().Schema(); s != 6 {
		t.Errorf("fresh cluster at 3.1.0 has schema %d, want 6", s)
	}
	if err := reps[0].Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Release = "2.2.4"
	r, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err = r.WaitReady(wctx)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("2.2.4 on a 3.1.0 store: %v, want ErrSchemaTooNew", err)
	}
	if !strings.Contains(err.Error(), "store schema 6 is newer than release 2.2.4 knows (4): run release 3.1.0 or later") {
		t.Errorf("error = %q", err)
	}
	httpGet(t, r.URL()+"/health", http.StatusServiceUnavailable)
}

func TestStartFailsOnBusyPort(t *testing.T) {
	cfg := testCluster(t, "busy", "2.2.4", 1)[0]
	r := startAll(t, []Config{cfg})[0]
	other := cfg
	other.ID, other.DataDir = "replica-2", t.TempDir()
	other.Listen = freeAddr(t)
	other.PeerListen = cfg.PeerListen // taken
	if _, err := Start(context.Background(), other); err == nil {
		t.Error("Start on a peer port in use succeeded")
	}
	_ = r
}

func TestServeStopsOnCancel(t *testing.T) {
	cfg := testCluster(t, "serve", "1.4.3", 1)[0]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Add(1)
	go func() {
		defer wg.Done()
		err = Serve(ctx, cfg)
	}()
	waitFor(t, 30*time.Second, "health", func() (bool, string) {
		resp, e := http.Get("http://" + cfg.Listen + "/health")
		if e != nil {
			return false, e.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	cancel()
	wg.Wait()
	if err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
}
