package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// upgradeFlags are the engine's knobs as flags, shared by upgrade, restart
// and demo.
type upgradeFlags struct {
	maxWait    time.Duration
	stallAfter time.Duration
	remediate  string
	budget     int
	// abort is the command's abort context (env.abort).
	abort context.Context
}

func (f *upgradeFlags) register(c *cobra.Command) {
	d := upgrade.DefaultOptions()
	c.Flags().DurationVar(&f.maxWait, "max-wait", d.MaxWait, "longest wait on the store while replicas keep catching up")
	c.Flags().DurationVar(&f.stallAfter, "stall-after", d.StallAfter, "end a wait that sees no progress for this long, and diagnose it")
	c.Flags().StringVar(&f.remediate, "remediate", "auto", "on a stall: auto (restart the stuck replica, then every replica one at a time, then retry) or off (stop)")
	c.Flags().IntVar(&f.budget, "remediation-budget", d.RemediationBudget, "remediation rounds allowed per run")
	_ = c.RegisterFlagCompletionFunc("remediate", cobra.FixedCompletions([]string{"auto", "off"}, cobra.ShellCompDirectiveNoFileComp))
}

func (f *upgradeFlags) options(cluster string) (upgrade.Options, error) {
	o := upgrade.DefaultOptions()
	switch f.remediate {
	case "auto":
		o.Remediate = true
	case "off":
		o.Remediate = false
	default:
		return o, usageErr("invalid --remediate %q: use auto or off", f.remediate)
	}
	if f.maxWait <= 0 || f.stallAfter <= 0 {
		return o, usageErr("--max-wait and --stall-after must be positive durations such as 10m or 10s")
	}
	if f.stallAfter > f.maxWait {
		return o, usageErr("--stall-after (%s) is longer than --max-wait (%s)", f.stallAfter, f.maxWait)
	}
	if f.budget < 0 {
		return o, usageErr("--remediation-budget must be 0 or more")
	}
	o.MaxWait, o.StallAfter = f.maxWait, f.stallAfter
	o.RemediationBudget = f.budget
	if f.budget == 0 {
		o.Remediate = false
	}
	o.RestartCommand = "ladder restart --cluster " + cluster + " --rolling"
	o.Abort = f.abort
	return o, nil
}

// openJournal opens the cluster's upgrade journal.
func openJournal(cluster string) (*journal.Journal, error) {
	root, err := home.Dir()
	if err != nil {
		return nil, err
	}
	return journal.Open(filepath.Join(home.ClusterDir(root, cluster), "journal"))
}

func newUpgradeCmd(e *env) *cobra.Command {
	var o upgradeOpts
	c := &cobra.Command{
		Use:   "upgrade",
		Short: "Upgrade a cluster hop by hop, one replica at a time",
		Long: `Upgrade moves a cluster to --to through the supported chain of hops
(see: ladder plan). Each hop runs journaled steps:

  preflight  version rules; every replica healthy with its UI answering;
             the store settled; the target release present; the stored
             schema not newer than the hop's source knows
  backup     a snapshot of the store, before a hop that migrates data
  roll       replicas one at a time, followers first, the leader last:
             wait for the store to settle, replace the replica with the
             new release (same data, same identity), wait until it is
             healthy, its UI answers and the store has settled again
  migrate    the new release's data migrations, run once as a job
  finalize   record the hop done

Waits on the store are progress-aware: they go on while lagging replicas
catch up (up to --max-wait), and end as soon as nothing has moved for
--stall-after, naming the replica, the table and the gap. A replica whose
process exited, that is frozen, or that the store's leader no longer hears
while it answers nothing is named at once, whatever --stall-after says.
With --remediate auto a stall is repaired the way the original system's
manual recovery did it: restart the stuck replica; if the store still has
not settled, restart every replica one at a time; then retry the step.

Every step is journaled. If the upgrade stops (a failure, a crash), run
the same command again: it resumes where it stopped. Ctrl-C stops the
waiting at once, lets the action under way (a replace, a backup, the
migration) finish and be journaled, prints where the cluster is, and exits
130; a second Ctrl-C cuts the action short. One upgrade runs at a time per
cluster, and destroy, seed and restarts wait for it.

Before anything changes the plan is shown; on a terminal ladder asks to go
on, elsewhere --yes is required. Skippable policy warnings need --force;
mandatory refusals (downgrades, skips) cannot be forced.`,
		Example: `  ladder upgrade --cluster prod --to 3.1.2 --dry-run
  ladder upgrade --cluster prod --to 3.1.2 --yes
  ladder upgrade --cluster prod --to 3.1.2 --yes --stall-after 5s --remediate off
  ladder upgrade --cluster prod --to 3.1.2 --yes -o json   # one JSON event per line`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if e.verbose && !c.Flags().Changed("log-level") {
				o.logLevel = "info"
			}
			return runUpgrade(e, &o)
		},
	}
	o.cf.register(c)
	o.uf.register(c)
	c.Flags().StringVar(&o.to, "to", "", "release to upgrade to (required)")
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "print every step the upgrade would take, and change nothing")
	c.Flags().BoolVarP(&o.yes, "yes", "y", false, "do not ask before upgrading (required without a terminal)")
	c.Flags().BoolVar(&o.force, "force", false, "go past skippable policy warnings (never past mandatory refusals)")
	c.Flags().BoolVar(&o.prerel, "allow-prerelease", false, "allow a pre-release as the target")
	c.Flags().StringVar(&o.logLevel, "log-level", "off", "engine log lines besides progress: off, debug, info, warn, error")
	_ = c.RegisterFlagCompletionFunc("to", versionFlag)
	return c
}

