package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
)

// App is what the engine knows of the service it upgrades.
type App interface {
	// Status probes the replicas and returns the cluster's status. An
	// unreachable replica is reported in the status, not as an error.
	Status(ctx context.Context, replicas []driver.Replica) (Status, error)
	// MigrateJob is the job that migrates the store to toSchema; the
	// engine runs it with Driver.RunJob and the hop's TO release. It must
	// be idempotent: run again, it finishes what is left.
	MigrateJob(toSchema int) driver.Job
	// Backup writes a consistent snapshot of the store, taken via a replica.
	Backup(ctx context.Context, via driver.Replica, w io.Writer) error
}

// Engine runs upgrade plans against one cluster. Driver, App and Journal
// are required; Log and OnEvent may be nil.
type Engine struct {
	Driver  driver.Driver
	App     App
	Journal *journal.Journal
	Log     *slog.Logger
	// OnEvent receives progress events, one at a time and in order: from
	// the goroutine that called Run, or, for EventFault, from the one that
	// watches the replicas while an action runs. It must return quickly.
	OnEvent func(Event)
	Options Options
}

// runner is what Run and RollingRestart share: the wait helper, events,
// journal notes and remediation.
type runner struct {
	drv     driver.Driver
	app     App
	j       *journal.Journal // nil: nothing is journaled
	log     *slog.Logger
	onEvent func(Event)
	opts    Options

	target string     // for hints
	rounds int        // remediation rounds used
	timer  *stepTimer // the running step's; nil outside steps
	// up marks the replicas seen healthy since the engine last started
	// them: one of them going silent is a fault, not a start.
	up map[string]bool
	// emitMu keeps events in order when the action watcher emits too.
	emitMu sync.Mutex
}

func newRunner(drv driver.Driver, app App, j *journal.Journal, log *slog.Logger, onEvent func(Event), opts Options) *runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &runner{drv: drv, app: app, j: j, log: log, onEvent: onEvent, opts: opts.withDefaults(), up: map[string]bool{}}
}

func (r *runner) emit(ev Event) {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ref := parseStep(ev.Step)
	if ev.Hop == "" {
		ev.Hop = ref.Hop
	}
	if ev.Replica == "" {
		ev.Replica = ref.Replica
	}
	level := slog.LevelInfo
	switch ev.Type {
	case EventWaitProgress, EventStepSkip:
		level = slog.LevelDebug
	case EventStall, EventRemediation, EventFault:
		level = slog.LevelWarn
	case EventFailed:
		level = slog.LevelError
	}
	msg := ev.Message
	if msg == "" {
		msg = ev.Type
	}
	attrs := []any{"event", ev.Type}
	if ev.Step != "" {
		attrs = append(attrs, "step", ev.Step)
	}
	r.log.Log(context.Background(), level, msg, attrs...)
	if r.onEvent != nil {
		r.onEvent(ev)
	}
}

// note journals a note (when there is a journal).
func (r *runner) note(step StepRef, detail any) error {
	if r.j == nil {
		return nil
	}
	if _, err := r.j.Append(step.String(), journal.Note, detail); err != nil {
		return fmt.Errorf("journal note %s: %w", step, err)
	}
	return nil
}

// timedWait is wait, with its time counted under category.
func (r *runner) timedWait(ctx context.Context, step StepRef, category string, g gate) (Status, error) {
	defer r.timer.since(category, time.Now())
	return r.wait(ctx, step.String(), g)
}

