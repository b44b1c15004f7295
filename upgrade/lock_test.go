package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestSecondRunLockedOut(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	inside := make(chan struct{})
	release := make(chan struct{})
	opts := fastOptions()
	opts.Holder = "first upgrade"
	opts.Knobs.BeforeAct = func(s string) error {
		if s == upgrade.HopStep(p.Hops[0], upgrade.StepBackup).String() {
			close(inside)
			<-release
		}
		return nil
	}
	first, _ := engine(t, c, dir, opts)
	done := make(chan error, 1)
	go func() { done <- first.Run(context.Background(), p) }()
	<-inside

	second, _ := engine(t, c, dir, fastOptions())
	err := second.Run(context.Background(), p)
	var le *journal.LockedError
	if !errors.Is(err, journal.ErrLocked) || !errors.As(err, &le) {
		t.Fatalf("second run: %v, want ErrLocked", err)
	}
	if le.Holder != "first upgrade" || le.Since.IsZero() || !strings.Contains(err.Error(), "held by first upgrade since") {
		t.Errorf("locked error %q does not name holder and since", err)
	}
	restart := &upgrade.Engine{Driver: c, App: c.App(), Journal: second.Journal, Options: fastOptions()}
	if err := restart.RollingRestart(context.Background()); !errors.Is(err, journal.ErrLocked) {
		t.Errorf("rolling restart during an upgrade: %v, want ErrLocked", err)
	}

	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
}

func TestStaleLockTakenOver(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	host, _ := os.Hostname()
	stale := journal.LockInfo{Holder: "crashed upgrade", PID: 0x7ffffff0, Host: host, Since: time.Now().Add(-time.Hour)}
	b, _ := json.Marshal(stale)
	if err := os.WriteFile(filepath.Join(dir, journal.LockName), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e, rec := engine(t, c, dir, fastOptions())
	if err := e.Run(context.Background(), makePlan(t, source, target)); err != nil {
		t.Fatalf("run over a stale lock: %v", err)
	}
	assertUpgraded(t, c)
	var told bool
	for _, ev := range rec.ofType(upgrade.EventNote) {
		told = told || strings.Contains(ev.Message, "took over the upgrade lock of crashed upgrade")
	}
	if !told {
		t.Error("takeover of the stale lock not reported")
	}
}