// upgradeOpts are the flags of ladder upgrade.
type upgradeOpts struct {
	cf       clusterFlag
	uf       upgradeFlags
	to       string
	dryRun   bool
	yes      bool
	force    bool
	prerel   bool
	logLevel string
}

// check checks the flags before the cluster is read, and returns the
// target, the engine's log level and its options.
func (o *upgradeOpts) check(e *env) (*semver.Version, slog.Level, upgrade.Options, error) {
	if o.to == "" {
		return nil, 0, upgrade.Options{}, usageErr("--to is required: the release to upgrade to (see: ladder catalog)")
	}
	target, err := parseVersion("--to", o.to)
	if err != nil {
		return nil, 0, upgrade.Options{}, err
	}
	lvl, ok := logLevels[o.logLevel]
	if !ok {
		return nil, 0, upgrade.Options{}, usageErr("invalid --log-level %q: use off, debug, info, warn or error", o.logLevel)
	}
	o.uf.abort = e.abort
	opts, err := o.uf.options(o.cf.name)
	if err != nil {
		return nil, 0, upgrade.Options{}, err
	}
	return target, lvl, opts, nil
}

// runUpgrade shows the plan that takes the cluster to o.to and, unless
// it is a dry run, runs it once confirmed.
func runUpgrade(e *env, o *upgradeOpts) error {
	target, lvl, opts, err := o.check(e)
	if err != nil {
		return err
	}
	d, rec, err := openCluster(o.cf.name)
	if err != nil {
		return err
	}
	j, err := openJournal(o.cf.name)
	if err != nil {
		return err
	}
	rep := newReporter(e, e.json(), 0)
	if !o.dryRun {
		// Say at once what ladder does: asking every replica can take a
		// moment on a busy machine.
		rep.event(upgrade.Event{Time: time.Now(), Type: upgrade.EventNote, Message: fmt.Sprintf("reading the state of cluster %s", o.cf.name),
			Fields: map[string]any{"cluster": o.cf.name, "to": target.String()}})
	}
	st, err := e.clusterStatus(e.ctx, d)
	if err != nil {
		return err
	}
	records, lock := e.journalView(e.ctx, d, rec, j)
	if lock != nil && !o.dryRun && !journal.Stale(*lock) {
		return withCode(ExitLocked, fmt.Errorf("another upgrade is running: %w\n  follow it with: ladder status --cluster %s",
			&journal.LockedError{LockInfo: *lock, Frees: fmt.Sprintf("the cluster frees it at most %s after its holder stops", service.LockTTL)}, o.cf.name))
	}
	p, err := upgradePlan(e, d, st, records, target, o.force, o.prerel)
	if err != nil {
		return err
	}
	ids := make([]string, len(st.Replicas))
	for i, r := range st.Replicas {
		ids[i] = r.ID
	}
	steps := upgrade.Steps(p, upgrade.RollOrder(st, ids))
	if !e.json() {
		printPlan(e.stdout, p)
		fmt.Fprintln(e.stdout)
	}
	if o.dryRun {
		return printDryRun(e, e.json(), p, steps, records)
	}
	if len(p.Hops) == 0 {
		fmt.Fprintf(e.stderr, "cluster %s already runs %s: nothing to do\n", o.cf.name, target)
		return nil
	}
	if !o.yes {
		if err := confirm(e, fmt.Sprintf("Upgrade cluster %s from %s to %s in %d hops?", o.cf.name, p.From, p.To, len(p.Hops))); err != nil {
			return err
		}
	}
	app, err := e.appOf(d, rec)
	if err != nil {
		return err
	}
	rep.setTotal(len(steps))
	eng := &upgrade.Engine{Driver: d, App: app, Journal: j,
		Log: rep.logger(lvl), OnEvent: rep.event, Options: opts}
	start := time.Now()
	err = eng.Run(e.ctx, p)
	rep.close()
	return upgradeResult(e, e.json(), d, target, j, start, err)
}

