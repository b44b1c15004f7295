package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
)

type hopJSON struct {
	From       string      `json:"from"`
	To         string      `json:"to"`
	Kind       policy.Kind `json:"kind"`
	Migrates   bool        `json:"migrates"`
	FromSchema int         `json:"from_schema,omitempty"`
	ToSchema   int         `json:"to_schema,omitempty"`
	Reason     string      `json:"reason"`
}

type planJSON struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	Hops    []hopJSON `json:"hops"`
	Path    []string  `json:"path"`
	Catalog string    `json:"catalog"`
	// Service and Rules: the service whose extra rules applied, and
	// those rules in words (absent for the reference registry).
	Service string   `json:"service,omitempty"`
	Rules   []string `json:"rules,omitempty"`
}

func planToJSON(p plan.Plan, source string) planJSON {
	out := planJSON{From: p.From.String(), To: p.To.String(), Hops: []hopJSON{}, Catalog: source}
	for _, h := range p.Hops {
		out.Hops = append(out.Hops, hopJSON{From: h.From.String(), To: h.To.String(), Kind: h.Kind,
			Migrates: h.Migrates, FromSchema: h.FromSchema, ToSchema: h.ToSchema, Reason: h.Reason})
	}
	for _, v := range p.Versions() {
		out.Path = append(out.Path, v.String())
	}
	return out
}

func newPlanCmd(e *env) *cobra.Command {
	var (
		rel releaseFlags
	)
	c := &cobra.Command{
		Use:   "plan FROM TO",
		Short: "Show the shortest supported chain of hops from FROM to TO",
		Long: `Plan finds the shortest chain of supported upgrades from FROM to TO over
the release catalog. Every stop on the way is the latest patch of its
minor; the chain reaches the latest release of the current major before a
major upgrade, and lands on the earliest minor of the next major. A
pre-release is never a stop on the way, and only the target with
--allow-prerelease. TO must be a release of the catalog; FROM need not be.

--service etcd plans over etcd's releases and adds etcd's rules: the
minimum patch of a minor before the next (3.5.26 before 3.6, 3.6.11
before 3.7), which routes a plan through the latest patch first.

Exit status: 0 with the hops (none when FROM = TO), 3 when no supported
path exists (downgrade, target unknown to the catalog, a missing minor),
2 invalid input.`,
		Example: `  ladder plan 2.1.4 3.1.2
  ladder plan 2.1.4 3.1.2 -o json
  ladder plan 1.4.1 2.0.3 --catalog releases.yaml
  ladder plan --service etcd 3.5.20 3.7.3   # through 3.5.35 first: 3.6 needs 3.5.26 or later`,
		Args:              exactArgs("FROM", "TO"),
		ValidArgsFunction: completeVersions(&rel, 2),
		RunE: func(c *cobra.Command, args []string) error {
			from, to, cat, err := rel.transition(args)
			if err != nil {
				return err
			}
			prof, err := rel.profile()
			if err != nil {
				return err
			}
			p, err := plan.Make(cat, from, to, plan.Options{AllowPrerelease: rel.allowPrerelease, MinPatch: prof.rules})
			if err != nil {
				return refusedPlan(err)
			}
			if e.json() {
				out := planToJSON(p, cat.Source())
				if len(prof.explain) > 0 {
					out.Service, out.Rules = prof.name, prof.explain
				}
				return writeJSON(e.stdout, out)
			}
			printPlan(e.stdout, p)
			printRules(e.stdout, prof)
			if len(p.Hops) > 0 {
				fmt.Fprintf(e.stdout, "\nNext: ladder upgrade --cluster NAME --to %s --dry-run\n", p.To)
			}
			return nil
		},
	}
	rel.register(c, true)
	return c
}

// refusedPlan maps planning errors to exit 3 (refused by policy).
func refusedPlan(err error) error {
	for _, target := range []error{plan.ErrNoPath, plan.ErrDowngrade, plan.ErrUnknownTarget, plan.ErrPrerelease} {
		if errors.Is(err, target) {
			return withCode(ExitRefused, err)
		}
	}
	return err
}

// printPlan writes the one-line ladder and a table of hops.
func printPlan(w io.Writer, p plan.Plan) {
	vs := p.Versions()
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.String()
	}
	if len(p.Hops) == 0 {
		fmt.Fprintf(w, "%s is already the target: nothing to do\n", p.From)
		return
	}
	fmt.Fprintf(w, "%s  (%d %s)\n\n", strings.Join(parts, " -> "), len(p.Hops), plural(len(p.Hops), "hop", "hops"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tFROM\tTO\tKIND\tDATA\tWHY")
	for i, h := range p.Hops {
		data := "no migration"
		if h.Migrates {
			data = "migrates"
			if h.FromSchema != 0 {
				data = fmt.Sprintf("schema %d→%d", h.FromSchema, h.ToSchema)
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, h.From, h.To, h.Kind, data, h.Reason)
	}
	tw.Flush()
}

// printRules writes the service's extra rules, if it has any.
func printRules(w io.Writer, p profile) {
	if len(p.explain) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s rules:\n", p.name)
	for _, r := range p.explain {
		fmt.Fprintf(w, "  - %s\n", r)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
