package upgrade_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

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

func TestUnansweringClusterStatus(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	p := makePlan(t, source, target)
	c.FailAt("", upgradetest.OpStatus, errors.New("no route to host"), 0)
	opts := stallOptions()
	opts.Remediate = false
	e, _ := engine(t, c, t.TempDir(), opts)
	err := e.Run(context.Background(), p)
	var stall *upgrade.StallError
	if !errors.As(err, &stall) || stall.Replica != "" || !strings.HasPrefix(stall.Error(), "cluster status unavailable: no route to host") {
		t.Fatalf("run: %v", err)
	}
}

func TestWaitProgressEvents(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	c.CatchUp = 1
	c.WritesWhileDown = 20
	e, rec := engine(t, c, t.TempDir(), fastOptions())
	if err := e.Run(context.Background(), makePlan(t, source, "2.2.5")); err != nil {
		t.Fatal(err)
	}
	var lagged bool
	for _, ev := range rec.ofType(upgrade.EventWaitProgress) {
		if lags, ok := ev.Fields["lagging"].([]upgrade.Lag); ok && len(lags) > 0 && lags[0].Revision > lags[0].Applied {
			lagged = true
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("event does not encode: %v", err)
		}
	}
	if !lagged {
		t.Error("no wait-progress event reported a lagging replica with its numbers")
	}
}
