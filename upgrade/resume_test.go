package upgrade_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

// cleanRunSteps runs the whole upgrade once and returns the steps it
// journaled as done, in order.
func cleanRunSteps(t *testing.T) []string {
	t.Helper()
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	e, _ := engine(t, c, dir, fastOptions())
	if err := e.Run(context.Background(), makePlan(t, source, target)); err != nil {
		t.Fatal(err)
	}
	return doneSteps(assertJournal(t, dir))
}

// TestCrashResumeMatrix crashes at every step of a real four-hop plan,
// before and after the step acts, then resumes with a fresh engine on the
// same journal: the end state is right, every migration ran exactly once,
// every replica was started exactly once per hop, and the journal is whole.
func TestCrashResumeMatrix(t *testing.T) {
	steps := cleanRunSteps(t)
	if len(steps) != 38 {
		t.Fatalf("clean run did %d steps, want 38", len(steps))
	}
	p := makePlan(t, source, target)
	for _, step := range steps {
		for _, when := range []string{"before", "after"} {
			t.Run(when+"/"+step, func(t *testing.T) {
				t.Parallel()
				c := upgradetest.New("test", source, 3)
				dir := t.TempDir()
				opts := fastOptions()
				crash := func(s string) error {
					if s == step {
						return errCrash
					}
					return nil
				}
				if when == "before" {
					opts.Knobs.BeforeAct = crash
				} else {
					opts.Knobs.AfterAct = crash
				}
				e, _ := engine(t, c, dir, opts)
				if err := e.Run(context.Background(), p); !errors.Is(err, errCrash) {
					t.Fatalf("first run: %v, want the crash", err)
				}
				st, err := journal.Open(dir)
				if err != nil {
					t.Fatal(err)
				}
				if !st.State().IsPending(step) {
					t.Fatalf("crashed step %s not pending in the journal", step)
				}

				e2, rec := engine(t, c, dir, fastOptions())
				if err := e2.Run(context.Background(), p); err != nil {
					t.Fatalf("resume: %v", err)
				}
				assertUpgraded(t, c)
				js := assertJournal(t, dir)
				if got := doneSteps(js); len(got) != len(steps) {
					t.Errorf("journal has %d done steps, want %d", len(got), len(steps))
				}
				for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
					if n := c.Restarts(id); n != 4 {
						t.Errorf("%s started %d times, want 4", id, n)
					}
				}
				if n := c.Jobs(); n != 3 {
					t.Errorf("%d migration jobs ran, want 3", n)
				}
				// Nothing done before the crash runs again.
				idx := slices.Index(steps, step)
				for _, ev := range rec.ofType(upgrade.EventStepStart) {
					if i := slices.Index(steps, ev.Step); i >= 0 && i < idx {
						t.Errorf("resume ran %s again, done before the crash", ev.Step)
					}
				}
				if plans := rec.ofType(upgrade.EventPlan); len(plans) != 1 || plans[0].Fields["resume"] != true {
					t.Errorf("resume plan event = %+v", plans)
				}
			})
		}
	}
}

func TestResumeAfterStepFailure(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	step := upgrade.RollStep(p.Hops[0], "replica-3", upgrade.StepReplace).String()
	boom := errors.New("docker daemon went away")
	c.FailAt(step, upgradetest.OpReplace, boom, 1)

	e, rec := engine(t, c, dir, fastOptions())
	err := e.Run(context.Background(), p)
	var se *upgrade.StepError
	if !errors.As(err, &se) || se.Step != step || !errors.Is(err, boom) {
		t.Fatalf("run: %v, want a StepError at %s wrapping the failure", err, step)
	}
	if !strings.Contains(se.Hint, "ladder upgrade --cluster test --to 3.1.2") {
		t.Errorf("hint %q does not give the command that continues", se.Hint)
	}
	if f := rec.ofType(upgrade.EventFailed); len(f) != 1 || f[0].Step != step {
		t.Errorf("failed events = %+v", f)
	}
	j, _ := journal.Open(dir)
	sum, err := upgrade.Summarize(j)
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != upgrade.StateFailed || sum.Failure == nil || sum.Failure.Step != step || sum.Current != step {
		t.Errorf("summary after failure: state=%s current=%s failure=%+v", sum.State, sum.Current, sum.Failure)
	}
	if sum.Hops[0].State != upgrade.StateFailed || sum.Hops[1].State != upgrade.StatePending {
		t.Errorf("hop states %s, %s", sum.Hops[0].State, sum.Hops[1].State)
	}

	e2, _ := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
}

