package upgrade_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

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

// TestClusterCopyHasNoHoles: appends to the cluster's copy of the journal
// fail mid-upgrade (the replica taking them stopped answering), and a run
// dies leaving a hole in the cluster's copy. The same command finishes,
// and the cluster's copy is the whole journal: no record missing.
func TestClusterCopyHasNoHoles(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	p := makePlan(t, source, target)
	dir := t.TempDir()
	failAt := upgrade.RollStep(p.Hops[0], "replica-2", upgrade.StepReplace).String()
	crashAt := upgrade.RollStep(p.Hops[1], "replica-1", upgrade.StepReplace).String()
	opts := fastOptions()
	failed, crashed := false, false
	opts.Knobs.BeforeAct = func(s string) error {
		switch {
		case s == failAt && !failed:
			failed = true
			c.FailAppends(1)
		case s == crashAt && !crashed:
			crashed = true
			return errCrash
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	for run := 1; ; run++ {
		err := e.Run(context.Background(), p)
		if err == nil {
			break
		}
		if run == 3 {
			t.Fatalf("run %d: %v", run, err)
		}
		if errors.Is(err, errCrash) {
			c.DropRecord(3) // a hole older mirrors could leave
		}
		t.Logf("run %d: %v", run, err)
		e, _ = engine(t, c, dir, opts)
	}
	assertUpgraded(t, c)
	assertWholeCopy(t, c, dir)
}

// TestMirrorBehindDoesNotStopTheUpgrade: the cluster's copy of the journal
// cannot take records for a while (a one-replica cluster while its only
// replica is replaced); the upgrade goes on, and the copy catches up, whole.
func TestMirrorBehindDoesNotStopTheUpgrade(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	p := makePlan(t, source, target)
	dir := t.TempDir()
	at := upgrade.RollStep(p.Hops[0], "replica-2", upgrade.StepReplace).String()
	opts := fastOptions()
	opts.Knobs.BeforeAct = func(s string) error {
		if s == at {
			c.FailAppends(4)
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	if err := e.Run(context.Background(), p); err != nil {
		t.Fatalf("run: %v", err)
	}
	assertUpgraded(t, c)
	assertWholeCopy(t, c, dir)
}

// TestLockWaitsForAReplicaToServeIt: the command runs again just as the
// replicas restart, and none can serve the cluster's lock for a moment; the
// run waits, saying why, then takes it and finishes.
func TestLockWaitsForAReplicaToServeIt(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	c.FailLocks(3)
	e, rec := engine(t, c, t.TempDir(), fastOptions())
	if err := e.Run(context.Background(), makePlan(t, source, target)); err != nil {
		t.Fatalf("run: %v", err)
	}
	assertUpgraded(t, c)
	var said int
	for _, ev := range rec.ofType(upgrade.EventWaitProgress) {
		if ev.Step == "lock" && strings.Contains(ev.Message, "replica not ready") {
			said++
		}
	}
	if said != 3 {
		t.Errorf("%d wait-progress events say why the lock waits, want 3", said)
	}
}

// TestLockUnreachable: no replica ever serves the lock; the run stops
// after the wait with an error that says what to check and how to restart
// the replicas, having changed nothing.
func TestLockUnreachable(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	c.FailLocks(1 << 30)
	opts := fastOptions()
	opts.StallAfter = 300 * time.Millisecond
	e, _ := engine(t, c, t.TempDir(), opts)
	err := e.Run(context.Background(), makePlan(t, source, target))
	ue, ok := errors.AsType[*upgrade.UnreachableError](err)
	if !ok || !strings.Contains(err.Error(), "ladder restart --cluster test --rolling") || !strings.Contains(err.Error(), "replica not ready") {
		t.Fatalf("run: %v, want an UnreachableError naming the restart command and the last answer", err)
	}
	if ue.For < 3*opts.StallAfter {
		t.Errorf("waited %s, want 3 times --stall-after, %s", ue.For, 3*opts.StallAfter)
	}
	if v := c.Versions(); v["replica-1"] != source {
		t.Errorf("versions %v: the run changed the cluster without the lock", v)
	}
}

// assertWholeCopy: the cluster's copy of the journal is the journal in dir,
// record for record, with no hole.
func assertWholeCopy(t *testing.T, c *upgradetest.Cluster, dir string) {
	t.Helper()
	j, _ := journal.Open(dir)
	recs := c.Records()
	if len(recs) != len(j.Records()) {
		t.Errorf("the cluster keeps %d records, the journal has %d", len(recs), len(j.Records()))
	}
	for i, rec := range recs {
		if rec.Seq != int64(i+1) {
			t.Fatalf("the cluster's record %d has seq %d: a hole", i+1, rec.Seq)
		}
	}
}