// logLevels maps --log-level to slog levels; "off" is above every level.
var logLevels = map[string]slog.Level{"off": slog.LevelError + 4, "debug": slog.LevelDebug,
	"info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// journalView is the upgrade journal as the cluster keeps it, and who
// holds the cluster's lock; this machine's journal, when the cluster keeps
// none or cannot be read.
func (e *env) journalView(ctx context.Context, d driver.Driver, rec home.Record, j *journal.Journal) ([]journal.Record, *journal.LockInfo) {
	if app, err := e.appOf(d, rec); err == nil {
		if cr := app.(upgrade.Recorder).Record(); cr != nil {
			if records, lock, err := cr.Read(ctx); err == nil {
				if len(records) >= len(j.Records()) {
					return records, lock
				}
				return j.Records(), lock
			}
		}
	}
	return j.Records(), nil
}

// upgradePlan decides what to run: the unfinished upgrade of the journal
// when it has the same target, otherwise a new plan from the version the
// cluster runs, checked against policy.
func upgradePlan(e *env, d driver.Driver, st upgrade.Status, records []journal.Record, target *semver.Version, force, prerel bool) (plan.Plan, error) {
	unfinished, ok, err := upgrade.UnfinishedRecords(records)
	if err != nil {
		return plan.Plan{}, err
	}
	if ok {
		if !unfinished.To.Equal(target) {
			return plan.Plan{}, withCode(ExitRefused, fmt.Errorf("upgrade to %s refused: the upgrade from %s to %s is unfinished; finish it first with: ladder upgrade --cluster %s --to %s",
				target, unfinished.From, unfinished.To, d.Cluster(), unfinished.To))
		}
		return unfinished, nil
	}
	if st.Version == upgrade.VersionMixed || st.Version == "" {
		reps, _ := d.Replicas(e.ctx)
		var vs []string
		for _, r := range reps {
			vs = append(vs, r.ID+"="+r.Version)
		}
		return plan.Plan{}, fmt.Errorf("cluster %s runs mixed releases (%s) and its journal holds no unfinished upgrade: bring every replica to one release first (ladder cluster status --cluster %s)",
			d.Cluster(), strings.Join(vs, ", "), d.Cluster())
	}
	from, err := policy.Parse(st.Version)
	if err != nil {
		return plan.Plan{}, fmt.Errorf("cluster %s reports release %q: %w", d.Cluster(), st.Version, err)
	}
	prof := clusterProfile(d)
	cat := prof.catalog()
	p, err := plan.Make(cat, from, target, plan.Options{AllowPrerelease: prerel, MinPatch: prof.rules})
	if errors.Is(err, plan.ErrUnknownTarget) && force {
		// A target the catalog does not list is a warning --force goes
		// past: the hops are planned as if it were listed, and the
		// cluster's driver must still find the release's artifact.
		fmt.Fprintf(e.stderr, "warning: %s is not in the %s catalog; planning it anyway (--force)\n", target, cat.Source())
		listed, cerr := catalog.New(cat.Source()+" and "+target.String(),
			append(cat.Releases(), catalog.Release{Version: target, Notes: "not in the catalog: planned with --force"}))
		if cerr != nil {
			return plan.Plan{}, withCode(ExitUsage, cerr)
		}
		cat = listed
		p, err = plan.Make(cat, from, target, plan.Options{AllowPrerelease: prerel, MinPatch: prof.rules})
	}
	if err != nil {
		return plan.Plan{}, refusedPlan(err)
	}
	// The chain's hops are supported by construction; what is left are
	// skippable warnings (a pre-release source, say), which need --force.
	var warnings []string
	for _, h := range p.Hops {
		r := policy.Classify(h.From, h.To, policy.Options{Releases: cat, AllowPrerelease: prerel})
		for _, f := range r.Blocking(force) {
			if f.Mandatory {
				return plan.Plan{}, withCode(ExitRefused, fmt.Errorf("hop %s refused: %s", h.ID(), f.Message))
			}
			warnings = append(warnings, fmt.Sprintf("hop %s: %s (%s)", h.ID(), f.Message, f.Hint))
		}
	}
	if len(warnings) > 0 {
		return plan.Plan{}, withCode(ExitRefused, fmt.Errorf("policy warnings stop the upgrade; pass --force to go past them:\n  %s", strings.Join(warnings, "\n  ")))
	}
	return p, nil
}

// printDryRun lists the steps, marking those an earlier run finished.
func printDryRun(e *env, asJSON bool, p plan.Plan, steps []string, records []journal.Record) error {
	st := journal.Interpret(records)
	if asJSON {
		type stepJSON struct {
			ID   string `json:"id"`
			Done bool   `json:"done"`
		}
		res := struct {
			Plan  planJSON   `json:"plan"`
			Steps []stepJSON `json:"steps"`
		}{Plan: planToJSON(p, catalog.Builtin().Source()), Steps: []stepJSON{}}
		for _, s := range steps {
			res.Steps = append(res.Steps, stepJSON{ID: s, Done: st.Unfinished() && st.IsDone(s)})
		}
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "Dry run: %d steps; nothing is changed.\n", len(steps))
	for i, s := range steps {
		mark := " "
		if st.Unfinished() && st.IsDone(s) {
			mark = "✓"
		}
		fmt.Fprintf(e.stdout, "%s %3d  %s\n", mark, i+1, s)
	}
	return nil
}

// interrupted reports whether err is, or comes of, a person's interruption.
func interrupted(err error) bool {
	return errors.Is(err, upgrade.ErrInterrupted) || errors.Is(err, context.Canceled)
}

// confirm asks on a terminal; without one it refuses.
func confirm(e *env, question string) error {
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return usageErr("no terminal to ask for confirmation: pass --yes to upgrade, or --dry-run to see the steps")
	}
	fmt.Fprintf(e.stderr, "%s [y/N] ", question)
	line, _ := bufio.NewReader(f).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return withCode(ExitFailed, errors.New("upgrade not confirmed: nothing was changed"))
	}
	return nil
}

