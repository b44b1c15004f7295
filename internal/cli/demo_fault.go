package cli

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/upgrade"
)

// faultReport is what the demo's fault did: which replica was frozen, and
// how long the engine took to name the stall.
type faultReport struct {
	frozen   string
	detected time.Duration
}

// faultInjector freezes a follower once the plan's second hop has replaced
// its first replica, while the engine waits for that replica to come back,
// and notes when the engine reports the stall. It sees the engine's events
// through a buffered channel and decides on its own goroutine, so the
// engine's event callback never waits on a status probe or a freeze; the
// wait it lands in lasts seconds, far longer than the decision.
type faultInjector struct {
	d      *demo
	fz     driver.Freezer
	events chan upgrade.Event
	done   chan struct{}

	mu       sync.Mutex
	frozenAt time.Time
	report   faultReport
}

func newFaultInjector(ctx context.Context, d *demo, fz driver.Freezer) *faultInjector {
	f := &faultInjector{d: d, fz: fz, events: make(chan upgrade.Event, 1024), done: make(chan struct{})}
	go f.loop(ctx)
	return f
}

// see hands an event to the injector without blocking; an event that
// finds the buffer full is dropped (it can only be a progress event the
// injector would not act on: the buffer holds far more than a hop emits
// between the two events it waits for).
func (f *faultInjector) see(ev upgrade.Event) {
	select {
	case f.events <- ev:
	default:
	}
}

// stop ends the injector, thaws the frozen replica if the engine did not
// restart it, and reports.
func (f *faultInjector) stop() faultReport {
	close(f.events)
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.report.frozen != "" {
		_ = f.fz.Thaw(context.Background(), f.report.frozen)
	}
	return f.report
}

func (f *faultInjector) loop(ctx context.Context) {
	defer close(f.done)
	second := f.d.plan.Hops[1]
	for ev := range f.events {
		f.mu.Lock()
		frozen := f.report.frozen
		f.mu.Unlock()
		ref, _ := upgrade.ParseStep(ev.Step)
		switch {
		case frozen != "" && ev.Type == upgrade.EventStall:
			f.mu.Lock()
			if f.report.detected == 0 {
				f.report.detected = ev.Time.Sub(f.frozenAt)
			}
			f.mu.Unlock()
		case frozen == "" && ev.Type == upgrade.EventStepStart && ref.Hop == second.ID() && ref.Name == upgrade.StepWait:
			f.freezeFollower(ctx, ref.Replica, second.To.String())
		}
	}
}

// freezeFollower freezes a follower other than replaced that has not been
// upgraded to to yet.
func (f *faultInjector) freezeFollower(ctx context.Context, replaced, to string) {
	st, err := f.d.env.clusterStatus(ctx, f.d.drv)
	if err != nil {
		return
	}
	for _, r := range st.Replicas {
		if r.ID == replaced || r.Leader || r.Version == to {
			continue
		}
		if err := f.fz.Freeze(ctx, r.ID); err != nil {
			return
		}
		f.mu.Lock()
		f.report.frozen, f.frozenAt = r.ID, time.Now()
		f.mu.Unlock()
		how := map[string]string{local.Name: "SIGSTOP", docker.Name: "docker pause", "swarm": "docker pause of the task's container"}[f.d.driverName]
		fmt.Fprintf(f.d.env.stderr, "WARN  [demo] froze %s (%s): watch ladder notice and repair it\n", r.ID, how)
		return
	}
}
