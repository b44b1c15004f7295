package upgrade_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestStepTimeoutNamesStep(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	step := upgrade.HopStep(p.Hops[0], upgrade.StepMigrate).String()
	c.HangAt(step, upgradetest.OpRunJob, 1)
	opts := fastOptions()
	opts.StepTimeout = 100 * 1e6 // 100ms
	e, _ := engine(t, c, dir, opts)
	err := e.Run(context.Background(), p)
	var se *upgrade.StepError
	if !errors.As(err, &se) || se.Step != step || !errors.Is(err, upgrade.ErrStepTimeout) {
		t.Fatalf("run: %v, want a step timeout at %s", err, step)
	}
	if !strings.Contains(err.Error(), step+" ran longer than") {
		t.Errorf("error %q does not name the step in its cause", err)
	}
	e2, _ := engine(t, c, dir, fastOptions())
	if err := e2.Run(context.Background(), p); err != nil {
		t.Fatalf("resume: %v", err)
	}
	assertUpgraded(t, c)
}
