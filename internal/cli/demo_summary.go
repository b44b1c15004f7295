package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ladder-dev/ladder/internal/traffic"
	"github.com/ladder-dev/ladder/upgrade"
)

// demoSummary is what the demo measured; -o json prints it.
type demoSummary struct {
	Cluster        string           `json:"cluster"`
	Driver         string           `json:"driver"`
	From           string           `json:"from"`
	To             string           `json:"to"`
	Hops           []demoHop        `json:"hops"`
	Total          time.Duration    `json:"total_ns"`
	Frozen         string           `json:"frozen_replica,omitempty"`
	Detection      time.Duration    `json:"detection_ns,omitempty"`
	Remediations   []string         `json:"remediations"`
	Client         traffic.Stats    `json:"client"`
	WrittenDuring  int              `json:"written_during_upgrade"`
	Lost           []string         `json:"lost"`
	SeedRowsBefore map[string]int   `json:"rows_before"`
	SeedRowsAfter  map[string]int   `json:"rows_after"`
	PeakRSSKiB     int              `json:"peak_rss_kib"`
	Timing         map[string]int64 `json:"timing_ns"`
}

type demoHop struct {
	ID        string        `json:"id"`
	Wall      time.Duration `json:"wall_ns"`
	Restarts  time.Duration `json:"restarts_ns"`
	Settle    time.Duration `json:"settle_ns"`
	Migration time.Duration `json:"migration_ns"`
	// Other is the hop's time outside restarts, settle waits and the
	// migration: preflight checks, backups, bookkeeping.
	Other time.Duration `json:"other_ns"`
}

// report fills the summary from the journal and the run, and prints it.
func (d *demo) report(res upgradeRunResult, total time.Duration) error {
	sum, err := upgrade.Summarize(res.journal)
	if err != nil {
		return err
	}
	d.summarize(sum, res, total)
	if d.json {
		return writeJSON(d.env.stdout, d.sum)
	}
	d.print()
	return nil
}

func (d *demo) summarize(s upgrade.Summary, res upgradeRunResult, total time.Duration) {
	upTime := res.took
	d.sum.Total = total
	d.sum.Frozen = res.fault.frozen
	d.sum.Detection = res.fault.detected
	d.sum.Timing = map[string]int64{"upgrade": int64(upTime)}
	for k, v := range s.Timing {
		d.sum.Timing[k] = int64(v)
	}
	for _, h := range s.Hops {
		dh := demoHop{ID: h.ID, Wall: h.Duration, Restarts: h.Timing["restart"], Settle: h.Timing["settle"], Migration: h.Timing["migration"]}
		dh.Other = max(0, dh.Wall-dh.Restarts-dh.Settle-dh.Migration)
		d.sum.Hops = append(d.sum.Hops, dh)
	}
	for _, r := range s.Remediations {
		what := r.Action
		if r.Replica != "" {
			what += " " + r.Replica
		}
		d.sum.Remediations = append(d.sum.Remediations, fmt.Sprintf("round %d: %s", r.Round, what))
	}
	d.sum.PeakRSSKiB = peakRSSKiB()
}

func (d *demo) print() {
	w := d.env.stdout
	s := d.sum
	d.say("summary: %s upgraded %s -> %s in %s", s.Cluster, s.From, s.To, time.Duration(s.Timing["upgrade"]).Round(100*time.Millisecond))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOP\tWALL\tRESTARTS\tSETTLE WAITS\tMIGRATION\tOTHER")
	for _, h := range s.Hops {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, rd(h.Wall), rd(h.Restarts), rd(h.Settle), rd(h.Migration), rd(h.Other))
	}
	tw.Flush()
	if s.Frozen != "" {
		det := "not detected (the replica may have been replaced before a wait saw it)"
		if s.Detection > 0 {
			det = "detected after " + s.Detection.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "frozen replica:  %s, %s\n", s.Frozen, det)
	}
	if len(s.Remediations) > 0 {
		fmt.Fprintf(w, "remediation:     %s\n", strings.Join(s.Remediations, "; "))
	} else {
		fmt.Fprintln(w, "remediation:     none needed")
	}
	c := s.Client
	fmt.Fprintf(w, "client:          %d writes, %d reads; failed: %d writes, %d reads; %d requests served by another replica after one did not answer\n",
		c.Writes, c.Reads, c.FailedWrites, c.FailedReads, c.Failovers)
	if len(s.Lost) == 0 {
		fmt.Fprintln(w, "data:            nothing lost: every seeded row, image and tag written during the upgrade is on every replica")
	} else {
		fmt.Fprintf(w, "data:            LOST %d items: %s\n", len(s.Lost), strings.Join(s.Lost, ", "))
	}
	fmt.Fprintf(w, "ladder memory:   peak RSS %d MiB\n", s.PeakRSSKiB/1024)
}

func rd(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

func sumRows(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// peakRSSKiB reads this process's peak resident set size.
func peakRSSKiB() int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	return 0
}
