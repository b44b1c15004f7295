package upgrade_test

import (
	"context"
	"testing"

	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestCleanUpgrade(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	e, rec := engine(t, c, dir, fastOptions())
	if err := e.Run(context.Background(), makePlan(t, source, target)); err != nil {
		t.Fatalf("run: %v", err)
	}
	assertUpgraded(t, c)
	st := assertJournal(t, dir)
	if n := len(doneSteps(st)); n != 38 {
		t.Errorf("%d steps done, want 38", n)
	}
	for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
		if n := c.Restarts(id); n != 4 {
			t.Errorf("%s started %d times, want 4 (once per hop)", id, n)
		}
	}
	if c.Jobs() != 3 || c.Backups() != 3 {
		t.Errorf("jobs=%d backups=%d, want 3 and 3", c.Jobs(), c.Backups())
	}
	if len(rec.ofType("done")) != 1 || len(rec.ofType("hop-done")) != 4 {
		t.Errorf("events: done=%d hop-done=%d", len(rec.ofType("done")), len(rec.ofType("hop-done")))
	}
}
