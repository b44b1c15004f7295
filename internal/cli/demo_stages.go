package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/traffic"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// demoImages are the images pushed before the upgrade, checked after it.
const demoImages = 5

// buildImages is stage 0 of the docker demo: the images of every release
// the plan stops at.
func (d *demo) buildImages() error {
	var stops []string
	for _, v := range d.plan.Versions() {
		stops = append(stops, v.String())
	}
	d.say("0. build the release images the plan needs (FROM scratch, nothing pulled)")
	build, err := buildImages(d.env, d.out(), stops, "", false)
	d.build = build
	return err
}

// create is stage 1: the cluster, settled.
func (d *demo) create() error {
	d.say("1. create a %d-replica cluster %q at %s (%s driver)", d.replicas, d.cluster, d.plan.From, d.driverName)
	drv, err := newCluster(d.env, d.out(), createOpts{cluster: d.cluster, version: d.plan.From.String(),
		replicas: d.replicas, driver: d.driverName, build: d.build, timeout: 2 * time.Minute, blobs: d.blobs})
	if err != nil {
		return err
	}
	d.drv = drv
	_, rec, err := openCluster(d.cluster)
	if err != nil {
		return err
	}
	if d.password, err = rec.Secret(service.AdminPasswordSecret); err != nil {
		return err
	}
	if d.tls, err = d.env.clusterTLS(rec); err != nil {
		return err
	}
	reps, err := drv.Replicas(d.env.ctx)
	if err != nil {
		return err
	}
	for _, r := range reps {
		d.urls = append(d.urls, r.URL)
	}
	return nil
}

// seed is stage 2: metadata through a job, images through the replicas.
func (d *demo) seed(ctx context.Context) error {
	d.say("2. seed %d repositories of metadata and push images", d.repos)
	out, err := d.drv.RunJob(ctx, d.plan.From.String(), driver.Job{Name: "seed",
		Args: []string{"registry", "seed", "--repositories", strconv.Itoa(d.repos)}})
	if err != nil {
		return fmt.Errorf("seed the cluster: %w", err)
	}
	// The job logs to its output too; its last line is its result.
	fmt.Fprintln(d.out(), home.Tail(out, 1))
	for i := range demoImages {
		tag := fmt.Sprintf("v%d", i)
		if _, err := traffic.Push(ctx, d.tls, d.urls[i%len(d.urls)], "demo/images", tag, d.password, 10*time.Second); err != nil {
			return fmt.Errorf("push demo/images:%s: %w", tag, err)
		}
	}
	fmt.Fprintf(d.out(), "pushed %d images to demo/images through %d replicas\n", demoImages, len(d.urls))
	if d.sum.SeedRowsBefore, err = registry.Stats(ctx, statsClient(d.tls), d.urls[0]); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	return nil
}

// upgradeResult is what stage 4 leaves for the check and the summary.
type upgradeRunResult struct {
	client  *traffic.Client
	journal *journal.Journal
	took    time.Duration
	fault   faultReport
}

// upgrade is stage 4: the upgrade, with a client pushing and pulling and,
// unless --no-fault, a replica frozen on the way.
func (d *demo) upgrade(ctx context.Context) (upgradeRunResult, error) {
	var res upgradeRunResult
	d.say("4. upgrade, while a client pushes and pulls through the replicas%s", map[bool]string{true: "; one replica will be frozen on the way", false: ""}[d.fault])
	j, err := openJournal(d.cluster)
	if err != nil {
		return res, err
	}
	res.journal = j
	res.client = &traffic.Client{URLs: d.urls, Repo: "demo/traffic", Password: d.password, Interval: 150 * time.Millisecond, TLS: d.tls}
	tctx, stopTraffic := context.WithCancel(ctx)
	var twg sync.WaitGroup
	twg.Go(func() { res.client.Run(tctx) })

	opts := upgrade.DefaultOptions()
	opts.StallAfter = d.stallAfter
	opts.Abort = d.env.abort
	ids := make([]string, len(d.urls))
	for i := range ids {
		ids[i] = fmt.Sprintf("replica-%d", i+1)
	}
	rep := newReporter(d.env, false, len(upgrade.Steps(d.plan, ids)))
	var faults *faultInjector
	if fz, ok := d.drv.(driver.Freezer); ok && d.fault && len(d.plan.Hops) > 1 {
		faults = newFaultInjector(ctx, d, fz)
		rep.onEvent = faults.see
	}
	app := service.RegistryApp{Cluster: d.cluster, Password: d.password, Replicas: d.drv.Replicas, TLS: d.tls}
	eng := &upgrade.Engine{Driver: d.drv, App: app, Journal: j,
		Log: rep.logger(logLevels["off"]), OnEvent: rep.event, Options: opts}
	start := time.Now()
	runErr := eng.Run(ctx, d.plan)
	rep.close()
	res.took = time.Since(start)
	stopTraffic()
	twg.Wait()
	if faults != nil {
		res.fault = faults.stop()
	}
	if runErr != nil {
		return res, upgradeResult(d.env, false, d.drv, d.plan.To, j, start, runErr)
	}
	return res, nil
}

// verify is stage 5: every seeded row, pushed image and tag written
// during the upgrade is still there, on every replica.
func (d *demo) verify(ctx context.Context, client *traffic.Client) error {
	d.say("5. check that nothing was lost")
	if _, err := d.env.waitSettled(ctx, d.drv, time.Minute); err != nil {
		return err
	}
	var err error
	if d.sum.SeedRowsAfter, err = registry.Stats(ctx, statsClient(d.tls), d.urls[0]); err != nil {
		return fmt.Errorf("count rows: %w", err)
	}
	v := client.Verify(ctx)
	d.sum.Lost = append(d.sum.Lost, v.Missing...)
	for i := range demoImages {
		for _, u := range d.urls {
			if _, err := traffic.Resolve(ctx, d.tls, u, "demo/images", fmt.Sprintf("v%d", i), 10*time.Second); err != nil {
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
	fmt.Fprintf(d.out(), "%d tags written during the upgrade, each checked on %d replicas; %d images pushed before; %d rows seeded\n",
		v.Tags, len(d.urls), demoImages, sumRows(d.sum.SeedRowsBefore))
	return nil
}

func joinLost(lost []string) string { return strings.Join(lost, "; ") }
