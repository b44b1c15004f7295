package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
)

// newRestartCmd is `ladder restart` and `ladder cluster restart`: the
// same command, flags and behaviour under both names; path is the name
// its examples use.
func newRestartCmd(e *env, path string) *cobra.Command {
	var (
		cf      clusterFlag
		uf      upgradeFlags
		replica string
		rolling bool
	)
	c := &cobra.Command{
		Use:   "restart",
		Short: "Restart one replica, or every replica one at a time, waiting for each (the manual recovery, automated)",
		Long: `Restart --rolling restarts every replica of the cluster one at a time,
followers first and the leader last. After each restart it waits until the
replica is healthy, its UI answers and the store has settled, before it
touches the next one: the recovery the original system asked operators to
do by hand. If the store does not settle after a restart, --remediate auto
restarts the stuck replica and tries again, within --remediation-budget.

Restart --replica ID restarts one replica with the same release, data and
address, and waits the same way.

Both take the upgrade lock, so they never run during an upgrade (exit 4).
When no replica can serve the cluster's lock (a store that lost its
quorum, which a rolling restart cures), --rolling goes on without it after
--stall-after and says so; make sure no upgrade runs from another machine.
'ladder restart' and 'ladder cluster restart' are the same command.`,
		Example: "  " + path + " --cluster prod --rolling\n  " + path + " --cluster prod --replica replica-2",
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case rolling && replica != "":
				return usageErr("give --replica ID or --rolling, not both")
			case rolling:
				return rollingRestart(e, cf.name, uf, e.json())
			case replica == "":
				return usageErr("--rolling (every replica, one at a time) or --replica ID is required (see: ladder cluster status)")
			}
			return restartOne(e, cf.name, replica, uf)
		},
	}
	cf.register(c)
	uf.register(c)
	c.Flags().BoolVar(&rolling, "rolling", false, "restart every replica, one at a time")
	c.Flags().StringVar(&replica, "replica", "", "restart this replica only, e.g. replica-2")
	_ = c.RegisterFlagCompletionFunc("replica", completeReplicas(&cf))
	return c
}

// openRestart is what every command that restarts replicas starts with:
// the engine's options from the flags (Ctrl-C twice cuts an action short)
// and the cluster.
func (e *env) openRestart(cluster string, uf upgradeFlags) (upgrade.Options, driver.Driver, home.Record, error) {
	uf.abort = e.abort
	opts, err := uf.options(cluster)
	if err != nil {
		return opts, nil, home.Record{}, err
	}
	d, rec, err := openCluster(cluster)
	return opts, d, rec, err
}

// restartOne restarts one replica under the upgrade lock and waits for it
// and the store, with the engine's wait.
func restartOne(e *env, cluster, replica string, uf upgradeFlags) error {
	opts, d, rec, err := e.openRestart(cluster, uf)
	if err != nil {
		return err
	}
	start := time.Now()
	var st upgrade.Status
	err = e.withLock(e.ctx, d, rec, "restart of "+replica, func() error {
		if err := d.Restart(e.ctx, replica); err != nil {
			if errors.Is(err, driver.ErrNoReplica) {
				return withCode(ExitUsage, err)
			}
			return err
		}
		app, err := e.observer(d)
		if err != nil {
			return err
		}
		defer closeApp(app)
		st, err = upgrade.WaitSettled(e.ctx, d, app, opts, nil, nil)
		if err != nil {
			return fmt.Errorf("restart %s: %w", replica, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%s restarted; cluster settled after %.1fs\n", replica, time.Since(start).Seconds())
	if e.json() {
		return writeJSON(e.stdout, st)
	}
	printStatus(e.stdout, st)
	return nil
}

// rollingRestart restarts every replica of cluster one at a time under the
// upgrade lock, each waiting for health, UI and a settled store.
func rollingRestart(e *env, cluster string, uf upgradeFlags, asJSON bool) error {
	opts, d, rec, err := e.openRestart(cluster, uf)
	if err != nil {
		return err
	}
	app, err := e.appOf(d, rec)
	if err != nil {
		return err
	}
	j, err := openJournal(cluster)
	if err != nil {
		return err
	}
	reps, err := d.Replicas(e.ctx)
	if err != nil {
		return err
	}
	rep := newReporter(e, asJSON, 0)
	eng := &upgrade.Engine{Driver: d, App: app, Journal: j,
		Log: rep.logger(logLevels["off"]), OnEvent: rep.event, Options: opts}
	start := time.Now()
	err = eng.RollingRestart(e.ctx)
	rep.close()
	var locked *journal.LockedError
	switch {
	case errors.As(err, &locked):
		return withCode(ExitLocked, err)
	case interrupted(err):
		return withCode(ExitInterrupted, fmt.Errorf("rolling restart of %s: %w (run it again to restart every replica)", cluster, err))
	case err != nil:
		return fmt.Errorf("rolling restart of %s: %w", cluster, err)
	}
	if !asJSON {
		fmt.Fprintf(e.stderr, "restarted %d replicas of %s one at a time in %s\n", len(reps), cluster, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}
