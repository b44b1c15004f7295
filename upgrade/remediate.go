package upgrade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ladder-dev/ladder/driver"
)

// remediate runs one remediation round for a stall in step (of hop, ""
// outside one): restart the lagging replica and wait for it and the store;
// if the store does not settle, restart every replica one at a time. nil
// means the store settled and the step may be retried.
func (r *runner) remediate(ctx context.Context, hop, step string, stall *StallError) error {
	defer r.timer.since(CategoryRemediation, time.Now())
	r.rounds++
	round := StepRef{Hop: hop, Name: StepRemediate, Round: r.rounds}
	action := func(a, replica string) StepRef {
		ref := round
		ref.Action, ref.Replica = a, replica
		return ref
	}
	ev := func(a, replica, msg string) {
		r.emit(Event{Type: EventRemediation, Step: round.String(), Replica: replica, Message: msg,
			Fields: map[string]any{"round": round.Round, "budget": r.opts.RemediationBudget, "action": a, "for": step}})
	}
	// gaveUp journals and reports why the round stopped, and returns cause.
	gaveUp := func(replica string, cause error) error {
		ev(ActionGaveUp, replica, cause.Error())
		if err := r.note(action(ActionGaveUp, ""), map[string]any{"error": cause.Error()}); err != nil {
			return errors.Join(cause, err)
		}
		return cause
	}
	settled := func(replica, msg string) error {
		ev(ActionSettled, replica, msg)
		return r.note(action(ActionSettled, ""), nil)
	}
	if err := r.note(round, map[string]any{"step": step, "stall": stall.Error(), "budget": r.opts.RemediationBudget}); err != nil {
		return err
	}
	ev(ActionStart, stall.Replica, fmt.Sprintf("remediation round %d of %d for %s", round.Round, r.opts.RemediationBudget, step))
	if id := stall.Replica; id != "" {
		restart := action(ActionRestart, id)
		if err := r.note(restart, map[string]any{"why": "stalled"}); err != nil {
			return err
		}
		ev(ActionRestart, id, "restart "+id)
		err := r.restartOne(ctx, restart.String(), id)
		if err == nil {
			_, err = r.wait(ctx, restart.String(), settledGate())
		}
		if err == nil {
			return settled(id, "store settled after restarting "+id)
		}
		if _, ok := isStall(err); !ok {
			return gaveUp(id, err)
		}
		ev(ActionRolling, "", fmt.Sprintf("store still not settled after restarting %s (%v): restart every replica one at a time", id, err))
	} else {
		ev(ActionRolling, "", "restart every replica one at a time")
	}
	if err := r.rollingRestart(ctx, func(id string) (string, error) {
		restart := action(ActionRestart, id)
		if err := r.note(restart, map[string]any{"why": "rolling restart"}); err != nil {
			return "", err
		}
		ev(ActionRestart, id, "restart "+id)
		return restart.String(), nil
	}); err != nil {
		return gaveUp("", err)
	}
	return settled("", "store settled after restarting every replica")
}

// restartOne restarts replica id and waits until it answers again.
func (r *runner) restartOne(ctx context.Context, step, id string) error {
	start := time.Now()
	actx, done := r.actionContext(withStep(ctx, step))
	delete(r.up, id)
	err := r.drv.Restart(actx, id)
	done()
	if err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	_, err = r.wait(withStep(ctx, step), step, replicaGate(id, nil))
	r.timer.since(CategoryRestart, start)
	return err
}

// rollingRestart restarts every replica one at a time, followers first,
// each time waiting for it to answer (health and UI) and for the store to
// settle. A replica that does not come back, or a store that does not
// settle, while replicas remain to be restarted is not an error yet: a
// later restart may be the cure (a store that lost its quorum needs most
// of its members back before any is healthy); after the last one it is. before is called before each restart and returns
// the step ID the restart goes under.
func (r *runner) rollingRestart(ctx context.Context, before func(id string) (string, error)) error {
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
		step, err := before(id)
		if err != nil {
			return err
		}
		err = r.restartOne(ctx, step, id)
		if err == nil {
			_, err = r.wait(withStep(ctx, step), step, settledGate())
		}
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

// WaitSettled waits, with the same helper as every gate of an upgrade,
// until every replica is healthy with its UI answering and the store has
// settled: while replicas make progress up to opts.MaxWait, and no longer
// than opts.StallAfter without progress, when it returns a *StallError that
// names the replica and the gap. It journals nothing and does not
// remediate. Events use step "wait/settled".
func WaitSettled(ctx context.Context, drv driver.Driver, app App, opts Options, log *slog.Logger, onEvent func(Event)) (Status, error) {
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
		r.opts.Holder += " (rolling restart)"
		if _, err := e.Journal.Lock(r.opts.Holder); err != nil {
			return err
		}
		defer func() {
			if uerr := e.Journal.Unlock(); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}()
		if cr := recordOf(e.App); cr != nil {
			var release func()
			ctx, release, err = e.holdRecord(ctx, r, cr, r.opts.StallAfter)
			var ue *UnreachableError
			switch {
			case errors.As(err, &ue):
				// A rolling restart is the cure for a store that lost
				// its quorum, which keeps the record too: go on.
				r.emit(Event{Type: EventNote, Message: fmt.Sprintf("the cluster's upgrade record cannot be reached (%s): restarting without the cluster's lock; make sure no upgrade of it runs from another machine", ue.Last)})
			case err != nil:
				return err
			default:
				defer release()
			}
		}
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
	err := r.rollingRestart(ctx, func(id string) (string, error) {
		finish()
		cur, curStart = StepRef{Name: StepRestart, Replica: id}.String(), time.Now()
		r.emit(Event{Type: EventStepStart, Step: cur, Message: "restart " + id})
		return cur, nil
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
