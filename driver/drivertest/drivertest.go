// Package drivertest is the conformance suite every driver passes: the
// invariants of package driver, checked against real replicas through
// their HTTP API (health, status, stats and an OCI push), never through a
// driver's internals.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ladder-dev/ladder/driver"
	ladderpoll "github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
)

// The releases the suite uses: clusters start at From, and a replica is
// replaced with To. They share a schema, so no migration is involved.
// Drivers that need an artifact per release (images) prepare both.
const (
	From = "2.2.4"
	To   = "2.2.5"
)

// Versions lists every release the suite runs.
var Versions = []string{From, To}

// AdminPassword is the admin password newCluster must create the cluster
// with: the suite pushes an image, which needs it.
const AdminPassword = "conformance-admin"

// Replicas is the number of replicas newCluster must create.
const Replicas = 3

// Timeout bounds every wait of the suite on the replicas.
var Timeout = 90 * time.Second

// Spec is the spec newCluster should create: Replicas replicas of the
// reference registry at version, with admin password AdminPassword, the
// ladder executable at binary running every release.
func Spec(cluster, version, binary string) driver.Spec {
	return driver.Spec{Cluster: cluster, Service: service.Registry{Binary: binary}, Version: version, Replicas: Replicas,
		Secrets: map[string][]byte{service.AdminPasswordSecret: []byte(AdminPassword + "\n")}}
}

// Create creates a cluster for a test with create, which it gives a new
// name, prefix and six random hex digits, and a context that ends after
// timeout; it fails the test if create fails. The cluster is destroyed
// when the test ends, even if the test fails. A cleanup that create
// registers runs after that destroy.
func Create[D driver.Driver](t *testing.T, prefix string, timeout time.Duration, create func(ctx context.Context, cluster string) (D, error)) D {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	cluster := prefix + "-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d, err := create(ctx, cluster)
	if err != nil {
		t.Fatalf("create cluster %s: %v", cluster, err)
	}
	t.Cleanup(func() {
		if err := d.Destroy(context.Background()); err != nil {
			t.Errorf("destroy cluster %s: %v", cluster, err)
		}
	})
	return d
}

// NewCluster creates a cluster of Replicas replicas of version, with admin
// password AdminPassword, and registers its teardown with t.Cleanup (the
// suite also destroys it, and Destroy must be safe to repeat).
type NewCluster func(t *testing.T, version string) driver.Driver

// Run runs the conformance suite against the driver newCluster makes. It
// creates one cluster and goes through: listing, a write, Replace (to
// another release, then to the same one), Restart, RunJob (success and
// failure), errors for unknown replicas and releases, the optional
// ArtifactChecker and Freezer, and Destroy (twice).
func Run(t *testing.T, newCluster NewCluster) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := newCluster(t, From)
	s := &suite{d: d, hc: &http.Client{Timeout: 2 * time.Second}}

	steps := []struct {
		name string
		run  func(t *testing.T, ctx context.Context)
		// critical steps stop the suite when they fail: later steps
		// would only fail for the same reason.
		critical bool
	}{
		{"replicas", s.replicas, true},
		{"healthy", s.healthy, true},
		{"write", s.write, true},
		{"replace", s.replace, false},
		{"replace with the same release", s.replaceSame, false},
		{"restart", s.restart, false},
		{"run job", s.runJob, false},
		{"unknown replica or release", s.unknown, false},
		{"check artifact", s.checkArtifact, false},
		{"freeze and thaw", s.freeze, false},
		{"destroy", s.destroy, false},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.run(t, ctx) }) && st.critical {
			t.Fatalf("step %q failed; stopping the suite", st.name)
		}
	}
}

type suite struct {
	d  driver.Driver
	hc *http.Client
	// before is replicas as first listed.
	before []driver.Replica
	// stats are the row counts after the write.
	stats map[string]int
}

