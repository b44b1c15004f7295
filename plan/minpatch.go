package plan

import (
	"fmt"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/catalog"
)

// MinPatch is a service's rule for leaving a minor: a cluster on
// Min.Major.Min.Minor moves to a later minor only from Min or a later
// patch (etcd: 3.5 → 3.6 needs 3.5.26 or later). A plan from below Min
// first goes to the latest patch of the minor.
type MinPatch struct {
	Min *semver.Version
	// Source says where the rule comes from, for the hop's reason ("the
	// etcd 3.5 → 3.6 upgrade guide").
	Source string
}

// MinPatchFor returns the rule that holds for leaving the minor of v.
func MinPatchFor(rules []MinPatch, v *semver.Version) (MinPatch, bool) {
	for _, r := range rules {
		if r.Min != nil && r.Min.Major() == v.Major() && r.Min.Minor() == v.Minor() {
			return r, true
		}
	}
	return MinPatch{}, false
}

// minPatchStop returns the stop a rule forces after cur on the way to to:
// the latest patch of cur's minor when cur is below the rule's minimum and
// to lies past cur's minor; nil when no rule applies.
func minPatchStop(cat *catalog.Catalog, cur, to *semver.Version, rules []MinPatch) (*semver.Version, string, error) {
	if to.Major() == cur.Major() && to.Minor() == cur.Minor() {
		return nil, "", nil
	}
	r, ok := MinPatchFor(rules, cur)
	if !ok || !cur.LessThan(r.Min) {
		return nil, "", nil
	}
	latest, ok := cat.LatestPatch(cur.Major(), cur.Minor())
	if !ok || latest.LessThan(r.Min) {
		return nil, "", fmt.Errorf("%w from %s: leaving %d.%d needs %s or later (%s), and the %s catalog has no such release",
			ErrNoPath, cur, cur.Major(), cur.Minor(), r.Min, r.Source, cat.Source())
	}
	return latest, fmt.Sprintf("latest patch of %d.%d: %s is below %s, the minimum to leave %d.%d (%s)",
		cur.Major(), cur.Minor(), cur, r.Min, cur.Major(), cur.Minor(), r.Source), nil
}
