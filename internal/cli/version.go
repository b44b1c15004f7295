package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
)

func newVersionCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "version",
		Short: "Print ladder's version",
		Args:  exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if e.json() {
				return writeJSON(e.stdout, map[string]string{"version": Version, "go": runtime.Version()})
			}
			fmt.Fprintf(e.stdout, "ladder %s (%s)\n", Version, runtime.Version())
			return nil
		},
	}
	return c
}