func (s *suite) replicas(t *testing.T, ctx context.Context) {
	if s.d.Name() == "" || s.d.Cluster() == "" {
		t.Errorf("Name() = %q, Cluster() = %q; want both set", s.d.Name(), s.d.Cluster())
	}
	reps, err := s.d.Replicas(ctx)
	if err != nil {
		t.Fatalf("Replicas: %v", err)
	}
	if len(reps) != Replicas {
		t.Fatalf("Replicas returned %d replicas, want %d: %+v", len(reps), Replicas, reps)
	}
	if !slices.IsSortedFunc(reps, func(a, b driver.Replica) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("Replicas not ordered by ID: %v", ids(reps))
	}
	urls := map[string]bool{}
	for _, r := range reps {
		if r.ID == "" || r.URL == "" {
			t.Errorf("replica %+v: want ID and URL", r)
		}
		if urls[r.URL] {
			t.Errorf("replica %s: URL %s used twice", r.ID, r.URL)
		}
		urls[r.URL] = true
		if !r.Running {
			t.Errorf("replica %s: Running = false right after create", r.ID)
		}
		if r.Version != From {
			t.Errorf("replica %s: Version = %q, want %q", r.ID, r.Version, From)
		}
	}
	again, err := s.d.Replicas(ctx)
	if err != nil {
		t.Fatalf("Replicas: %v", err)
	}
	if !slices.Equal(ids(again), ids(reps)) {
		t.Errorf("Replicas order not stable: %v then %v", ids(reps), ids(again))
	}
	s.before = reps
}

func (s *suite) healthy(t *testing.T, ctx context.Context) {
	for _, r := range s.before {
		s.waitRelease(t, ctx, r, From)
	}
}

