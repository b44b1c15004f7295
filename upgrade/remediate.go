package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ladder-dev/ladder/driver"
)

// remediate runs one remediation round for a stall in step: restart the
// lagging replica and wait for it and the store; if the store does not
// settle, restart every replica one at a time. nil means the store
// settled and the step may be retried.
func (r *runner) remediate(ctx context.Context, prefix, step string, stall *StallError) error {
	defer r.track("remediation", time.Now())
	r.rounds++
	round := r.rounds
	base := fmt.Sprintf("%s/remediate/round-%d", prefix, round)
	ev := func(action, replica, msg string) {
		r.emit(Event{Type: EventRemediation, Step: base, Replica: replica, Message: msg,
			Fields: map[string]any{"round": round, "budget": r.opts.RemediationBudget, "action": action, "for": step}})
	}
	if err := r.note(base, map[string]any{"step": step, "stall": stall.Error(), "budget": r.opts.RemediationBudget}); err != nil {
		return err
	}
	ev("start", stall.Replica, fmt.Sprintf("remediation round %d of %d for %s", round, r.opts.RemediationBudget, step))
	if id := stall.Replica; id != "" {
		rstep := base + "/restart/" + id
		if err := r.note(rstep, map[string]any{"why": "stalled"}); err != nil {
			return err
		}
		ev("restart", id, "restart "+id)
		err := r.restartOne(ctx, rstep, id)
		if err == nil {
			_, err = r.wait(ctx, rstep, settledGate())
		}
		if err == nil {
			ev("settled", id, "store settled after restarting "+id)
			return r.note(base+"/settled", nil)
		}
		if _, ok := isStall(err); !ok {
			_ = r.note(base+"/gave-up", map[string]any{"error": err.Error()})
			ev("gave-up", id, err.Error())
			return err
		}
		ev("rolling-restart", "", fmt.Sprintf("store still not settled after restarting %s (%v): restart every replica one at a time", id, err))
	} else {
		ev("rolling-restart", "", "restart every replica one at a time")
	}
	if err := r.rollingRestart(ctx, base, func(id string) {
		_ = r.note(base+"/restart/"+id, map[string]any{"why": "rolling restart"})
		ev("restart", id, "restart "+id)
	}); err != nil {
		_ = r.note(base+"/gave-up", map[string]any{"error": err.Error()})
		ev("gave-up", "", err.Error())
		return err
	}
	ev("settled", "", "store settled after restarting every replica")
	return r.note(base+"/settled", nil)
}

// restartOne restarts replica id and waits until it answers again.
func (r *runner) restartOne(ctx context.Context, step, id string) error {
	start := time.Now()
	if err := r.drv.Restart(withStep(ctx, step), id); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	_, err := r.wait(withStep(ctx, step), step, replicaGate(id, nil))
	r.track("restart", start)
	return err
}

// rollingRestart restarts every replica one at a time, followers first,
// each time waiting for it to answer (health and UI) and for the store to
// settle. A store that does not settle while replicas remain to be
// restarted is not an error yet (a later restart may be the cure); after
// the last one it is. before is called before each restart.
func (r *runner) rollingRestart(ctx context.Context, base string, before func(id string)) error {
	reps, err := r.drv.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("list replicas: %w", err)
	}
	ids := make([]string, len(reps))
	for i, rep := range reps {
		ids[i] = rep.ID
	}
	st, err := r.app.Status(ctx, reps)
	if err != nil {
		return fmt.Errorf("probe cluster: %w", err)
	}
	order := RollOrder(st, ids)
	for i, id := range order {
		step := joinStep(base, "restart/"+id)
		if before != nil {
			before(id)
		}
		if err := r.restartOne(ctx, step, id); err != nil {
			return err
		}
		_, err := r.wait(withStep(ctx, step), step, settledGate())
		if err == nil {
			continue
		}
		if _, ok := isStall(err); ok && i < len(order)-1 {
			r.emit(Event{Type: EventNote, Step: step, Message: fmt.Sprintf("store not settled yet (%v): restarting the next replica", err)})
			continue
		}
		return err
	}
	return nil
}

func joinStep(base, rest string) string {
	if base == "" {
		return rest
	}
	return base + "/" + rest
}

// WaitSettled waits, with the same helper as every gate of an upgrade,
// until every replica is healthy with its UI answering and the store has
// settled: while replicas make progress up to opts.MaxWait, and no longer
// than opts.StallAfter without progress, when it returns a *StallError that
// names the replica and the gap. It journals nothing and does not
// remediate. Events use step "wait/settled".
func WaitSettled(ctx context.Context, drv driver.Driver, app App, opts Options, log *slog.Logger, onEvent func(Event)) (driver.Status, error) {
	r := newRunner(drv, app, nil, log, onEvent, opts)
	return r.wait(ctx, "wait/settled", settledGate())
}

// RollingRestart restarts every replica of the cluster one at a time,
// followers first and the leader last, each time waiting for the replica
// to come back healthy with its UI answering and for the store to settle:
// the seed's manual recovery, automated. Events use steps
// "restart/<replica>" (step-start, step-done) and end with done.
func RollingRestart(ctx context.Context, drv driver.Driver, app App, opts Options, log *slog.Logger, onEvent func(Event)) error {
	r := newRunner(drv, app, nil, log, onEvent, opts)
	return r.rollingRestartRun(ctx)
}

// RollingRestart is the package function RollingRestart under the
// engine's upgrade lock (when it has a journal), so that it does not run
// while an upgrade does. It journals nothing.
func (e *Engine) RollingRestart(ctx context.Context) (err error) {
	r := newRunner(e.Driver, e.App, nil, e.Log, e.OnEvent, e.Options)
	if e.Journal != nil {
		if _, err := e.Journal.Lock(r.opts.Holder + " (rolling restart)"); err != nil {
			return err
		}
		defer func() {
			if uerr := e.Journal.Unlock(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}()
	}
	return r.rollingRestartRun(ctx)
}

func (r *runner) rollingRestartRun(ctx context.Context) error {
	start := time.Now()
	var cur string
	var curStart time.Time
	finish := func() {
		if cur != "" {
			r.emit(Event{Type: EventStepDone, Step: cur, Fields: map[string]any{"duration": time.Since(curStart)}})
		}
	}
	err := r.rollingRestart(ctx, "", func(id string) {
		finish()
		cur, curStart = "restart/"+id, time.Now()
		r.emit(Event{Type: EventStepStart, Step: cur, Message: "restart " + id})
	})
	if err != nil {
		r.emit(Event{Type: EventFailed, Step: cur, Message: err.Error(),
			Fields: map[string]any{"hint": "check the replica named above (`ladder status`), then run the restart again"}})
		return fmt.Errorf("rolling restart of %s: %w", r.drv.Cluster(), err)
	}
	finish()
	r.emit(Event{Type: EventDone, Message: fmt.Sprintf("every replica of %s restarted, store settled", r.drv.Cluster()),
		Fields: map[string]any{"duration": time.Since(start)}})
	return nil
}
