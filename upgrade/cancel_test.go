package upgrade_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestInterruptedRunResumes(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	step := upgrade.RollStepID(p.Hops[2], "replica-2", upgrade.StepReplace)
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
	if !strings.HasPrefix(se.Hint, "interrupted: run `ladder upgrade --cluster test --to 3.1.2`") {
		t.Errorf("hint %q", se.Hint)
	}
	e2, _ := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
	assertJournal(t, dir)
}

func TestMaxWaitWhileCatchingUp(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	c.CatchUp = 1
	c.WritesWhileDown = 1_000_000
	opts := fastOptions()
	opts.MaxWait = 20 * time.Millisecond
	e, _ := engine(t, c, t.TempDir(), opts)
	err := e.Run(context.Background(), makePlan(t, source, target))
	if !errors.Is(err, upgrade.ErrWaitTimeout) {
		t.Fatalf("run: %v, want ErrWaitTimeout (progress, but too slow)", err)
	}
	if _, stalled := errors.AsType[*upgrade.StallError](err); stalled {
		t.Errorf("a replica that keeps catching up is not a stall: %v", err)
	}
	if !strings.Contains(err.Error(), "behind on table registry/events") {
		t.Errorf("error %q does not say who is behind", err)
	}
}
