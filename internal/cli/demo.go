package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/traffic"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/registry"
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
	Overhead  float64       `json:"overhead_ratio"`
}

func newDemoCmd(e *env) *cobra.Command {
	var (
		cf       clusterFlag
		out      outputFlag
		from     string
		to       string
		replicas int
		repos    int
		keep     bool
		noFault  bool
		stall    time.Duration
		drv      string
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Upgrade a local 3-replica registry cluster across several hops, with a fault on the way",
		Long: `Demo shows ladder end to end on this machine, with nothing installed:

 1. creates a 3-replica reference registry cluster at --from (2.1.4),
    seeds it with metadata and pushes images to it;
 2. shows the plan to --to (the newest release: 4 hops, one of them major);
 3. runs the upgrade with live progress while a client keeps pushing and
    pulling images through the replicas;
 4. freezes one replica (SIGSTOP) in the middle of the upgrade, so you see
    ladder notice the stuck replica within --stall-after, name it, and
    repair it the way the original system's manual recovery did;
 5. checks that everything written before and during the upgrade is still
    there on every replica, prints a summary, and removes the cluster.

It takes a minute or two. --keep leaves the cluster running (look at it
with: ladder status --cluster demo, or open a replica's URL in a browser);
--no-fault skips the freeze.`,
		Example: `  ladder demo
  ladder demo --keep
  ladder demo --no-fault -o json
  ladder demo --driver docker      # the same on a Docker Engine`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if cf.name == "default" && !c.Flags().Changed("cluster") {
				cf.name = "demo"
			}
			cat := catalog.Builtin()
			fromV, err := parseVersion("--from", from)
			if err != nil {
				return err
			}
			if to == "" {
				latest, _ := cat.Latest()
				to = latest.String()
			}
			toV, err := parseVersion("--to", to)
			if err != nil {
				return err
			}
			p, err := plan.Make(cat, fromV, toV, plan.Options{})
			if err != nil {
				return refusedPlan(err)
			}
			if len(p.Hops) == 0 {
				return usageErr("--from and --to are the same release: nothing to demonstrate")
			}
			if drv != local.Name && drv != docker.Name {
				return usageErr("unknown --driver %q: use %s or %s", drv, local.Name, docker.Name)
			}
			d := &demo{env: e, cluster: cf.name, plan: p, replicas: replicas, repos: repos,
				fault: !noFault, stallAfter: stall, json: out.json(), driverName: drv}
			return d.run(keep)
		},
	}
	cf.register(c)
	c.Flags().Lookup("cluster").DefValue = "demo"
	out.register(c)
	c.Flags().StringVar(&from, "from", "2.1.4", "release the cluster starts at")
	c.Flags().StringVar(&to, "to", "", "release to upgrade to (default: the newest release)")
	c.Flags().IntVar(&replicas, "replicas", 3, "number of replicas")
	c.Flags().IntVar(&repos, "repositories", 200, "repositories of metadata to seed")
	c.Flags().BoolVar(&keep, "keep", false, "leave the cluster running at the end")
	c.Flags().BoolVar(&noFault, "no-fault", false, "do not freeze a replica during the upgrade")
	c.Flags().DurationVar(&stall, "stall-after", 5*time.Second, "no progress for this long is a stall")
	c.Flags().StringVar(&drv, "driver", local.Name, "where replicas run: local (processes) or docker (containers; images are built first)")
	return c
}

type demo struct {
	env        *env
	cluster    string
	plan       plan.Plan
	replicas   int
	repos      int
	fault      bool
	stallAfter time.Duration
	json       bool
	driverName string

	drv      driver.Driver
	password string
	sum      demoSummary
	// fault state, touched from the engine's event callback
	mu       sync.Mutex
	frozenAt time.Time
	frozen   string
	detected time.Duration
}

// say prints a demo headline (to stderr with -o json, so stdout stays JSON).
func (d *demo) say(format string, args ...any) {
	w := d.env.stdout
	if d.json {
		w = d.env.stderr
	}
	fmt.Fprintf(w, "\n== "+format+"\n", args...)
}

func (d *demo) out() io.Writer {
	if d.json {
		return d.env.stderr
	}
	return d.env.stdout
}

