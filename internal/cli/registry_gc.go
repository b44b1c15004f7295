package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/registry"
)

func newRegistryGCCmd(e *env) *cobra.Command {
	var (
		cf     clusterFlag
		dryRun bool
	)
	c := &cobra.Command{
		Use:   "gc",
		Short: "Remove the blobs no manifest references",
		Long: `Gc asks a replica of the cluster to remove the blob files that no manifest of
any repository references, with their rows. It is safe while clients push:
a blob written, or found by a client, within the last ` + registry.GCMinAge.String() + ` is kept (a push
writes its blobs before its manifest). Deleting a manifest leaves its blobs
for gc; deleting a blob a manifest still references is refused (409).

Abandoned uploads are not gc's business: the registry prunes uploads that
received nothing for an hour by itself (registry serve --upload-max-age).`,
		Example: `  ladder registry gc --dry-run     # what would go
  ladder registry gc -o json`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			var rep registry.GCReport
			err := onReplica(e, cf.name, func(ac registry.AdminClient) (err error) {
				rep, err = ac.GC(e.ctx, registry.GCOptions{DryRun: dryRun})
				return err
			})
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, rep)
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			fmt.Fprintf(e.stdout, "%d blobs: %d referenced, %d unreferenced but recent (kept); %s %d (%s)\n",
				rep.Blobs, rep.Referenced, rep.Recent, verb, len(rep.Removed), byteSize(rep.RemovedBytes))
			return nil
		},
	}
	cf.register(c)
	c.Flags().BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
	return c
}

func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