func TestDifferentTargetWhileUnfinishedRefused(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	opts := fastOptions()
	opts.Knobs.BeforeAct = func(s string) error {
		if s == upgrade.HopStep(p.Hops[1], upgrade.StepPreflight).String() {
			return errCrash
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	if err := e.Run(context.Background(), p); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	other := makePlan(t, "2.2.5", "2.3.2")
	e2, _ := engine(t, c, dir, fastOptions())
	err := e2.Run(context.Background(), other)
	var ue *upgrade.UnfinishedError
	if !errors.Is(err, upgrade.ErrUnfinished) || !errors.As(err, &ue) {
		t.Fatalf("run to another target: %v, want ErrUnfinished", err)
	}
	if ue.To != target || ue.Requested != "2.3.2" || !strings.Contains(err.Error(), "ladder upgrade --cluster test --to 3.1.2") {
		t.Errorf("refusal %q: want the unfinished target and the command that finishes it", err)
	}
	if _, err := journal.ReadLock(dir); err == nil {
		t.Error("refused run left its lock")
	}
	// The journal's plan is what resumes, whatever plan the caller computed
	// from the mixed cluster.
	j, _ := journal.Open(dir)
	pending, ok, err := upgrade.Unfinished(j)
	if err != nil || !ok || pending.To.String() != target || len(pending.Hops) != 4 {
		t.Fatalf("Unfinished = %v, %v, %v", pending, ok, err)
	}
	resumeFrom := makePlan(t, "2.2.5", target)
	e3, _ := engine(t, c, dir, fastOptions())
	if err := e3.Run(context.Background(), resumeFrom); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
}

func TestTornJournalTailResumes(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	opts := fastOptions()
	opts.Knobs.AfterAct = func(s string) error {
		if s == upgrade.HopStep(p.Hops[2], upgrade.StepMigrate).String() {
			return errCrash
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	if err := e.Run(context.Background(), p); !errors.Is(err, errCrash) {
		t.Fatalf("first run: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, journal.FileName), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":999,"time":"2026-01-01T00:00:00Z","step":"hop/3.0`)
	f.Close()

	e2, rec := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume over a torn journal: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
	found := false
	for _, ev := range rec.ofType(upgrade.EventNote) {
		found = found || strings.Contains(ev.Message, "torn")
	}
	if !found {
		t.Error("torn tail not reported")
	}
}

func TestInterruptedRunResumes(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	step := upgrade.RollStep(p.Hops[2], "replica-2", upgrade.StepReplace).String()
	c.HangAt(step, upgradetest.OpReplicas, 1)
	ctx, cancel := context.WithCancel(context.Background())
	opts := fastOptions()
	e, _ := engine(t, c, dir, opts)
	e.OnEvent = func(ev upgrade.Event) {
		if ev.Type == upgrade.EventStepStart && ev.Step == step {
			cancel() // as a person pressing Ctrl-C while the replace hangs
		}
	}
	err := e.Run(ctx, p)
	var se *upgrade.StepError
	if !errors.As(err, &se) || se.Step != step || !errors.Is(err, context.Canceled) {
		t.Fatalf("run: %v, want the interrupted step", err)
	}
	if !strings.HasPrefix(se.Hint, "interrupted: run `ladder upgrade --cluster test --to 3.1.2 --yes`") {
		t.Errorf("hint %q", se.Hint)
	}
	e2, _ := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
}

// TestInterruptFinishesTheAction: Ctrl-C while a replica is being replaced
// lets the replace finish and journal, then stops before the next step;
// the journal and the cluster agree, and the same run resumes.
func TestInterruptFinishesTheAction(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	replace := upgrade.RollStep(p.Hops[0], "replica-2", upgrade.StepReplace).String()
	wait := upgrade.RollStep(p.Hops[0], "replica-2", upgrade.StepWait).String()
	ctx, cancel := context.WithCancelCause(context.Background())
	opts := fastOptions()
	opts.Knobs.AfterAct = func(s string) error {
		if s == replace {
			cancel(upgrade.ErrInterrupted) // Ctrl-C while the replace ran
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	err := e.Run(ctx, p)
	var se *upgrade.StepError
	if !errors.As(err, &se) || se.Step != wait || !errors.Is(err, upgrade.ErrInterrupted) {
		t.Fatalf("run: %v, want an interruption before %s", err, wait)
	}
	j, _ := journal.Open(dir)
	if st := j.State(); !st.IsDone(replace) || st.IsPending(wait) {
		t.Errorf("journal: replace done %v, wait pending %v; want the replace done and the wait not begun", st.IsDone(replace), st.IsPending(wait))
	}
	if v := c.Versions()["replica-2"]; v != p.Hops[0].To.String() {
		t.Errorf("replica-2 runs %s after its replace finished, want %s", v, p.Hops[0].To)
	}
	e2, _ := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
}

// TestAbortCutsTheActionShort: a second Ctrl-C (Options.Abort) ends an
// action that hangs; the step's failure is journaled and the run resumes.
func TestAbortCutsTheActionShort(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	replace := upgrade.RollStep(p.Hops[0], "replica-1", upgrade.StepReplace).String()
	c.HangAt(replace, upgradetest.OpReplace, 1)
	abort, abortNow := context.WithCancelCause(context.Background())
	opts := fastOptions()
	opts.Abort = abort
	e, _ := engine(t, c, dir, opts)
	e.OnEvent = func(ev upgrade.Event) {
		if ev.Type == upgrade.EventStepStart && ev.Step == replace {
			abortNow(upgrade.ErrInterrupted)
		}
	}
	err := e.Run(context.Background(), p)
	var se *upgrade.StepError
	if !errors.As(err, &se) || se.Step != replace || !errors.Is(err, upgrade.ErrInterrupted) {
		t.Fatalf("run: %v, want the aborted replace", err)
	}
	j, _ := journal.Open(dir)
	if st := j.State(); st.Failed[replace].Seq == 0 {
		t.Errorf("the aborted step's failure is not journaled")
	}
	if v := c.Versions()["replica-1"]; v != source {
		t.Errorf("replica-1 runs %s after an aborted replace, want %s", v, source)
	}
	e2, _ := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
}

// TestUnfinishedThatChangedNothingGivenUp: an upgrade that stopped before
// it replaced a replica or migrated data (here: its target's artifact is
// missing) does not hold the cluster: an upgrade to another target runs.
func TestUnfinishedThatChangedNothingGivenUp(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	c.RemoveArtifact(p.Hops[0].To.String())
	e, _ := engine(t, c, dir, fastOptions())
	var se *upgrade.StepError
	if err := e.Run(context.Background(), p); !errors.As(err, &se) || se.Step != upgrade.HopStep(p.Hops[0], upgrade.StepPreflight).String() {
		t.Fatalf("first run: %v, want a failed preflight", err)
	}
	j, _ := journal.Open(dir)
	if _, ok, err := upgrade.Unfinished(j); ok || err != nil {
		t.Fatalf("Unfinished = %v, %v: an upgrade that changed nothing must not hold the cluster", ok, err)
	}
	other := makePlan(t, source, "2.2.4")
	e2, rec := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), other); err != nil {
		t.Fatalf("run to another target: %v", err)
	}
	if v := c.Versions()["replica-1"]; v != "2.2.4" {
		t.Errorf("replica-1 runs %s, want 2.2.4", v)
	}
	if notes := rec.ofType(upgrade.EventNote); !slices.ContainsFunc(notes, func(ev upgrade.Event) bool {
		return strings.Contains(ev.Message, "changed nothing")
	}) {
		t.Errorf("no note says the first upgrade was given up: %+v", notes)
	}
	assertJournal(t, dir)
}
