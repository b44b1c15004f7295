package upgrade_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

// TestUpgradeLivesInTheCluster: two operators, each with a journal of its
// own (two machines, or two ladder homes), on one cluster. The second is
// refused while the first runs; the first dies holding the lock; once its
// lease ends the second takes the cluster's journal, resumes where the
// first stopped, and finishes; both see the same history.
func TestUpgradeLivesInTheCluster(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	p := makePlan(t, source, target)
	first, second := t.TempDir(), t.TempDir()
	crashAt := upgrade.RollStep(p.Hops[1], "replica-2", upgrade.StepReplace).String()

	opts := fastOptions()
	opts.Holder = "first"
	opts.Knobs.BeforeAct = func(s string) error {
		if s != crashAt {
			return nil
		}
		// While the first runs, the second is refused, naming it.
		e2, _ := engine(t, c, second, fastOptions())
		var locked *journal.LockedError
		if err := e2.Run(context.Background(), p); !errors.As(err, &locked) || locked.Holder != "first" {
			t.Errorf("second run while the first holds the lock: %v, want it refused naming first", err)
		}
		c.KeepLock() // the first dies here, its lease still running
		return errCrash
	}
	e1, _ := engine(t, c, first, opts)
	if err := e1.Run(context.Background(), p); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	e2, _ := engine(t, c, second, fastOptions())
	var locked *journal.LockedError
	if err := e2.Run(context.Background(), p); !errors.As(err, &locked) {
		t.Fatalf("second run before the lease ends: %v, want it refused", err)
	}

	c.ExpireLock()
	e2, rec := engine(t, c, second, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("second run after the lease ended: %v", err)
	}
	assertUpgraded(t, c)
	if len(rec.ofType(upgrade.EventStepSkip)) == 0 {
		t.Error("the second run repeated the first's steps instead of resuming")
	}
	j2, _ := journal.Open(second)
	cluster, _ := upgrade.SummarizeRecords(c.Records(), nil)
	mine, _ := upgrade.Summarize(j2)
	if cluster.State != upgrade.StateDone || mine.State != upgrade.StateDone || cluster.Runs != 2 || mine.Runs != 2 {
		t.Errorf("summaries: cluster %s (%d runs), second home %s (%d runs); want both done after 2 runs",
			cluster.State, cluster.Runs, mine.State, mine.Runs)
	}
	if n, m := len(c.Records()), len(j2.Records()); n != m {
		t.Errorf("the cluster keeps %d records, the second home %d", n, m)
	}
	assertJournal(t, second)
}
