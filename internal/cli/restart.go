package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
)

func newRestartCmd(e *env) *cobra.Command {
	var (
		cf      clusterFlag
		uf      upgradeFlags
		out     outputFlag
		rolling bool
	)
	c := &cobra.Command{
		Use:   "restart",
		Short: "Restart every replica one at a time, each waiting to come back (the manual recovery, automated)",
		Long: `Restart --rolling restarts every replica of the cluster one at a time,
followers first and the leader last. After each restart it waits until the
replica is healthy, its UI answers and the store has settled, before it
touches the next one: the recovery the original system asked operators to
do by hand. It takes the upgrade lock, so it never runs during an upgrade.

To restart a single replica, use: ladder cluster restart --replica ID.`,
		Example: `  ladder restart --cluster prod --rolling`,
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if !rolling {
				return usageErr("say --rolling to restart every replica one at a time (one replica: ladder cluster restart --replica ID)")
			}
			return rollingRestart(e, cf.name, uf, out.json())
		},
	}
	cf.register(c)
	uf.register(c)
	out.register(c)
	c.Flags().BoolVar(&rolling, "rolling", false, "restart every replica, one at a time")
	return c
}

// rollingRestart restarts every replica of cluster one at a time under the
// upgrade lock, each waiting for health, UI and a settled store.
func rollingRestart(e *env, cluster string, uf upgradeFlags, asJSON bool) error {
	uf.abort = e.abort
	opts, err := uf.options(cluster)
	if err != nil {
		return err
	}
	d, rec, err := openCluster(cluster)
	if err != nil {
		return err
	}
	app, err := appOf(rec)
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
