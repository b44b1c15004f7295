package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// browser finds a headless-capable Chromium, or skips the test with a
// message (fails instead with LADDER_REQUIRE_BROWSER=1, which CI sets).
func browser(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LADDER_REQUIRE_BROWSER") == "1" {
		t.Fatal("no Chromium on PATH, and LADDER_REQUIRE_BROWSER=1")
	}
	t.Skip("no Chromium on PATH (Debian: apt-get install chromium): the web UI test is skipped")
	return ""
}

// waitFor waits, on the page, for the JavaScript expression cond.
func waitFor(ctx context.Context, cond string) bool {
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	_, err := chromedp.Run(wctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(200*time.Millisecond)))
	return err == nil
}

// TestUpgradePanel opens a replica's web UI in headless Chromium while an
// upgrade runs, and checks what it shows: the hop under way among the
// plan's hops, the replica being replaced or starting, the lock's holder,
// a frozen replica's remediation as it happens, and at the end the upgrade
// done. Screenshots of each moment go to the test's artifact directory
// (go test -artifacts keeps them).
func TestUpgradePanel(t *testing.T) {
	t.Parallel()
	chrome := browser(t)
	e := newEnv(t)
	const name = "panel"
	e.createCluster(name, "2.2.5")
	st := e.status(name)
	page := st.Replicas[0].URL + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome),
		chromedp.NoSandbox, chromedp.WindowSize(1280, 1400),
		// The browser trusts exactly the replicas' keys, as it would
		// trust the cluster's CA once installed.
		chromedp.Flag("ignore-certificate-errors-spki-list", e.replicaKeyPins(name)))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("open %s: %v", page, err)
	}
	dir := t.ArtifactDir()
	shot := func(file string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// until waits, on the page, for the JavaScript expression cond.
	until := func(what, cond string) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
		defer wcancel()
		if _, err := chromedp.Run(wctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Text("#upgrade-panel"))
			t.Fatalf("the page never showed %s: %v\npanel:\n%s", what, err, text)
		}
	}
	text := `document.getElementById("upgrade").innerText`

	until("that no upgrade is recorded", text+`.includes("no upgrade recorded")`)
	u := e.startUpgrade("--cluster", name, "--to", "3.0.1", "--stall-after", "5s")
	ev, ok := u.until(t, stepStart("hop/2.2.5->2.3.2/roll/", "/wait"))
	if !ok {
		t.Fatalf("the upgrade ended early (exit %d):\n%s", u.wait(), u.stderr)
	}
	replaced := ev.Replica
	// A hop here takes a few seconds, about as long as the page takes to
	// refresh: hold ladder itself still (SIGSTOP, well within its lock's
	// lease) while the page shows the moment, so the test does not race.
	if err := u.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = u.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer resume()
	until("the hop under way and the replica starting",
		`document.querySelector('.hop.current[data-hop="2.2.5->2.3.2"]') !== null && `+text+`.includes("running") && `+
			`(document.querySelector('tr[data-replica="`+replaced+`"]')?.innerText || "").match(/starting|being replaced|ready/) !== null`)
	shot("1-hop-under-way.png")
	head, err := chromedp.Run(ctx, chromedp.Text("#upgrade-head"))
	if err != nil || !strings.Contains(head, "held by") {
		t.Errorf("the panel's head does not name the lock's holder: %q, %v", head, err)
	}
	resume()

	// A follower frozen in the second hop: its remediation shows as it happens.
	ev, ok = u.until(t, stepStart("hop/2.3.2->3.0.1/roll/", "/replace"))
	if !ok {
		t.Fatalf("the upgrade ended early (exit %d):\n%s", u.wait(), u.stderr)
	}
	var frozen int
	for _, r := range e.status(name).Replicas {
		if !r.Leader && r.ID != ev.Replica && r.Version == "2.3.2" && r.PID > 0 {
			frozen = r.PID
			break
		}
	}
	if frozen == 0 {
		t.Fatal("no follower left to freeze")
	}
	if err := syscall.Kill(frozen, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, `(document.getElementById("upgrade-events")?.innerText || "").includes("remediation")`) {
		_ = syscall.Kill(frozen, syscall.SIGCONT)
		t.Fatalf("the page never showed the remediation of the frozen replica (pid %d); the upgrade (exit %d):\n%s", frozen, u.wait(), u.stderr)
	}
	shot("2-remediation.png")

	if code := u.wait(); code != 0 {
		t.Fatalf("the upgrade: exit %d:\n%s", code, u.stderr)
	}
	until("the upgrade done", `document.getElementById("upgrade-head").innerText.includes("done") && document.querySelectorAll(".hop.done").length === 2`)
	shot("3-done.png")
	t.Logf("screenshots in %s", dir)
}
