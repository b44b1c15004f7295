package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/upgrade"
)

func newClusterSeedCmd(e *env) *cobra.Command {
	var (
		cf    clusterFlag
		repos int
	)
	c := &cobra.Command{
		Use:   "seed",
		Short: "Write realistic registry metadata into a cluster",
		Long: `Seed writes repositories, manifests, tags, blob links and events into the
cluster's store, as pushes would, so that migrations have real work to do.
It runs as a one-off job of the release the cluster runs. The same
--repositories always gives the same names and digests.`,
		Example: `  ladder cluster seed --repositories 1000`,
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if repos < 1 {
				return usageErr("invalid --repositories %d: must be at least 1", repos)
			}
			d, rec, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			var (
				out  []byte
				took time.Duration
				rows = -1
			)
			err = withLock(e.ctx, d, rec, "seed", func() error {
				st, err := clusterStatus(e.ctx, d)
				if err != nil {
					return err
				}
				if st.Version == upgrade.VersionMixed || st.Version == "" {
					return fmt.Errorf("cluster %s runs mixed releases: seed it when every replica runs one release", cf.name)
				}
				url := st.Replicas[0].URL
				before, _ := dataRows(e.ctx, url)
				start := time.Now()
				stop := seedProgress(e, url, repos)
				out, err = d.RunJob(e.ctx, st.Version, driver.Job{Name: "seed",
					Args: []string{"registry", "seed", "--repositories", strconv.Itoa(repos)}})
				stop()
				took = time.Since(start)
				if after, rerr := dataRows(e.ctx, url); err == nil && rerr == nil && before >= 0 {
					rows = after - before
				}
				return err
			})
			var ee *exitError
			if errors.As(err, &ee) {
				return err
			}
			if err != nil {
				return fmt.Errorf("seed cluster %s: %w", cf.name, err)
			}
			summary := home.Tail(out, 1)
			if e.json() {
				res := map[string]any{"cluster": cf.name, "repositories": repos, "summary": summary,
					"seconds": took.Seconds()}
				if rows >= 0 {
					res["rows"] = rows
					res["rows_per_second"] = float64(rows) / took.Seconds()
				}
				return writeJSON(e.stdout, res)
			}
			if rows >= 0 {
				summary += fmt.Sprintf(": %d rows in %s (%.0f rows/s)", rows, took.Round(10*time.Millisecond), float64(rows)/took.Seconds())
			}
			fmt.Fprintln(e.stdout, summary)
			return nil
		},
	}
	cf.register(c)
	c.Flags().IntVar(&repos, "repositories", 100, "number of repositories")
	return c
}

// seedProgress shows, on stderr, the repositories the store holds while a
// seed job runs, read from a replica's row counts: a bar on a terminal,
// a line every few seconds otherwise. The returned func ends it.
func seedProgress(e *env, replicaURL string, want int) (stop func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	start := time.Now()
	before := -1
	var bar *mpb.Bar
	var bars *mpb.Progress
	if f, ok := e.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !e.json() {
		bars = mpb.New(mpb.WithOutput(f), mpb.WithWidth(32))
		bar = bars.AddBar(int64(want), mpb.PrependDecorators(decor.Name("seed "), decor.CountersNoUnit("%d/%d repositories ")),
			mpb.AppendDecorators(decor.Elapsed(decor.ET_STYLE_GO)))
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		lastLine := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			stats, err := registry.Stats(ctx, statsClient, replicaURL)
			if err != nil {
				continue
			}
			if before < 0 {
				before = stats[registry.TableRepositories]
			}
			n := stats[registry.TableRepositories] - before
			switch {
			case bar != nil:
				bar.SetCurrent(int64(n))
			case !e.json() && time.Since(lastLine) >= 5*time.Second:
				lastLine = time.Now()
				fmt.Fprintf(e.stderr, "seeding: %d of %d repositories after %s\n", n, want, time.Since(start).Round(time.Second))
			}
		}
	}()
	return func() {
		cancel()
		<-done
		if bars != nil {
			bar.Abort(false)
			bars.Wait()
		}
	}
}

// dataRows is the number of registry data rows (repositories, manifests,
// tags, blobs, links, events) a replica's store holds, or -1 and an error.
func dataRows(ctx context.Context, replicaURL string) (int, error) {
	stats, err := registry.Stats(ctx, statsClient, replicaURL)
	if err != nil {
		return -1, err
	}
	n := 0
	for _, t := range []string{registry.TableRepositories, registry.TableManifests, registry.TableTags,
		registry.TableBlobs, registry.TableBlobRepository, registry.TableEvents} {
		n += stats[t]
	}
	return n, nil
}