func (d *demo) run(keep bool) (err error) {
	ctx := d.env.ctx
	start := time.Now()
	d.sum = demoSummary{Cluster: d.cluster, Driver: d.driverName, From: d.plan.From.String(), To: d.plan.To.String(), Lost: []string{}, Remediations: []string{}}

	home, err := driver.Home()
	if err != nil {
		return err
	}
	if _, err := driver.ReadRecord(home, d.cluster); err == nil {
		return withCode(ExitUsage, fmt.Errorf("cluster %q exists already (a demo run with --keep?): remove it with: ladder cluster destroy --cluster %s", d.cluster, d.cluster))
	}
	if d.driverName == docker.Name {
		var stops []string
		for _, v := range d.plan.Versions() {
			stops = append(stops, v.String())
		}
		d.say("0. build the release images the plan needs (FROM scratch, nothing pulled)")
		if code := Run(ctx, []string{"images", "build", "--versions", strings.Join(stops, ",")}, d.env.stdin, d.out(), d.env.stderr); code != 0 {
			return silent(code)
		}
	}
	d.say("1. create a %d-replica cluster %q at %s (%s driver)", d.replicas, d.cluster, d.plan.From, d.driverName)
	if code := Run(ctx, []string{"cluster", "create", "--cluster", d.cluster, "--version", d.plan.From.String(),
		"--replicas", strconv.Itoa(d.replicas), "--driver", d.driverName}, d.env.stdin, d.out(), d.env.stderr); code != 0 {
		return silent(code)
	}
	drv, rec, err := openCluster(d.cluster)
	if err != nil {
		return err
	}
	d.drv = drv
	if !keep {
		defer func() {
			d.say("cleaning up: destroying cluster %s (--keep leaves it running)", d.cluster)
			if derr := drv.Destroy(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, derr)
			}
		}()
	}
	if d.password, err = adminPassword(rec); err != nil {
		return err
	}
	reps, err := drv.Replicas(ctx)
	if err != nil {
		return err
	}
	urls := make([]string, len(reps))
	for i, r := range reps {
		urls[i] = r.URL
	}

	d.say("2. seed %d repositories of metadata and push images", d.repos)
	if out, err := drv.RunJob(ctx, d.plan.From.String(), driver.Job{Name: "seed",
		Args: []string{"registry", "seed", "--repositories", strconv.Itoa(d.repos)}}); err != nil {
		return fmt.Errorf("seed the cluster: %w", err)
	} else {
		fmt.Fprint(d.out(), driver.Tail(out, 3)+"\n")
	}
	for i := range 5 {
		tag := fmt.Sprintf("v%d", i)
		if _, err := traffic.Push(ctx, urls[i%len(urls)], "demo/images", tag, d.password, 10*time.Second); err != nil {
			return fmt.Errorf("push demo/images:%s: %w", tag, err)
		}
	}
	fmt.Fprintf(d.out(), "pushed 5 images to demo/images through %d replicas\n", len(urls))
	if d.sum.SeedRowsBefore, err = registry.Stats(ctx, probeClient, urls[0]); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}

	d.say("3. the plan")
	printPlan(d.out(), d.plan)

	d.say("4. upgrade, while a client pushes and pulls through the replicas%s", map[bool]string{true: "; one replica will be frozen on the way", false: ""}[d.fault])
	client := &traffic.Client{URLs: urls, Repo: "demo/traffic", Password: d.password, Interval: 150 * time.Millisecond}
	tctx, stopTraffic := context.WithCancel(ctx)
	var twg sync.WaitGroup
	twg.Go(func() { client.Run(tctx) })

	j, err := openJournal(d.cluster)
	if err != nil {
		stopTraffic()
		return err
	}
	opts := upgrade.DefaultOptions()
	opts.StallAfter = d.stallAfter
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.ID
	}
	rep := newReporter(d.env, false, len(upgrade.Steps(d.plan, ids)))
	rep.onEvent = d.onEvent
	eng := &upgrade.Engine{Driver: drv, App: registryApp{cluster: d.cluster, password: d.password}, Journal: j,
		Log: rep.logger(logLevels["off"]), OnEvent: rep.event, Options: opts}
	upStart := time.Now()
	runErr := eng.Run(ctx, d.plan)
	rep.close()
	upTime := time.Since(upStart)
	stopTraffic()
	twg.Wait()
	d.mu.Lock()
	if d.frozen != "" {
		_ = drv.(driver.Freezer).Thaw(context.WithoutCancel(ctx), d.frozen) // in case it was never restarted
	}
	d.mu.Unlock()
	if runErr != nil {
		return upgradeResult(d.env, false, d.cluster, d.plan.To, j, upStart, runErr)
	}

	d.say("5. check that nothing was lost")
	if _, err := waitSettled(ctx, drv, time.Minute); err != nil {
		return err
	}
	if d.sum.SeedRowsAfter, err = registry.Stats(ctx, probeClient, urls[0]); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	v := client.Verify(ctx)
	d.sum.Lost = append(d.sum.Lost, v.Missing...)
	for i := range 5 {
		for _, u := range urls {
			if _, err := traffic.Resolve(ctx, u, "demo/images", fmt.Sprintf("v%d", i), 10*time.Second); err != nil {
				d.sum.Lost = append(d.sum.Lost, fmt.Sprintf("demo/images:v%d@%s", i, u))
			}
		}
	}
	for table, before := range d.sum.SeedRowsBefore {
		if after, ok := d.sum.SeedRowsAfter[table]; ok && after < before && table != "events" {
			d.sum.Lost = append(d.sum.Lost, fmt.Sprintf("table %s: %d rows before, %d after", table, before, after))
		}
	}
	d.sum.Client = client.Stats()
	d.sum.WrittenDuring = v.Tags
	fmt.Fprintf(d.out(), "%d tags written during the upgrade, each checked on %d replicas; 5 images pushed before; %d rows seeded\n",
		v.Tags, len(urls), sumRows(d.sum.SeedRowsBefore))

	sum, err := upgrade.Summarize(j)
	if err != nil {
		return err
	}
	d.summarize(sum, upTime, time.Since(start))
	if d.json {
		if err := writeJSON(d.env.stdout, d.sum); err != nil {
			return err
		}
	} else {
		d.print()
	}
	if len(d.sum.Lost) > 0 {
		return fmt.Errorf("data lost: %s", strings.Join(d.sum.Lost, "; "))
	}
	if keep {
		d.say("cluster %s is still running: ladder status --cluster %s; open %s in a browser", d.cluster, d.cluster, urls[0])
	}
	return nil
}

