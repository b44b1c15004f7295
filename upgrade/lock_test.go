package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
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
		if s == upgrade.StepID(p.Hops[0], upgrade.StepBackup) {
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

// TestStepsMatchJournal: the dry-run listing is exactly what a run
// journals, hop by hop, given each hop's roll order.
func TestStepsMatchJournal(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	st, _ := c.App().Status(context.Background(), nil)
	initial := upgrade.RollOrder(st, []string{"replica-3", "replica-1", "replica-2"})
	if !slices.Equal(initial, []string{"replica-2", "replica-3", "replica-1"}) {
		t.Fatalf("roll order %v: want followers by ID, leader last", initial)
	}
	e, rec := engine(t, c, dir, fastOptions())
	if err := e.Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	js := assertJournal(t, dir)
	got := doneSteps(js)

	var want []string
	for _, h := range p.Hops {
		note, ok := js.LastNote("hop/" + h.ID() + "/roll")
		if !ok {
			t.Fatalf("no roll order journaled for %s", h.ID())
		}
		var d struct{ Order []string }
		if err := note.Decode(&d); err != nil {
			t.Fatal(err)
		}
		want = append(want, upgrade.Steps(plan.Plan{From: h.From, To: h.To, Hops: []plan.Hop{h}}, d.Order)...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("journaled steps differ from Steps:\n got %v\nwant %v", got, want)
	}
	// The first hop rolls in the order RollOrder gave before the run.
	hop1 := upgrade.Steps(plan.Plan{Hops: p.Hops[:1]}, initial)
	if !slices.Equal(got[:len(hop1)], hop1) {
		t.Errorf("first hop steps %v, want %v", got[:len(hop1)], hop1)
	}
	// Every listed step of the whole plan is journaled (in some roll order).
	all := upgrade.Steps(p, initial)
	slices.Sort(all)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(all, sorted) {
		t.Errorf("Steps lists a different set of steps than the run journaled")
	}
	if n := len(rec.ofType(upgrade.EventStepDone)); n != len(got) {
		t.Errorf("%d step-done events for %d done steps", n, len(got))
	}
}

func TestRollingRestart(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	c.Stick("replica-3", upgradetest.CureRestartAll)
	rec := &recorder{}
	if err := upgrade.RollingRestart(context.Background(), c, c.App(), stallOptions(), nil, rec.add); err != nil {
		t.Fatalf("rolling restart: %v", err)
	}
	var order []string
	for _, ev := range rec.ofType(upgrade.EventStepStart) {
		order = append(order, ev.Replica)
	}
	if !slices.Equal(order, []string{"replica-2", "replica-3", "replica-1"}) {
		t.Errorf("restart order %v, want followers first, leader last", order)
	}
	for _, id := range order {
		if c.Restarts(id) != 1 {
			t.Errorf("%s restarted %d times", id, c.Restarts(id))
		}
	}
	st, _ := c.App().Status(context.Background(), nil)
	if !st.Store.Settled {
		t.Error("store not settled after the rolling restart")
	}
	if len(rec.ofType(upgrade.EventDone)) != 1 {
		t.Error("no done event")
	}
}

func TestRollingRestartStuckForGood(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	c.Stick("replica-3", upgradetest.CureNever)
	err := upgrade.RollingRestart(context.Background(), c, c.App(), stallOptions(), nil, nil)
	var stall *upgrade.StallError
	if !errors.As(err, &stall) || stall.Replica != "replica-3" {
		t.Fatalf("rolling restart: %v, want a stall on replica-3", err)
	}
}

func TestSummarizeInterrupted(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	step := upgrade.RollStepID(p.Hops[1], "replica-3", upgrade.StepWait)
	opts := fastOptions()
	opts.Knobs.AfterAct = func(s string) error {
		if s == step {
			return errCrash
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	if err := e.Run(context.Background(), p); !errors.Is(err, errCrash) {
		t.Fatal(err)
	}
	j, _ := journal.Open(dir)
	sum, err := upgrade.Summarize(j)
	if err != nil {
		t.Fatal(err)
	}
	if sum.State != upgrade.StateInterrupted || sum.Current != step || sum.Version != "2.2.5" || sum.Failure != nil {
		t.Errorf("summary: state=%s current=%s version=%s failure=%v", sum.State, sum.Current, sum.Version, sum.Failure)
	}
	states := []string{sum.Hops[0].State, sum.Hops[1].State, sum.Hops[2].State}
	if !slices.Equal(states, []string{upgrade.StateDone, upgrade.StateInterrupted, upgrade.StatePending}) {
		t.Errorf("hop states %v", states)
	}
	if _, ok := sum.Hops[0].Timing["restart"]; !ok || sum.Hops[0].Duration <= 0 {
		t.Errorf("hop 1 timing: %v %v", sum.Hops[0].Duration, sum.Hops[0].Timing)
	}
	if _, err := json.Marshal(sum); err != nil {
		t.Fatal(err)
	}

	empty, _ := journal.Open(t.TempDir())
	if s, err := upgrade.Summarize(empty); err != nil || s.State != upgrade.StateNone {
		t.Errorf("empty journal: %+v, %v", s, err)
	}
}