// Run runs p, or resumes the unfinished upgrade of the journal when it has
// the same target. It holds the upgrade lock until it returns. A failed
// step is returned as a *StepError; a refused start as a
// *journal.LockedError or *UnfinishedError.
func (e *Engine) Run(ctx context.Context, p plan.Plan) (err error) {
	if e.Driver == nil || e.App == nil || e.Journal == nil {
		return errors.New("run upgrade: engine needs a driver, an app and a journal")
	}
	r := newRunner(e.Driver, e.App, e.Journal, e.Log, e.OnEvent, e.Options)
	takeover, err := e.Journal.Lock(r.opts.Holder)
	if err != nil {
		return err
	}
	defer func() {
		if uerr := e.Journal.Unlock(); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()
	if t := e.Journal.Torn(); t != nil {
		r.emit(Event{Type: EventNote, Message: fmt.Sprintf("journal had a torn last line (%d bytes, a write cut by a crash): ignored", t.Bytes)})
	}
	if takeover != nil {
		r.emit(Event{Type: EventNote, Message: fmt.Sprintf("took over the upgrade lock of %s (pid %d, since %s): that process is gone",
			takeover.Holder, takeover.PID, takeover.Since.Format(time.RFC3339))})
	}
	if cr := recordOf(e.App); cr != nil {
		var release func()
		if ctx, release, err = e.holdRecord(ctx, r, cr, lockWait(r.opts)); err != nil {
			return err
		}
		defer release()
	}
	u := &upgradeRun{runner: r, state: e.Journal.State()}
	return u.run(ctx, p)
}

// upgradeRun is one Run: the plan and the journal state it resumes from.
type upgradeRun struct {
	*runner
	plan   plan.Plan
	state  journal.State
	resume bool
}

func (u *upgradeRun) run(ctx context.Context, p plan.Plan) error {
	start := time.Now()
	cluster := u.drv.Cluster()
	if u.state.Unfinished() && changedNothing(u.state) && !sameTarget(u.state, p) {
		// It stopped before it changed anything: give it up.
		if _, err := u.j.Append(journal.PlanStep, journal.Done, map[string]any{"abandoned": true, "for": versionString(p.To)}); err != nil {
			return fmt.Errorf("journal the end of an upgrade that changed nothing: %w", err)
		}
		u.emit(Event{Type: EventNote, Message: "the unfinished upgrade changed nothing: given up for this one"})
		u.state = u.j.State()
	}
	if u.state.Unfinished() {
		jp, err := decodePlan(*u.state.Plan)
		if err != nil {
			return err
		}
		if p.To == nil || !jp.To.Equal(p.To) {
			req := "<none>"
			if p.To != nil {
				req = p.To.String()
			}
			return &UnfinishedError{From: jp.From.String(), To: jp.To.String(), Started: u.state.Plan.Time,
				Requested: req, Hint: "finish it first with `" + ResumeCommand(u.opts, cluster, jp.To.String()) + "`"}
		}
		u.plan, u.resume = jp, true
	} else {
		if len(p.Hops) == 0 {
			u.emit(Event{Type: EventDone, Message: "nothing to do: the cluster already runs the target",
				Fields: map[string]any{"version": versionString(p.To), "duration": time.Since(start)}})
			return nil
		}
		u.plan = p
		if _, err := u.j.Append(journal.PlanStep, journal.Intent, encodePlan(p, cluster, u.drv.Name())); err != nil {
			return fmt.Errorf("journal plan: %w", err)
		}
		u.state = u.j.State()
	}
	u.target = u.plan.To.String()
	if err := u.note(StepRef{Name: StepRun}, map[string]any{"holder": u.opts.Holder, "resume": u.resume}); err != nil {
		return err
	}
	hops := make([]string, len(u.plan.Hops))
	for i, h := range u.plan.Hops {
		hops[i] = h.ID()
	}
	msg := fmt.Sprintf("upgrade %s from %s to %s in %d hops", cluster, u.plan.From, u.plan.To, len(hops))
	if u.resume {
		msg = fmt.Sprintf("resume upgrade of %s from %s to %s (%d steps done)", cluster, u.plan.From, u.plan.To, len(u.state.Done))
	}
	u.emit(Event{Type: EventPlan, Message: msg, Fields: map[string]any{
		"from": u.plan.From.String(), "to": u.plan.To.String(), "hops": hops,
		"resume": u.resume, "done_steps": len(u.state.Done)}})

	for i, h := range u.plan.Hops {
		if err := u.hop(ctx, i, h); err != nil {
			return err
		}
	}
	if _, err := u.j.Append(journal.PlanStep, journal.Done, map[string]any{"version": u.plan.To.String()}); err != nil {
		return fmt.Errorf("journal end of upgrade: %w", err)
	}
	u.emit(Event{Type: EventDone, Message: fmt.Sprintf("%s runs %s", cluster, u.plan.To),
		Fields: map[string]any{"version": u.plan.To.String(), "duration": time.Since(start)}})
	return nil
}

// sameTarget reports whether the journal's unfinished upgrade goes to p's
// target.
func sameTarget(st journal.State, p plan.Plan) bool {
	jp, err := decodePlan(*st.Plan)
	return err == nil && p.To != nil && jp.To.Equal(p.To)
}

func versionString(v *semver.Version) string {
	if v == nil {
		return ""
	}
	return v.String()
}

// ResumeCommand is the command that continues the upgrade of cluster to
// target: Options.ResumeCommand if set. Every hint and the command line's
// "continue:" line use it.
func ResumeCommand(o Options, cluster, target string) string {
	if o.ResumeCommand != "" {
		return o.ResumeCommand
	}
	return fmt.Sprintf("ladder upgrade --cluster %s --to %s --yes", cluster, target)
}

func restartCommand(o Options, cluster string) string {
	if o.RestartCommand != "" {
		return o.RestartCommand
	}
	return fmt.Sprintf("ladder restart --cluster %s --rolling", cluster)
}

// hint says what to do after err.
func (r *runner) hint(err error) string {
	cluster := r.drv.Cluster()
	resume := "run `" + ResumeCommand(r.opts, cluster, r.target) + "`"
	if _, ok := isStall(err); ok {
		if !r.opts.Remediate {
			return fmt.Sprintf("restart the replicas one at a time with `%s`, then %s to continue (or leave remediation on)",
				restartCommand(r.opts, cluster), resume)
		}
		return fmt.Sprintf("remediation used %d of its %d rounds; check the replica named above, restart the replicas one at a time with `%s`, then %s to continue",
			r.rounds, r.opts.RemediationBudget, restartCommand(r.opts, cluster), resume)
	}
	switch {
	case errors.Is(err, ErrWaitTimeout):
		return "the cluster was still catching up: " + resume + " to continue (raise --max-wait for large stores)"
	case errors.Is(err, ErrStepTimeout):
		return "the step ran out of time: " + resume + " to continue"
	case errors.Is(err, context.Canceled), errors.Is(err, ErrInterrupted):
		return "interrupted: " + resume + " to continue where it stopped"
	case errors.Is(err, driver.ErrNoArtifact):
		return "make the release's artifact available (build or load it), then " + resume
	case errors.Is(err, ErrUnexpectedVersion), errors.Is(err, ErrSchemaTooNew):
		return "the cluster is not in a state this plan can start from; check `ladder status --cluster " + cluster + "`"
	}
	return "fix the cause, then " + resume + " to continue from this step"
}

// actionContext is the context of an action that changes the cluster:
// it keeps ctx's values but not its end, which only stops waits; it ends
// with Options.Abort, or when the step's time is up.
func (r *runner) actionContext(ctx context.Context) (context.Context, context.CancelFunc) {
	actx, cancel := context.WithTimeoutCause(context.WithoutCancel(ctx), r.opts.StepTimeout,
		fmt.Errorf("%w: %s ran longer than %s", ErrStepTimeout, StepFromContext(ctx), r.opts.StepTimeout))
	if r.opts.Abort == nil {
		return actx, cancel
	}
	actx, cancelCause := context.WithCancelCause(actx)
	stop := context.AfterFunc(r.opts.Abort, func() { cancelCause(context.Cause(r.opts.Abort)) })
	return actx, func() {
		stop()
		cancelCause(nil)
		cancel()
	}
}

// watch names, while an action runs, a replica other than except that the
// driver sees go down, once each; the wait after the action repairs it.
// It returns what stops it.
func (r *runner) watch(ctx context.Context, except string) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	step := StepFromContext(ctx)
	go func() {
		defer close(done)
		named := map[string]bool{}
		tick := time.NewTicker(4 * r.opts.PollInterval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			reps, err := r.drv.Replicas(ctx)
			if err != nil {
				continue
			}
			var others []driver.Replica
			for _, rep := range reps {
				if rep.ID != except && !named[rep.ID] {
					others = append(others, rep)
				}
			}
			if id, why := driverFault(others); id != "" {
				named[id] = true
				r.emit(Event{Type: EventFault, Step: step, Replica: id, Message: id + " " + why + " (seen during the action; repaired after it)"})
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

type stepKey struct{}

func withStep(ctx context.Context, step string) context.Context {
	return context.WithValue(ctx, stepKey{}, step)
}

// StepFromContext returns the ID of the step whose action ctx belongs to,
// or "". Drivers may use it in logs; test fakes use it to fail at a step.
func StepFromContext(ctx context.Context) string {
	s, _ := ctx.Value(stepKey{}).(string)
	return s
}
