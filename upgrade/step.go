package upgrade

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ladder-dev/ladder/journal"
)

// stepAct is what a step does. It returns what it did, for the done record
// and the step-done event.
type stepAct func(ctx context.Context) (map[string]any, error)

// step runs one step under the journal protocol: skip it if an earlier run
// finished it; otherwise journal the intent, act (retrying after a
// remediated stall), and journal done or failed.
func (u *upgradeRun) step(ctx context.Context, ref StepRef, act stepAct) error {
	id := ref.String()
	if rec, ok := u.state.Done[id]; ok {
		u.emit(Event{Type: EventStepSkip, Step: id, Message: "done at " + rec.Time.Format(time.RFC3339)})
		return nil
	}
	if ctx.Err() != nil {
		// Interrupted between steps: this one has not begun.
		err := &StepError{Step: id, Err: fmt.Errorf("not started: %w", context.Cause(ctx)), Hint: u.hint(context.Cause(ctx))}
		u.emit(Event{Type: EventFailed, Step: id, Message: err.Error(), Fields: map[string]any{"hint": err.Hint, "started": false}})
		return err
	}
	_, repeat := u.state.Pending[id]
	if err := u.recordIntent(id, repeat); err != nil {
		return err
	}
	if k := u.opts.Knobs.BeforeAct; k != nil {
		if err := k(id); err != nil {
			return err
		}
	}
	msg := ""
	if repeat {
		msg = "repeating interrupted step"
	}
	u.emit(Event{Type: EventStepStart, Step: id, Message: msg})
	start := time.Now()
	u.timer = &stepTimer{}
	defer func() { u.timer = nil }()
	out, err := u.actWithRemediation(ctx, ref, act)
	if err != nil {
		return u.recordFailure(id, err)
	}
	if k := u.opts.Knobs.AfterAct; k != nil {
		if err := k(id); err != nil {
			return err
		}
	}
	u.timer.t.Total = time.Since(start)
	return u.recordDone(id, out, u.timer.t)
}

// recordIntent journals that step id is about to act.
func (u *upgradeRun) recordIntent(id string, repeat bool) error {
	detail := map[string]any{}
	if repeat {
		detail["repeat"] = true
	}
	if _, err := u.j.Append(id, journal.Intent, detail); err != nil {
		return fmt.Errorf("journal %s: %w", id, err)
	}
	return nil
}

// actWithRemediation runs act, each attempt bounded by the step timeout.
// When an attempt ends in a stall and remediation is on with budget left,
// it runs a remediation round and tries again.
func (u *upgradeRun) actWithRemediation(ctx context.Context, ref StepRef, act stepAct) (map[string]any, error) {
	id := ref.String()
	for {
		sctx, cancel := context.WithTimeoutCause(ctx, u.opts.StepTimeout,
			fmt.Errorf("%w: %s ran longer than %s", ErrStepTimeout, id, u.opts.StepTimeout))
		out, err := act(withStep(sctx, id))
		cancel()
		if err != nil && ctx.Err() != nil && !errors.Is(err, context.Cause(ctx)) {
			// Whatever failed, it failed because the run was interrupted.
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
		stall, ok := isStall(err)
		if !ok {
			return out, err
		}
		u.emit(Event{Type: EventStall, Step: id, Replica: stall.Replica, Message: stall.Error(),
			Fields: map[string]any{"db": stall.DB, "table": stall.Table, "applied": stall.Applied, "revision": stall.Revision}})
		if !u.opts.Remediate || u.rounds >= u.opts.RemediationBudget || ctx.Err() != nil {
			return nil, err
		}
		if rerr := u.remediate(ctx, ref.Hop, id, stall); rerr != nil {
			if _, stalled := isStall(rerr); stalled {
				continue // the round did not settle the store: retry the step, maybe another round
			}
			return nil, fmt.Errorf("%w; remediation round %d failed: %w", err, u.rounds, rerr)
		}
	}
}

// recordFailure journals err as step id's failure and returns it as a
// *StepError with a hint.
func (u *upgradeRun) recordFailure(id string, err error) error {
	se := &StepError{Step: id, Err: err, Hint: u.hint(err)}
	var out error = se
	if _, jerr := u.j.Append(id, journal.Failed, map[string]any{"error": err.Error(), "hint": se.Hint}); jerr != nil {
		out = errors.Join(se, fmt.Errorf("journal failure of %s: %w", id, jerr))
	}
	u.emit(Event{Type: EventFailed, Step: id, Message: se.Error(), Fields: map[string]any{"hint": se.Hint}})
	return out
}

// recordDone journals step id done, with what it did and its timing.
func (u *upgradeRun) recordDone(id string, out map[string]any, t Timing) error {
	if _, err := u.j.Append(id, journal.Done, stepDone{Timing: t, Result: out}); err != nil {
		return fmt.Errorf("journal %s: %w", id, err)
	}
	fields := map[string]any{"duration": t.Total}
	for k, v := range out {
		fields[k] = v
	}
	u.emit(Event{Type: EventStepDone, Step: id, Fields: fields})
	return nil
}
