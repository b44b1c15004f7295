package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
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
			d, _, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			var out []byte
			err = withLock(cf.name, "seed", func() error {
				st, err := clusterStatus(e.ctx, d)
				if err != nil {
					return err
				}
				if st.Version == upgrade.VersionMixed || st.Version == "" {
					return fmt.Errorf("cluster %s runs mixed releases: seed it when every replica runs one release", cf.name)
				}
				out, err = d.RunJob(e.ctx, st.Version, driver.Job{Name: "seed",
					Args: []string{"registry", "seed", "--repositories", strconv.Itoa(repos)}})
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
				return writeJSON(e.stdout, map[string]any{"cluster": cf.name, "repositories": repos, "summary": summary})
			}
			fmt.Fprintln(e.stdout, summary)
			return nil
		},
	}
	cf.register(c)
	c.Flags().IntVar(&repos, "repositories", 100, "number of repositories")
	return c
}
