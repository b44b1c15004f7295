package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestSummarizeInterrupted(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	step := upgrade.RollStep(p.Hops[1], "replica-3", upgrade.StepWait).String()
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
