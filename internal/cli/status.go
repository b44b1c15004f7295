package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

type statusJSON struct {
	upgrade.Status
	Upgrade upgrade.Summary `json:"upgrade"`
	// From says where the upgrade's record was read: "cluster" (the copy
	// the cluster keeps, the same from every machine) or "local".
	From string `json:"upgrade_record"`
	// LoginFailures are the registry's recent failed logins, newest last.
	LoginFailures []registry.LoginFailure `json:"login_failures"`
	// CA verifies the replicas' URLs.
	CA string `json:"ca,omitempty"`
}

// upgradeSummary summarizes the cluster's latest upgrade from the record the
// cluster keeps, or from this machine's journal when the cluster keeps
// none or cannot be read; it says which.
func (e *env) upgradeSummary(ctx context.Context, d driver.Driver, rec home.Record) (upgrade.Summary, string, error) {
	if app, err := e.appOf(d, rec); err == nil {
		if cr := app.(upgrade.Recorder).Record(); cr != nil {
			if records, lock, err := cr.Read(ctx); err == nil {
				s, err := upgrade.SummarizeRecords(records, lock)
				return s, "cluster", err
			}
		}
	}
	j, err := openJournal(d.Cluster())
	if err != nil {
		return upgrade.Summary{}, "", err
	}
	s, err := upgrade.Summarize(j)
	return s, "local", err
}

func newStatusCmd(e *env) *cobra.Command {
	var (
		cf clusterFlag
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show a cluster and its latest upgrade: hops done, current or failed step, remediations",
		Long: `Status shows the cluster as 'ladder cluster status' does, followed by what
the upgrade journal says of the latest upgrade: its plan, the hops done
with their times, the step running now or the one that failed (with what
to do next), the remediation actions taken, and who holds the upgrade lock;
then the registry's recent failed logins (user, address, replica; never a
password).`,
		Example: `  ladder status --cluster prod
  ladder status --cluster prod -o json`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			d, rec, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			st, err := e.clusterStatus(e.ctx, d)
			if err != nil {
				return err
			}
			sum, from, err := e.upgradeSummary(e.ctx, d, rec)
			if err != nil {
				return err
			}
			var fails []registry.LoginFailure
			isRegistry := rec.Service == service.RegistryName
			if pw, err := rec.Secret(service.AdminPasswordSecret); err == nil && isRegistry {
				if tc, err := e.clusterTLS(rec); err == nil {
					fails = recentFailures(e.ctx, d.Replicas, pw, adminHTTP(tc), 10)
				}
			}
			if e.json() {
				if fails == nil {
					fails = []registry.LoginFailure{}
				}
				return writeJSON(e.stdout, statusJSON{Status: st, Upgrade: sum, From: from, LoginFailures: fails, CA: caPath(rec)})
			}
			printStatus(e.stdout, st)
			fmt.Fprintln(e.stdout)
			printSummary(e.stdout, cf.name, sum)
			if isRegistry {
				fmt.Fprintln(e.stdout)
				printFailures(e.stdout, fails)
			}
			return nil
		},
	}
	cf.register(c)
	return c
}

// printSummary writes what the journal says of the latest upgrade.
func printSummary(w io.Writer, cluster string, s upgrade.Summary) {
	if s.From == "" {
		fmt.Fprintln(w, "upgrade: none recorded")
		return
	}
	fmt.Fprintf(w, "upgrade %s -> %s: %s (started %s, %d %s)\n", s.From, s.To, s.State,
		s.Started.Local().Format(time.DateTime), s.Runs, plural(s.Runs, "run", "runs"))
	for _, h := range s.Hops {
		d := "-"
		if h.Duration > 0 {
			d = h.Duration.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "  %-8s %-16s %s\n", h.State, h.ID, d)
	}
	if s.Current != "" {
		fmt.Fprintf(w, "  current step: %s\n", s.Current)
	}
	if s.Failure != nil {
		fmt.Fprintf(w, "  failed step:  %s\n  error:        %s\n", s.Failure.Step, s.Failure.Error)
		if s.Failure.Hint != "" {
			fmt.Fprintf(w, "  what to do:   %s\n", s.Failure.Hint)
		}
	}
	if s.State != upgrade.StateDone {
		fmt.Fprintf(w, "  continue:     ladder upgrade --cluster %s --to %s --yes\n", cluster, s.To)
	}
	if len(s.Remediations) > 0 {
		fmt.Fprintln(w, "  remediations:")
		for _, r := range s.Remediations {
			what := r.Action
			if r.Replica != "" {
				what += " " + r.Replica
			}
			fmt.Fprintf(w, "    %s  round %d  %-24s %s\n", r.Time.Local().Format(time.TimeOnly), r.Round, what, r.Detail)
		}
	}
	if len(s.Timing) > 0 {
		keys := make([]string, 0, len(s.Timing))
		for k := range s.Timing {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %s", k, s.Timing[k].Round(100*time.Millisecond)))
		}
		fmt.Fprintf(w, "  time spent:   %s\n", strings.Join(parts, ", "))
	}
	if s.Lock != nil {
		fmt.Fprintf(w, "  locked by:    %s since %s\n", s.Lock.Holder, s.Lock.Since.Local().Format(time.DateTime))
	}
}
