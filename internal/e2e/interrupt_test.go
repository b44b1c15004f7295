package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/internal/traffic"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/upgrade"
)

// TestInterruptedAtFivePoints interrupts `ladder upgrade` with SIGINT at
// five points of a two-hop upgrade with a migration — waiting in a
// preflight, replacing a replica, taking a backup, waiting for a replica,
// migrating — and runs the same command again each time; once more with two
// SIGINTs while a replica is replaced, which stops at once, the step
// journaled. Every interruption exits 130 and says how to continue; the
// last run finishes; nothing seeded or pushed is lost. And while a run
// holds the upgrade lock, destroy, seed and restarts are refused with exit
// 4, naming the holder.
func TestInterruptedAtFivePoints(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "sigint"
	e.createCluster(name, "2.2.5")
	e.must("cluster", "seed", "--cluster", name, "--repositories", "20")
	st := e.status(name)
	pw := e.password(name)
	tc := e.tls(name)
	ctx := context.Background()
	images := map[string]string{}
	for i, r := range st.Replicas {
		tag := fmt.Sprintf("v%d", i)
		dg, err := traffic.Push(ctx, tc, r.URL, "sigint/images", tag, pw, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		images[tag] = dg.String()
	}
	hc := pki.HTTPClient(tc, 10*time.Second)
	before, err := registry.Stats(ctx, hc, st.Replicas[0].URL)
	if err != nil {
		t.Fatal(err)
	}

	args := []string{"--cluster", name, "--to", "3.0.1"}
	points := []struct {
		name  string
		match func(upgrade.Event) bool
		// twice: a second SIGINT follows the first at once.
		twice bool
	}{
		{name: "a preflight's wait", match: stepStart("hop/2.2.5->2.3.2/preflight", "")},
		{name: "a replace", match: stepStart("hop/2.2.5->2.3.2/roll/", "/replace")},
		{name: "the backup", match: stepStart("hop/2.3.2->3.0.1/backup", "")},
		{name: "a replace, twice", match: stepStart("hop/2.3.2->3.0.1/roll/", "/replace"), twice: true},
		{name: "a replica's wait", match: stepStart("hop/2.3.2->3.0.1/roll/", "/wait")},
		{name: "the migration", match: stepStart("hop/2.3.2->3.0.1/migrate", "")},
	}
	for i, p := range points {
		u := e.startUpgrade(args...)
		ev, ok := u.until(t, p.match)
		if !ok {
			t.Fatalf("interruption %d (%s): the run ended first (exit %d):\n%s", i+1, p.name, u.wait(), u.stderr)
		}
		if i == 1 {
			assertLocked(t, e, name)
		}
		if err := u.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if p.twice {
			_ = u.cmd.Process.Signal(syscall.SIGINT)
		}
		if code := u.wait(); code != 130 {
			t.Fatalf("interruption %d (%s): exit %d, want 130; stderr:\n%s", i+1, p.name, code, u.stderr)
		}
		out := u.stderr.String()
		if !strings.Contains(out, "continue:    ladder upgrade --cluster "+name+" --to 3.0.1 --yes") || !strings.Contains(out, "replicas:") {
			t.Errorf("interruption %d (%s) does not give the state and the command that continues:\n%s", i+1, p.name, out)
		}
		if p.twice {
			if st := e.must("status", "--cluster", name); !strings.Contains(st, ev.Step) {
				t.Errorf("status does not show the step cut short, %s:\n%s", ev.Step, st)
			}
		}
		t.Logf("interrupted at %s:\n%s", p.name, out)
	}

	e.must("upgrade", "--cluster", name, "--to", "3.0.1", "--yes")
	if st := e.status(name); st.Version != "3.0.1" || !st.Store.Settled {
		t.Fatalf("after the last run: version %s, settled %v", st.Version, st.Store.Settled)
	}
	after, err := registry.Stats(ctx, hc, e.status(name).Replicas[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range before {
		if table != registry.TableEvents && table != "schema_version" && after[table] < n {
			t.Errorf("table %s: %d rows before, %d after", table, n, after[table])
		}
	}
	for _, r := range e.status(name).Replicas {
		for tag, dg := range images {
			if got, err := traffic.Resolve(ctx, tc, r.URL, "sigint/images", tag, 10*time.Second); err != nil || got.String() != dg {
				t.Errorf("sigint/images:%s on %s: %v, %v (want %s)", tag, r.ID, got, err, dg)
			}
		}
	}
}

// assertLocked checks that, while an upgrade runs, the commands that
// would change the cluster under it are refused with exit 4 naming the
// holder.
func assertLocked(t *testing.T, e *env, name string) {
	t.Helper()
	for _, args := range [][]string{
		{"cluster", "destroy", "--cluster", name},
		{"cluster", "seed", "--cluster", name, "--repositories", "5"},
		{"cluster", "restart", "--cluster", name, "--replica", "replica-1"},
		{"restart", "--cluster", name, "--rolling"},
	} {
		code, _, stderr := e.run(args...)
		if code != 4 || !strings.Contains(stderr, "upgrade") || !strings.Contains(stderr, "pid") {
			t.Errorf("ladder %s during an upgrade: exit %d, want 4 naming the holder; stderr:\n%s", strings.Join(args, " "), code, stderr)
		}
	}
}

// TestDestroyFinishesHalfDeleted: a destroy cut short (the record gone,
// the replicas still running) is finished by running destroy again, and
// the name can be used again.
func TestDestroyFinishesHalfDeleted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "half"
	e.createCluster(name, "2.2.5")
	var pids []int
	for _, r := range e.status(name).Replicas {
		pids = append(pids, r.PID)
	}
	if err := os.Remove(filepath.Join(home.ClusterDir(e.home, name), home.RecordFile)); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := e.run("cluster", "destroy", "--cluster", name)
	if code != 0 || !strings.Contains(stderr, "removed what was left") {
		t.Fatalf("destroy of a half-deleted cluster: exit %d:\n%s", code, stderr)
	}
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("replica process %d still runs", pid)
		}
	}
	if _, err := os.Stat(home.ClusterDir(e.home, name)); !os.IsNotExist(err) {
		t.Errorf("cluster folder still there: %v", err)
	}
	if code, _, stderr := e.run("cluster", "destroy", "--cluster", name); code != 2 || !strings.Contains(stderr, "no such cluster") {
		t.Errorf("destroy of nothing: exit %d, want 2 and no such cluster:\n%s", code, stderr)
	}
	e.createCluster(name, "2.2.5")
	e.must("cluster", "destroy", "--cluster", name)
}

// running reports whether process pid exists and is not a zombie (a
// replica outlives the command that started it, and whoever adopts it may
// be slow to reap it).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}
