package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/internal/traffic"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/upgrade"
)

// TestUpgradeKilledAndResumed upgrades a seeded cluster over four hops
// (one of them major, three migrating data), refuses a second upgrade
// while the first runs, kills `ladder upgrade` with SIGKILL twice at
// different points, and checks that the same command then completes with
// every row and image intact.
func TestUpgradeKilledAndResumed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "e2e"
	e.createCluster(name, "2.1.4")
	e.must("cluster", "seed", "--cluster", name, "--repositories", "30")
	st := e.status(name)
	pw := e.password(name)
	tc := e.tls(name)
	ctx := context.Background()
	hc := pki.HTTPClient(tc, 5*time.Second)
	for i, r := range st.Replicas {
		if _, err := traffic.Push(ctx, tc, r.URL, "e2e/images", fmt.Sprintf("v%d", i), pw, 10*time.Second); err != nil {
			t.Fatalf("push through %s: %v", r.ID, err)
		}
	}
	before, err := registry.Stats(ctx, hc, st.Replicas[0].URL)
	if err != nil {
		t.Fatal(err)
	}

	// First run: a concurrent upgrade is refused while it holds the lock;
	// then it is killed in the second hop's roll.
	u1 := e.startUpgrade("--cluster", name, "--to", "3.1.2")
	if _, ok := u1.until(t, stepStart("hop/2.1.4->2.2.5/roll/", "/replace")); !ok {
		t.Fatalf("first run ended early (exit %d): %s", u1.wait(), u1.stderr)
	}
	code, _, errOut := e.run("upgrade", "--cluster", name, "--to", "3.1.2", "--yes")
	if code != 4 || !strings.Contains(errOut, "another upgrade is running") || !strings.Contains(errOut, "pid") {
		t.Fatalf("concurrent upgrade: exit %d, want 4 naming the holder; stderr:\n%s", code, errOut)
	}
	if _, ok := u1.until(t, stepStart("hop/2.2.5->2.3.2/roll/", "/replace")); !ok {
		t.Fatalf("first run ended early (exit %d): %s", u1.wait(), u1.stderr)
	}
	_ = u1.cmd.Process.Signal(syscall.SIGKILL)
	if code := u1.wait(); code != 128+int(syscall.SIGKILL) {
		t.Fatalf("first run: exit %d, want killed", code)
	}

	// Second run resumes; killed during the major hop's migration.
	u2 := e.startUpgrade("--cluster", name, "--to", "3.1.2")
	if ev, ok := u2.until(t, func(ev upgrade.Event) bool { return ev.Type == upgrade.EventPlan }); !ok || ev.Fields["resume"] != true {
		t.Fatalf("second run did not resume: %+v (stderr %s)", ev, u2.stderr)
	}
	if _, ok := u2.until(t, stepStart("hop/2.3.2->3.0.1/migrate", "")); !ok {
		t.Fatalf("second run ended early (exit %d): %s", u2.wait(), u2.stderr)
	}
	_ = u2.cmd.Process.Signal(syscall.SIGKILL)
	u2.wait()

	// A third run completes.
	e.must("upgrade", "--cluster", name, "--to", "3.1.2", "--yes")

	st = e.status(name)
	if st.Version != "3.1.2" || st.SchemaVersion != 6 || !st.Store.Settled {
		t.Fatalf("after upgrade: version %s schema %d settled %v", st.Version, st.SchemaVersion, st.Store.Settled)
	}
	after, err := registry.Stats(ctx, hc, st.Replicas[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"repositories", "manifests", "tags"} {
		if after[table] < before[table] {
			t.Errorf("table %s: %d rows before, %d after", table, before[table], after[table])
		}
	}
	for i := range st.Replicas {
		for _, r := range st.Replicas {
			if _, err := traffic.Resolve(ctx, tc, r.URL, "e2e/images", fmt.Sprintf("v%d", i), 10*time.Second); err != nil {
				t.Errorf("image e2e/images:v%d on %s: %v", i, r.ID, err)
			}
		}
	}
	var sum struct {
		Upgrade upgrade.Summary `json:"upgrade"`
	}
	if err := json.Unmarshal([]byte(e.must("status", "--cluster", name, "-o", "json")), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Upgrade.State != upgrade.StateDone || sum.Upgrade.Runs != 3 || len(sum.Upgrade.Hops) != 4 {
		t.Fatalf("journal summary: state %s, %d runs, %d hops", sum.Upgrade.State, sum.Upgrade.Runs, len(sum.Upgrade.Hops))
	}
}
