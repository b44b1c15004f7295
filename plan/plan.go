package plan

import (
	"fmt"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/policy"
)

// Hop is one supported transition of a plan.
type Hop struct {
	From *semver.Version
	To   *semver.Version
	Kind policy.Kind
	// Migrates reports whether the hop changes the data schema. When the
	// catalog records schemas it is exact; otherwise every minor and major
	// hop is assumed to migrate.
	Migrates bool
	// FromSchema and ToSchema are the schemas on either side (0: unknown).
	FromSchema, ToSchema int
	// Reason says why the hop stops where it does.
	Reason string
}

// ID is the hop's stable name in journals, logs and errors: "2.1.4->2.2.5".
func (h Hop) ID() string { return h.From.String() + "->" + h.To.String() }

// Plan is the chain of hops from From to To. No hops means no change.
type Plan struct {
	From *semver.Version
	To   *semver.Version
	Hops []Hop
}

// Versions returns the stops of the plan, From first.
func (p Plan) Versions() []*semver.Version {
	vs := []*semver.Version{p.From}
	for _, h := range p.Hops {
		vs = append(vs, h.To)
	}
	return vs
}

// Options tune Make.
type Options struct {
	// AllowPrerelease permits a pre-release target (never an intermediate stop).
	AllowPrerelease bool
	// MinPatch are the service's minimum-patch rules (see MinPatch).
	MinPatch []MinPatch
}

// Make returns the shortest supported chain of hops from → to over cat.
// The source need not be in the catalog (a cluster may run a release that
// was withdrawn); the target must be.
func Make(cat *catalog.Catalog, from, to *semver.Version, opts Options) (Plan, error) {
	p := Plan{From: from, To: to}
	if !cat.Contains(to) {
		return p, fmt.Errorf("%w: %s is not a release in the %s catalog", ErrUnknownTarget, to, cat.Source())
	}
	if to.Prerelease() != "" && !opts.AllowPrerelease {
		return p, fmt.Errorf("%w: %s is a pre-release: pass --allow-prerelease to target it", ErrPrerelease, to)
	}
	switch c := to.Compare(from); {
	case c == 0:
		return p, nil
	case c < 0:
		return p, fmt.Errorf("%w: %s is older than %s", ErrDowngrade, to, from)
	}
	cur := from
	for !cur.Equal(to) {
		next, reason, err := minPatchStop(cat, cur, to, opts.MinPatch)
		if next == nil && err == nil {
			next, reason, err = nextStop(cat, cur, to)
		}
		if err != nil {
			return p, err
		}
		p.Hops = append(p.Hops, newHop(cat, cur, next, reason))
		cur = next
	}
	return p, nil
}

// nextStop picks the stop after cur on the way to to (to > cur).
func nextStop(cat *catalog.Catalog, cur, to *semver.Version) (*semver.Version, string, error) {
	if cur.Major() == to.Major() {
		if to.Minor()-cur.Minor() <= 1 {
			return to, "target", nil
		}
		return latestPatch(cat, cur.Major(), cur.Minor()+1,
			fmt.Sprintf("latest patch of %d.%d: minor versions cannot be skipped", cur.Major(), cur.Minor()+1))
	}
	// A major hop is ahead. First reach the latest release of this major.
	unreachable := ""
	latest, ok := cat.LatestInMajor(cur.Major())
	if ok && cur.LessThan(latest) {
		if cur.Minor() == latest.Minor() {
			return latest, fmt.Sprintf("latest release of %d.x, recommended before a major upgrade", cur.Major()), nil
		}
		if latest.Minor()-cur.Minor() == 1 {
			return latest, fmt.Sprintf("latest release of %d.x (minor %d.%d), recommended before a major upgrade",
				cur.Major(), latest.Major(), latest.Minor()), nil
		}
		if v, reason, err := latestPatch(cat, cur.Major(), cur.Minor()+1,
			fmt.Sprintf("latest patch of %d.%d: minor versions cannot be skipped on the way to the latest %d.x",
				cur.Major(), cur.Minor()+1, cur.Major())); err == nil {
			return v, reason, nil
		}
		// The recommended climb to the latest release of this major is
		// impossible (the catalog lacks a minor on the way); the major
		// hop from here is still supported.
		unreachable = fmt.Sprintf("; %s, the latest %d.x, cannot be reached: the catalog has no %d.%d",
			latest, cur.Major(), cur.Major(), cur.Minor()+1)
	}
	next := cur.Major() + 1
	earliest, ok := cat.EarliestMinor(next)
	if !ok {
		return nil, "", fmt.Errorf("%w from %s to %s: the catalog has no GA release of %d.x, and majors cannot be skipped",
			ErrNoPath, cur, to, next)
	}
	if to.Major() == next && to.Minor() == earliest {
		return to, "target" + unreachable, nil
	}
	return latestPatch(cat, next, earliest,
		fmt.Sprintf("latest patch of %d.%d: a major upgrade lands on the earliest minor of %d.x%s", next, earliest, next, unreachable))
}

func latestPatch(cat *catalog.Catalog, major, minor uint64, reason string) (*semver.Version, string, error) {
	v, ok := cat.LatestPatch(major, minor)
	if !ok {
		return nil, "", fmt.Errorf("%w: the catalog has no GA release of %d.%d, and minor versions cannot be skipped",
			ErrNoPath, major, minor)
	}
	return v, reason, nil
}

func newHop(cat *catalog.Catalog, from, to *semver.Version, reason string) Hop {
	h := Hop{From: from, To: to, Reason: reason}
	h.Kind = policy.KindOf(from, to, cat)
	fs, fok := cat.SchemaOf(from)
	ts, tok := cat.SchemaOf(to)
	if fok && tok {
		h.FromSchema, h.ToSchema = fs, ts
		h.Migrates = fs != ts
	} else {
		h.Migrates = h.Kind.Migrates()
	}
	return h
}