// upgradeResult turns the engine's result into output and an exit code.
func upgradeResult(e *env, asJSON bool, d driver.Driver, target *semver.Version, j *journal.Journal, start time.Time, err error) error {
	cluster := d.Cluster()
	resume := upgrade.ResumeCommand(upgrade.Options{}, cluster, target.String())
	if err == nil {
		if !asJSON {
			fmt.Fprintf(e.stderr, "cluster %s upgraded to %s in %s\n", cluster, target, time.Since(start).Round(100*time.Millisecond))
		}
		return nil
	}
	var locked *journal.LockedError
	if errors.As(err, &locked) {
		return withCode(ExitLocked, fmt.Errorf("another upgrade is running: %w\n  follow it with: ladder status --cluster %s", err, cluster))
	}
	if errors.Is(err, upgrade.ErrUnfinished) {
		return withCode(ExitRefused, err)
	}
	code := ExitFailed
	if interrupted(err) {
		code = ExitInterrupted
	}
	sum, _ := upgrade.Summarize(j)
	var done []string
	for _, h := range sum.Hops {
		if h.State == upgrade.StateDone {
			done = append(done, h.ID)
		}
	}
	fmt.Fprintf(e.stderr, "\nupgrade of %s stopped after %s\n", cluster, time.Since(start).Round(100*time.Millisecond))
	var se *upgrade.StepError
	var stall *upgrade.StallError
	switch {
	case errors.As(err, &se) && interrupted(err):
		fmt.Fprintf(e.stderr, "  interrupted: %s\n", se.Step)
	case errors.As(err, &se):
		fmt.Fprintf(e.stderr, "  failed step: %s\n  error:       %v\n", se.Step, se.Err)
		if errors.As(err, &stall) && stall.Log != "" {
			fmt.Fprintf(e.stderr, "  its log:\n    %s\n", strings.ReplaceAll(stall.Log, "\n", "\n    "))
		}
		if se.Hint != "" {
			fmt.Fprintf(e.stderr, "  what to do:  %s\n", se.Hint)
		}
	default:
		fmt.Fprintf(e.stderr, "  error:       %v\n", err)
	}
	if len(done) > 0 {
		fmt.Fprintf(e.stderr, "  hops done:   %s (cluster at %s)\n", strings.Join(done, ", "), sum.Version)
	} else {
		fmt.Fprintf(e.stderr, "  hops done:   none\n")
	}
	if reps, rerr := d.Replicas(context.WithoutCancel(e.ctx)); rerr == nil {
		var vs []string
		for _, r := range reps {
			state := ""
			if !r.Running {
				state = ", not running"
			}
			vs = append(vs, fmt.Sprintf("%s on %s%s", r.ID, r.Version, state))
		}
		fmt.Fprintf(e.stderr, "  replicas:    %s\n", strings.Join(vs, "; "))
	}
	fmt.Fprintf(e.stderr, "  continue:    %s\n", resume)
	if asJSON {
		return withHint(code, err, hintOf(err))
	}
	return silent(code)
}