// write pushes an image through replica-1, so the store holds rows to
// count before and after replicas are replaced.
func (s *suite) write(t *testing.T, ctx context.Context) {
	r := s.before[0]
	host := strings.TrimPrefix(r.URL, "http://")
	ref, err := name.ParseReference(host+"/conformance/app:v1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: AdminPassword})
	if err := remote.Write(ref, img, auth, remote.WithContext(ctx)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	s.stats = s.waitStats(t, ctx, r, nil)
	total := 0
	for _, n := range s.stats {
		total += n
	}
	if total == 0 {
		t.Fatalf("stats after a push count no rows: %v", s.stats)
	}
}

func (s *suite) replace(t *testing.T, ctx context.Context) {
	target := s.before[1%len(s.before)]
	if err := s.d.Replace(ctx, target.ID, To); err != nil {
		t.Fatalf("Replace(%s, %s): %v", target.ID, To, err)
	}
	got := s.find(t, ctx, target.ID)
	if got.Version != To {
		t.Errorf("after Replace: Version = %q, want %q", got.Version, To)
	}
	if got.URL != target.URL {
		t.Errorf("after Replace: URL = %q, want it kept (%q)", got.URL, target.URL)
	}
	if !got.Running {
		t.Errorf("after Replace: Running = false")
	}
	s.waitRelease(t, ctx, got, To)
	s.waitStats(t, ctx, got, s.stats)
	for _, r := range s.before {
		if r.ID != target.ID {
			if o := s.find(t, ctx, r.ID); o.Version != From {
				t.Errorf("Replace(%s) changed %s to %s", target.ID, r.ID, o.Version)
			}
		}
	}
}

func (s *suite) replaceSame(t *testing.T, ctx context.Context) {
	target := s.before[1%len(s.before)]
	if err := s.d.Replace(ctx, target.ID, To); err != nil {
		t.Fatalf("Replace(%s, %s) again: %v", target.ID, To, err)
	}
	got := s.find(t, ctx, target.ID)
	if got.Version != To || got.URL != target.URL {
		t.Errorf("after a repeated Replace: %+v, want version %s at %s", got, To, target.URL)
	}
	s.waitRelease(t, ctx, got, To)
	s.waitStats(t, ctx, got, s.stats)
}

func (s *suite) restart(t *testing.T, ctx context.Context) {
	target := s.before[0]
	if err := s.d.Restart(ctx, target.ID); err != nil {
		t.Fatalf("Restart(%s): %v", target.ID, err)
	}
	got := s.find(t, ctx, target.ID)
	if got.Version != From || got.URL != target.URL || !got.Running {
		t.Errorf("after Restart: %+v, want running version %s at %s", got, From, target.URL)
	}
	s.waitRelease(t, ctx, got, From)
	s.waitStats(t, ctx, got, s.stats)
}

func (s *suite) runJob(t *testing.T, ctx context.Context) {
	schema, err := registry.SchemaOf(From)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.d.RunJob(ctx, From, driver.Job{Name: "migrate",
		Args: []string{"registry", "migrate", "--to-schema", strconv.Itoa(schema)}})
	if err != nil {
		t.Errorf("RunJob(migrate to the current schema): %v\noutput:\n%s", err, out)
	}
	out, err = s.d.RunJob(ctx, From, driver.Job{Name: "bad-flag",
		Args: []string{"registry", "migrate", "--no-such-flag"}})
	if err == nil {
		t.Errorf("RunJob with an unknown flag: no error; output:\n%s", out)
	} else if !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("RunJob failure %q does not carry the job's output (want it to name --no-such-flag)", err)
	}
	if _, err := s.d.RunJob(ctx, "9.9.9", driver.Job{Name: "migrate", Args: []string{"registry", "migrate"}}); !errors.Is(err, driver.ErrNoArtifact) {
		t.Errorf("RunJob of an unknown release: err = %v, want ErrNoArtifact", err)
	}
}

func (s *suite) unknown(t *testing.T, ctx context.Context) {
	if err := s.d.Replace(ctx, "replica-99", To); !errors.Is(err, driver.ErrNoReplica) {
		t.Errorf("Replace(replica-99): err = %v, want ErrNoReplica", err)
	}
	if err := s.d.Restart(ctx, "replica-99"); !errors.Is(err, driver.ErrNoReplica) {
		t.Errorf("Restart(replica-99): err = %v, want ErrNoReplica", err)
	}
	target := s.before[0]
	if err := s.d.Replace(ctx, target.ID, "9.9.9"); !errors.Is(err, driver.ErrNoArtifact) {
		t.Errorf("Replace(%s, 9.9.9): err = %v, want ErrNoArtifact", target.ID, err)
	}
	// A refused Replace must not have touched the replica.
	if got := s.find(t, ctx, target.ID); got.Version != From || !got.Running {
		t.Errorf("after a refused Replace: %+v, want running version %s", got, From)
	}
	s.waitRelease(t, ctx, target, From)
}

func (s *suite) checkArtifact(t *testing.T, ctx context.Context) {
	ac, ok := s.d.(driver.ArtifactChecker)
	if !ok {
		t.Skipf("driver %s has no ArtifactChecker", s.d.Name())
	}
	for _, v := range Versions {
		if err := ac.CheckArtifact(ctx, v); err != nil {
			t.Errorf("CheckArtifact(%s): %v", v, err)
		}
	}
	if err := ac.CheckArtifact(ctx, "9.9.9"); !errors.Is(err, driver.ErrNoArtifact) {
		t.Errorf("CheckArtifact(9.9.9): err = %v, want ErrNoArtifact", err)
	}
}

func (s *suite) freeze(t *testing.T, ctx context.Context) {
	fr, ok := s.d.(driver.Freezer)
	if !ok {
		t.Skipf("driver %s has no Freezer", s.d.Name())
	}
	target := s.before[len(s.before)-1]
	if err := fr.Freeze(ctx, target.ID); err != nil {
		t.Fatalf("Freeze(%s): %v", target.ID, err)
	}
	thawed := false
	defer func() {
		if !thawed {
			_ = fr.Thaw(context.WithoutCancel(ctx), target.ID)
		}
	}()
	if got := s.find(t, ctx, target.ID); !got.Running {
		t.Errorf("a frozen replica is still alive: Running = false")
	}
	hc := &http.Client{Timeout: time.Second}
	if resp, err := hc.Get(target.URL + "/health"); err == nil {
		resp.Body.Close()
		t.Errorf("a frozen replica answered /health: %s", resp.Status)
	}
	if err := fr.Thaw(ctx, target.ID); err != nil {
		t.Fatalf("Thaw(%s): %v", target.ID, err)
	}
	thawed = true
	s.waitRelease(t, ctx, target, From)
}

func (s *suite) destroy(t *testing.T, ctx context.Context) {
	if err := s.d.Destroy(ctx); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := s.d.Destroy(ctx); err != nil {
		t.Errorf("Destroy again: %v", err)
	}
	reps, err := s.d.Replicas(ctx)
	if err != nil {
		t.Fatalf("Replicas after Destroy: %v", err)
	}
	for _, r := range reps {
		if r.Running {
			t.Errorf("replica %s still running after Destroy", r.ID)
		}
	}
	for _, r := range s.before {
		if resp, err := s.hc.Get(r.URL + "/health"); err == nil {
			resp.Body.Close()
			t.Errorf("replica %s still answers at %s after Destroy: %s", r.ID, r.URL, resp.Status)
		}
	}
}

func (s *suite) find(t *testing.T, ctx context.Context, id string) driver.Replica {
	t.Helper()
	reps, err := s.d.Replicas(ctx)
	if err != nil {
		t.Fatalf("Replicas: %v", err)
	}
	if !slices.Equal(ids(reps), ids(s.before)) {
		t.Errorf("replica set changed: %v, was %v", ids(reps), ids(s.before))
	}
	for _, r := range reps {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("replica %s not listed: %v", id, ids(reps))
	return driver.Replica{}
}

// status is the part of a replica's /api/v1/status the suite reads.
type status struct {
	ID      string `json:"id"`
	Release string `json:"release"`
}

// waitRelease waits until replica r answers /health with 200 and reports
// itself as r.ID running release.
func (s *suite) waitRelease(t *testing.T, ctx context.Context, r driver.Replica, release string) {
	t.Helper()
	var last string
	ok := poll(ctx, func() bool {
		var st status
		if err := s.getJSON(ctx, r.URL+"/health", nil); err != nil {
			last = err.Error()
			return false
		}
		if err := s.getJSON(ctx, r.URL+"/api/v1/status", &st); err != nil {
			last = err.Error()
			return false
		}
		if st.ID != r.ID || st.Release != release {
			last = fmt.Sprintf("reports id %q release %q", st.ID, st.Release)
			return false
		}
		return true
	})
	if !ok {
		t.Fatalf("replica %s at %s: not healthy as release %s after %s: %s", r.ID, r.URL, release, Timeout, last)
	}
}

// waitStats waits until replica r's row counts equal want (any counts if
// want is nil) and returns them.
func (s *suite) waitStats(t *testing.T, ctx context.Context, r driver.Replica, want map[string]int) map[string]int {
	t.Helper()
	var got struct {
		Tables map[string]int `json:"tables"`
	}
	var last string
	ok := poll(ctx, func() bool {
		if err := s.getJSON(ctx, r.URL+"/api/v1/stats", &got); err != nil {
			last = err.Error()
			return false
		}
		if want != nil && !equalCounts(got.Tables, want) {
			last = fmt.Sprintf("counts %v, want %v", got.Tables, want)
			return false
		}
		return true
	})
	if !ok {
		t.Fatalf("replica %s stats: %s", r.ID, last)
	}
	return got.Tables
}

func (s *suite) getJSON(ctx context.Context, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// poll calls cond until it holds or Timeout passes.
func poll(ctx context.Context, cond func() bool) bool {
	return ladderpoll.For(ctx, Timeout, 100*time.Millisecond, func() (bool, error) { return cond(), nil }) == nil
}

func equalCounts(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func ids(reps []driver.Replica) []string {
	out := make([]string, 0, len(reps))
	for _, r := range reps {
		out = append(out, r.ID)
	}
	return out
}