// onEvent freezes a replica once the second hop has upgraded its first
// replica, and notes when the engine detects the stall.
func (d *demo) onEvent(ev upgrade.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case ev.Type == upgrade.EventStall && d.frozen != "" && d.detected == 0:
		d.detected = ev.Time.Sub(d.frozenAt)
	case d.fault && d.frozen == "" && ev.Type == upgrade.EventStepDone && len(d.plan.Hops) > 1 &&
		strings.HasPrefix(ev.Step, upgrade.HopPrefix(d.plan.Hops[1])+"/roll/") && strings.HasSuffix(ev.Step, "/"+upgrade.StepWait):
		fz, ok := d.drv.(driver.Freezer)
		if !ok {
			return
		}
		st, err := clusterStatus(d.env.ctx, d.drv)
		if err != nil {
			return
		}
		done := strings.Split(ev.Step, "/")[3]
		for _, r := range st.Replicas {
			if r.ID != done && !r.Leader && r.Version != d.plan.Hops[1].To.String() {
				if err := fz.Freeze(d.env.ctx, r.ID); err == nil {
					d.frozen, d.frozenAt = r.ID, time.Now()
					fmt.Fprintf(d.env.stderr, "WARN  [demo] froze %s (%s): watch ladder notice and repair it\n", r.ID,
						map[string]string{local.Name: "SIGSTOP", docker.Name: "docker pause"}[d.driverName])
				}
				return
			}
		}
	}
}

func (d *demo) summarize(s upgrade.Summary, upTime, total time.Duration) {
	d.sum.Total = total
	d.sum.Frozen = d.frozen
	d.sum.Detection = d.detected
	d.sum.Timing = map[string]int64{"upgrade": int64(upTime)}
	for k, v := range s.Timing {
		d.sum.Timing[k] = int64(v)
	}
	for _, h := range s.Hops {
		dh := demoHop{ID: h.ID, Wall: h.Duration, Restarts: h.Timing["restart"], Settle: h.Timing["settle"], Migration: h.Timing["migration"]}
		if work := dh.Restarts + dh.Settle + dh.Migration; work > 0 {
			dh.Overhead = float64(dh.Wall) / float64(work)
		}
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
	fmt.Fprintln(tw, "HOP\tWALL\tRESTARTS\tSETTLE WAITS\tMIGRATION\tWALL/(SUM)")
	for _, h := range s.Hops {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\n", h.ID, rd(h.Wall), rd(h.Restarts), rd(h.Settle), rd(h.Migration), h.Overhead)
	}
	tw.Flush()
	if s.Frozen != "" {
		det := "not detected (the replica may have been replaced before a wait saw it)"
		if s.Detection > 0 {
			det = "detected after " + rd(s.Detection)
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
