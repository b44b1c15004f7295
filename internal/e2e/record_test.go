package e2e

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/upgrade"
)

// TestTwoHomes: two ladder homes (two operators) on one cluster. The
// second connects to it; its upgrade is refused, naming the holder, while
// the first's runs; the first is killed with SIGKILL; once the lock's lease
// ends the second resumes the upgrade and finishes it; both homes show the
// same history.
func TestTwoHomes(t *testing.T) {
	t.Parallel()
	first := newEnv(t)
	const name = "shared"
	first.createCluster(name, "2.2.5")
	second := &env{t: t, bin: first.bin, home: t.TempDir()}
	url := first.status(name).Replicas[0].URL
	second.must("cluster", "connect", "--cluster", name, "--endpoint", url)
	if out := second.must("cluster", "list", "-o", "json"); !strings.Contains(out, `"name": "shared"`) {
		t.Fatalf("cluster list of the second home: %s", out)
	}

	u := first.startUpgrade("--cluster", name, "--to", "3.0.1")
	if _, ok := u.until(t, stepStart("hop/2.2.5->2.3.2/roll/", "/wait")); !ok {
		t.Fatalf("the first run ended early (exit %d):\n%s", u.wait(), u.stderr)
	}
	code, _, stderr := second.run("upgrade", "--cluster", name, "--to", "3.0.1", "--yes")
	if code != 4 || !strings.Contains(stderr, "pid") {
		t.Fatalf("the second home's upgrade while the first runs: exit %d, want 4 naming the holder:\n%s", code, stderr)
	}
	if _, ok := u.until(t, stepStart("hop/2.3.2->3.0.1/roll/", "/replace")); !ok {
		t.Fatalf("the first run ended early (exit %d):\n%s", u.wait(), u.stderr)
	}
	_ = u.cmd.Process.Signal(syscall.SIGKILL)
	u.wait()

	// Refused until the lease of the dead holder ends, then resumed.
	var last string
	err := poll.For(t.Context(), 2*time.Minute, time.Second, func() (bool, error) {
		code, _, stderr := second.run("upgrade", "--cluster", name, "--to", "3.0.1", "--yes")
		last = stderr
		switch code {
		case 0:
			return true, nil
		case 4:
			return false, nil
		}
		t.Fatalf("the second home's upgrade after the first died: exit %d:\n%s", code, stderr)
		return false, nil
	})
	if err != nil {
		t.Fatalf("the second home never resumed the upgrade: %v; last:\n%s", err, last)
	}
	if !strings.Contains(last, "resume upgrade") && !strings.Contains(last, "steps done") {
		t.Logf("second run:\n%s", last)
	}

	var sums [2]struct {
		Version string          `json:"version"`
		Upgrade upgrade.Summary `json:"upgrade"`
		From    string          `json:"upgrade_record"`
	}
	for i, e := range []*env{first, second} {
		if err := json.Unmarshal([]byte(e.must("status", "--cluster", name, "-o", "json")), &sums[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range sums {
		if s.Version != "3.0.1" || s.Upgrade.State != upgrade.StateDone || s.Upgrade.Runs != 2 || s.From != "cluster" {
			t.Errorf("home %d: version %s, upgrade %s after %d runs, read from %q; want 3.0.1, done, 2, cluster",
				i+1, s.Version, s.Upgrade.State, s.Upgrade.Runs, s.From)
		}
	}
	if len(sums[0].Upgrade.Hops) != 2 || sums[0].Upgrade.Hops[1].Ended != sums[1].Upgrade.Hops[1].Ended {
		t.Errorf("the two homes show different histories: %+v / %+v", sums[0].Upgrade.Hops, sums[1].Upgrade.Hops)
	}
}
