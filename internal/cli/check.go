package cli

import (
	"fmt"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/service"
)

type checkResult struct {
	From      string           `json:"from"`
	To        string           `json:"to"`
	Supported bool             `json:"supported"`
	Kind      policy.Kind      `json:"kind"`
	Findings  []policy.Finding `json:"findings"`
	Path      []string         `json:"path,omitempty"`
	Catalog   string           `json:"catalog"`
	// Service and Rules: the service whose extra rules applied, and
	// those rules in words (absent for the reference registry).
	Service string   `json:"service,omitempty"`
	Rules   []string `json:"rules,omitempty"`
}

// minPatchFinding is the mandatory finding of a service's minimum-patch
// rule that from → to breaks: it leaves from's minor from below the
// minimum.
func minPatchFinding(p profile, from, to *semver.Version, cat *catalog.Catalog) (policy.Finding, bool) {
	r, ok := plan.MinPatchFor(p.rules, from)
	if !ok || !from.LessThan(r.Min) || (to.Major() == from.Major() && to.Minor() == from.Minor()) || !from.LessThan(to) {
		return policy.Finding{}, false
	}
	hint := fmt.Sprintf("upgrade to %s or later first", r.Min)
	if latest, ok := cat.LatestPatch(from.Major(), from.Minor()); ok && !latest.LessThan(r.Min) {
		hint = fmt.Sprintf("upgrade to %s (the latest %d.%d) first", latest, from.Major(), from.Minor())
	}
	return policy.Finding{Check: "min-patch", Mandatory: true, Message: fmt.Sprintf("%s %s is below %s, the minimum to leave %d.%d (%s)",
		p.name, from, r.Min, from.Major(), from.Minor(), r.Source), Hint: hint}, true
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
  ladder check 3.1.2 3.2.0-rc.1 --allow-prerelease
  ladder check --service etcd 3.5.20 3.6.16   # refused: 3.6 needs 3.5.26 or later`,
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
			prof, err := rel.profile()
			if err != nil {
				return err
			}
			if f, ok := minPatchFinding(prof, from, to, cat); ok {
				res.Findings = append(res.Findings, f)
				res.Supported = false
			}
			if len(prof.explain) > 0 {
				res.Service, res.Rules = prof.name, prof.explain
			}
			if !res.Supported {
				if p, err := plan.Make(cat, from, to, plan.Options{AllowPrerelease: rel.allowPrerelease, MinPatch: prof.rules}); err == nil && len(p.Hops) > 0 {
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
		svc := ""
		if r.Service != "" && r.Service != service.RegistryName {
			svc = "--service " + r.Service + " "
		}
		fmt.Fprintf(w, "  see: ladder plan %s%s %s\n", svc, r.From, r.To)
	}
	if len(r.Rules) > 0 {
		fmt.Fprintf(w, "  %s rules:\n", r.Service)
		for _, rule := range r.Rules {
			fmt.Fprintf(w, "    - %s\n", rule)
		}
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
