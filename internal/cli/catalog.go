package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

type catalogJSON struct {
	Source   string        `json:"source"`
	Releases []string      `json:"releases"`
	Details  []releaseJSON `json:"details"`
}

type releaseJSON struct {
	Version    string `json:"version"`
	Prerelease bool   `json:"prerelease"`
	Schema     int    `json:"schema,omitempty"`
	Notes      string `json:"notes,omitempty"`
}

func newCatalogCmd(e *env) *cobra.Command {
	var (
		rel releaseFlags
	)
	c := &cobra.Command{
		Use:   "catalog",
		Short: "List the releases ladder plans over",
		Long: `Catalog lists the releases of the release catalog, oldest first: the
built-in catalog (the reference registry's releases) or the file given
with --catalog.

A catalog file is YAML or JSON with a top-level list of releases; each is
a version string, or an object with version and optional notes and schema:

  releases:
    - 2.2.4
    - version: 2.3.0
      notes: adds the new UI
      schema: 5`,
		Example: `  ladder catalog
  ladder catalog --catalog releases.yaml -o json`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			cat, err := rel.load()
			if err != nil {
				return err
			}
			res := catalogJSON{Source: cat.Source(), Releases: []string{}, Details: []releaseJSON{}}
			for _, r := range cat.Releases() {
				res.Releases = append(res.Releases, r.Version.String())
				res.Details = append(res.Details, releaseJSON{Version: r.Version.String(),
					Prerelease: r.Version.Prerelease() != "", Schema: r.Schema, Notes: r.Notes})
			}
			if e.json() {
				return writeJSON(e.stdout, res)
			}
			fmt.Fprintf(e.stdout, "%d releases (%s catalog)\n\n", len(res.Details), res.Source)
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "VERSION\tSCHEMA\tNOTES")
			for _, d := range res.Details {
				schema := "-"
				if d.Schema != 0 {
					schema = fmt.Sprint(d.Schema)
				}
				notes := d.Notes
				if d.Prerelease {
					notes = "(pre-release) " + notes
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Version, schema, notes)
			}
			return tw.Flush()
		},
	}
	rel.register(c, false)
	return c
}
