package upgrade_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

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

// freezeAt freezes replica id when step is about to act.
func freezeAt(c *upgradetest.Cluster, step, id string) func(string) error {
	done := false
	return func(s string) error {
		if s == step && !done {
			done = true
			return c.Freeze(context.Background(), id)
		}
		return nil
	}
}

func TestFrozenReplicaRemediated(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	opts := stallOptions()
	// replica-2 freezes while hop 2 is about to replace replica-3: the
	// settle wait before the replace stalls on it.
	opts.Knobs.BeforeAct = freezeAt(c, upgrade.RollStep(p.Hops[1], "replica-3", upgrade.StepReplace).String(), "replica-2")
	e, rec := engine(t, c, dir, opts)
	if err := e.Run(context.Background(), p); err != nil {
		t.Fatalf("run: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)

	stalls := rec.ofType(upgrade.EventStall)
	// Named as a fault, from one probe: not after StallAfter without progress.
	if len(stalls) != 1 || stalls[0].Replica != "replica-2" || !strings.Contains(stalls[0].Message, "replica-2 answers nothing") ||
		strings.Contains(stalls[0].Message, "no progress") {
		t.Fatalf("stall events = %+v, want one naming replica-2 as frozen", stalls)
	}
	if c.Restarts("replica-2") != 5 {
		t.Errorf("replica-2 started %d times, want 4 hops + 1 remediation", c.Restarts("replica-2"))
	}
	j, _ := journal.Open(dir)
	sum, err := upgrade.Summarize(j)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range sum.Remediations {
		actions = append(actions, r.Action+":"+r.Replica)
	}
	if strings.Join(actions, ",") != "start:,restart:replica-2,settled:" {
		t.Errorf("remediation history %v", actions)
	}
	if sum.Remediations[0].For != upgrade.RollStep(p.Hops[1], "replica-3", upgrade.StepReplace).String() {
		t.Errorf("remediation for %q", sum.Remediations[0].For)
	}
	if sum.State != upgrade.StateDone || sum.Version != target || sum.Runs != 1 {
		t.Errorf("summary: state=%s version=%s runs=%d", sum.State, sum.Version, sum.Runs)
	}
	for _, cat := range []string{"restart", "settle", "migration", "remediation", "backup"} {
		if _, ok := sum.Timing[cat]; !ok {
			t.Errorf("summary timing lacks %q: %v", cat, sum.Timing)
		}
	}
	if len(sum.Backups) != 3 {
		t.Errorf("summary lists %d backups, want 3", len(sum.Backups))
	}
}

func TestFrozenReplicaWithoutRemediation(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	opts := stallOptions()
	opts.Remediate = false
	step := upgrade.RollStep(p.Hops[1], "replica-3", upgrade.StepReplace).String()
	opts.Knobs.BeforeAct = freezeAt(c, step, "replica-2")
	e, rec := engine(t, c, dir, opts)
	err := e.Run(context.Background(), p)
	var stall *upgrade.StallError
	var se *upgrade.StepError
	if !errors.As(err, &stall) || !errors.As(err, &se) {
		t.Fatalf("run: %v, want a StepError wrapping a StallError", err)
	}
	if stall.Replica != "replica-2" || se.Step != step {
		t.Errorf("stall names %q at %q, want replica-2 at %s", stall.Replica, se.Step, step)
	}
	if !strings.Contains(se.Hint, "ladder restart --cluster test --rolling") || !strings.Contains(se.Hint, "ladder upgrade --cluster test --to 3.1.2") {
		t.Errorf("hint %q", se.Hint)
	}
	if n := len(rec.ofType(upgrade.EventRemediation)); n != 0 {
		t.Errorf("%d remediation events: remediation is off", n)
	}

	if err := c.Thaw(context.Background(), "replica-2"); err != nil {
		t.Fatal(err)
	}
	opts.Knobs.BeforeAct = nil
	e2, _ := engine(t, c, dir, opts)
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume after thaw: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
}

func TestStuckReplica(t *testing.T) {
	tests := []struct {
		name      string
		cure      upgradetest.Cure
		remediate bool
		// wantErr: the run fails; else it completes.
		wantErr bool
		// restarts of replica-1 (a healthy one) on top of the 4 hops.
		extraRestarts int
		// rounds is the number of remediation rounds journaled.
		rounds int
	}{
		{name: "cured by restarting it", cure: upgradetest.CureRestart, remediate: true, rounds: 1},
		{name: "cured by restarting every replica", cure: upgradetest.CureRestartAll, remediate: true, extraRestarts: 1, rounds: 1},
		{name: "never cured: budget used up", cure: upgradetest.CureNever, remediate: true, wantErr: true, extraRestarts: 2, rounds: 2},
		{name: "remediation off", cure: upgradetest.CureRestart, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := upgradetest.New("test", source, 3)
			dir := t.TempDir()
			p := makePlan(t, source, target)
			opts := stallOptions()
			opts.Remediate = tt.remediate
			step := upgrade.HopStep(p.Hops[2], upgrade.StepPreflight).String()
			opts.Knobs.BeforeAct = func(s string) error {
				if s == step {
					c.Stick("replica-2", tt.cure)
				}
				return nil
			}
			e, rec := engine(t, c, dir, opts)
			err := e.Run(context.Background(), p)
			if tt.wantErr {
				var stall *upgrade.StallError
				if !errors.As(err, &stall) {
					t.Fatalf("run: %v, want a stall", err)
				}
				if stall.Replica != "replica-2" || stall.DB != "registry" || stall.Table == "" || stall.Applied >= stall.Revision {
					t.Errorf("stall = %+v", stall)
				}
				want := "replica-2 stalled on table registry/" + stall.Table + ": applied "
				if !strings.HasPrefix(stall.Error(), want) || !strings.Contains(stall.Error(), "(no progress for ") {
					t.Errorf("stall message %q", stall.Error())
				}
			} else if err != nil {
				t.Fatalf("run: %v", err)
			} else {
				assertUpgraded(t, c)
				assertJournal(t, dir)
			}
			if got := c.Restarts("replica-1"); got != 4+tt.extraRestarts && !tt.wantErr {
				t.Errorf("replica-1 started %d times, want %d", got, 4+tt.extraRestarts)
			}
			starts := 0
			for _, ev := range rec.ofType(upgrade.EventRemediation) {
				if ev.Fields["action"] == "start" {
					starts++
				}
			}
			if starts != tt.rounds {
				t.Errorf("%d remediation rounds, want %d", starts, tt.rounds)
			}
		})
	}
}

// TestKilledReplicaNamedAndRestarted: a follower's process dies while the
// engine waits for the store to settle; the wait names it at once, with
// what it logged last, and remediation starts it again.
func TestKilledReplicaNamedAndRestarted(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	opts := stallOptions()
	opts.StallAfter = time.Hour // a fault must not need it
	opts.MaxWait = 2 * time.Hour
	step := upgrade.RollStep(p.Hops[0], "replica-2", upgrade.StepReplace).String()
	killed := false
	opts.Knobs.BeforeAct = func(s string) error {
		if s == step && !killed {
			killed = true
			c.Kill("replica-3")
		}
		return nil
	}
	e, rec := engine(t, c, dir, opts)
	if err := e.Run(context.Background(), p); err != nil {
		t.Fatalf("run: %v", err)
	}
	assertUpgraded(t, c)
	stalls := rec.ofType(upgrade.EventStall)
	if len(stalls) != 1 || stalls[0].Replica != "replica-3" || !strings.Contains(stalls[0].Message, "replica-3 is not running") {
		t.Fatalf("stall events = %+v, want one naming replica-3 as not running", stalls)
	}
	rems := rec.ofType(upgrade.EventRemediation)
	if len(rems) == 0 || rems[0].Replica != "replica-3" {
		t.Errorf("remediation events = %+v, want a restart of replica-3", rems)
	}
}

// TestKilledReplicaStopsWithItsLog: without remediation, the step fails
// naming the dead replica, and the error carries its last log lines.
func TestKilledReplicaStopsWithItsLog(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	opts := stallOptions()
	opts.Remediate = false
	opts.StallAfter = time.Hour
	opts.MaxWait = 2 * time.Hour
	step := upgrade.HopStep(p.Hops[0], upgrade.StepPreflight).String()
	opts.Knobs.BeforeAct = func(s string) error {
		if s == step {
			c.Kill("replica-1")
		}
		return nil
	}
	e, _ := engine(t, c, dir, opts)
	err := e.Run(context.Background(), p)
	var stall *upgrade.StallError
	if !errors.As(err, &stall) || stall.Replica != "replica-1" || !stall.Fault || !strings.Contains(stall.Log, "killed") {
		t.Fatalf("run: %v (stall %+v), want a fault on replica-1 with its log", err, stall)
	}
}
