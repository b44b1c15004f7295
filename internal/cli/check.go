package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
)

type checkResult struct {
	From      string           `json:"from"`
	To        string           `json:"to"`
	Supported bool             `json:"supported"`
	Kind      policy.Kind      `json:"kind"`
	Findings  []policy.Finding `json:"findings"`
	Path      []string         `json:"path,omitempty"`
	Catalog   string           `json:"catalog"`
}

func newCheckCmd(e *env) *cobra.Command {
	var (
		rel releaseFlags
	)
	c := &cobra.Command{
		Use:   "check FROM TO",
		Short: "Say whether upgrading FROM → TO directly is supported, and why",
		Long: `Check classifies the transition FROM → TO by the version rules and reports
its kind (patch-upgrade, skip-minor, major-upgrade, ...) and any findings.

Mandatory findings (downgrades, skipped minors or majors, a major upgrade
that misses the earliest minor of the next major) can never be waived.
Skippable findings (recommendations) are warnings here; ladder upgrade
needs --force to go past them. When the direct upgrade is refused but TO
can be reached, check shows the supported chain of hops.

Exit status: 0 supported (no-change included), 3 refused by policy,
2 invalid input.`,
		Example: `  ladder check 2.2.4 2.2.5        # patch upgrade: supported
  ladder check 2.1.4 2.3.2        # skips minor 2.2: refused, shows the path
  ladder check 2.3.2 3.1.0 -o json
  ladder check 3.1.2 3.2.0-rc.1 --allow-prerelease`,
		Args:              exactArgs("FROM", "TO"),
		ValidArgsFunction: completeVersions(&rel, 2),
		RunE: func(c *cobra.Command, args []string) error {
			from, to, cat, err := rel.transition(args)
			if err != nil {
				return err
			}
			r := policy.Classify(from, to, policy.Options{Releases: cat, AllowPrerelease: rel.allowPrerelease})
			res := checkResult{From: from.String(), To: to.String(), Supported: r.Supported(), Kind: r.Kind,
				Findings: r.Findings, Catalog: cat.Source()}
			if res.Findings == nil {
				res.Findings = []policy.Finding{}
			}
			if !res.Supported {
				if p, err := plan.Make(cat, from, to, plan.Options{AllowPrerelease: rel.allowPrerelease}); err == nil && len(p.Hops) > 0 {
					for _, v := range p.Versions() {
						res.Path = append(res.Path, v.String())
					}
				}
			}
			if e.json() {
				if err := writeJSON(e.stdout, res); err != nil {
					return err
				}
			} else {
				printCheck(e, res)
			}
			if !res.Supported {
				return silent(ExitRefused)
			}
			return nil
		},
	}
	rel.register(c, true)
	return c
}

func printCheck(e *env, r checkResult) {
	w := e.stdout
	verdict := "supported"
	if !r.Supported {
		verdict = "NOT supported"
	}
	fmt.Fprintf(w, "%s -> %s: %s (%s)\n", r.From, r.To, verdict, r.Kind)
	if r.Kind == policy.NoChange {
		fmt.Fprintln(w, "  nothing to do: the versions are the same")
	}
	for _, f := range r.Findings {
		tier := "warning"
		if f.Mandatory {
			tier = "refused"
		}
		fmt.Fprintf(w, "  %-8s %s\n", tier+":", f.Message)
		if f.Hint != "" && !(len(r.Path) > 0 && strings.HasPrefix(f.Hint, "ladder plan")) {
			fmt.Fprintf(w, "  %-8s %s\n", "", f.Hint)
		}
	}
	if len(r.Path) > 0 {
		fmt.Fprintf(w, "  supported path: %s\n", strings.Join(r.Path, " -> "))
		fmt.Fprintf(w, "  see: ladder plan %s %s\n", r.From, r.To)
	}
	if r.Supported && hasSkippable(r.Findings) {
		fmt.Fprintln(w, "  ladder upgrade will stop at the warnings above unless given --force")
	}
}

func hasSkippable(fs []policy.Finding) bool {
	for _, f := range fs {
		if !f.Mandatory {
			return true
		}
	}
	return false
}
