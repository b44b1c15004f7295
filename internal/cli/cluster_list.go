package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/internal/home"
)

// clusterJSON is one cluster of `cluster list -o json`.
type clusterJSON struct {
	Name    string    `json:"name"`
	Driver  string    `json:"driver"`
	Service string    `json:"service"`
	Created time.Time `json:"created"`
	// Adopted: ladder took the cluster over (ladder cluster adopt).
	Adopted bool `json:"adopted,omitempty"`
}

func newClusterListCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the clusters this ladder home knows",
		Long: `List shows every cluster with a record under $LADDER_HOME/clusters
(default ~/.ladder): its name, driver, service and when it was created. It
reads only the records; ladder cluster status asks a cluster how it is.`,
		Example: `  ladder cluster list
  ladder cluster list -o json`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			root, err := home.Dir()
			if err != nil {
				return err
			}
			list := []clusterJSON{}
			for _, name := range home.Clusters(root) {
				rec, err := home.ReadRecord(root, name)
				if err != nil {
					return err
				}
				list = append(list, clusterJSON{Name: rec.Name, Driver: rec.Driver, Service: rec.Service, Created: rec.Created, Adopted: rec.Adopted})
			}
			if e.json() {
				return writeJSON(e.stdout, list)
			}
			if len(list) == 0 {
				fmt.Fprintln(e.stderr, "no clusters (create one with: ladder cluster create --version VERSION)")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDRIVER\tSERVICE\tCREATED")
			for _, r := range list {
				svc := r.Service
				if r.Adopted {
					svc += " (adopted)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Driver, svc, r.Created.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
}
