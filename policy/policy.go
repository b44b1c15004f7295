package policy

import (
	"fmt"

	"github.com/Masterminds/semver/v3"
)

// Kind classifies a transition FROM → TO. Every pair of valid versions has
// exactly one.
type Kind string

// The kinds: the rows of the seed's support table, plus NoChange.
const (
	NoChange                  Kind = "no-change"
	PatchUpgrade              Kind = "patch-upgrade"
	SkipPatch                 Kind = "skip-patch"
	PatchDowngrade            Kind = "patch-downgrade"
	MinorUpgrade              Kind = "minor-upgrade"
	SkipMinor                 Kind = "skip-minor"
	MinorDowngrade            Kind = "minor-downgrade"
	MajorUpgrade              Kind = "major-upgrade"
	MajorUpgradeSkippingMinor Kind = "major-upgrade-skipping-minor"
	SkipMajor                 Kind = "skip-major"
	MajorDowngrade            Kind = "major-downgrade"
)

// Kinds lists every kind in the order of the support table.
var Kinds = []Kind{NoChange, PatchUpgrade, SkipPatch, PatchDowngrade, MinorUpgrade, SkipMinor,
	MinorDowngrade, MajorUpgrade, MajorUpgradeSkippingMinor, SkipMajor, MajorDowngrade}

// Supported reports whether the seed's table allows the kind.
func (k Kind) Supported() bool {
	switch k {
	case NoChange, PatchUpgrade, SkipPatch, MinorUpgrade, MajorUpgrade:
		return true
	}
	return false
}

// Migrates reports whether a transition of this kind may migrate data.
// Patch transitions never do.
func (k Kind) Migrates() bool { return k == MinorUpgrade || k == MajorUpgrade }

// Downgrade reports whether the kind goes backwards.
func (k Kind) Downgrade() bool {
	return k == PatchDowngrade || k == MinorDowngrade || k == MajorDowngrade
}

// Check names a finding; the names are stable and appear in JSON output.
type Check string

// The checks Classify can report.
const (
	CheckDowngrade        Check = "downgrade"
	CheckSkipMinor        Check = "skip-minor"
	CheckSkipMajor        Check = "skip-major"
	CheckEarliestMinor    Check = "earliest-minor"
	CheckPrereleaseTarget Check = "prerelease-target"
	CheckPrereleaseSource Check = "prerelease-source"
	CheckLatestBeforeMajr Check = "latest-before-major"
	CheckUnknownRelease   Check = "unknown-release"
)

// Finding is one observation about a transition.
type Finding struct {
	Check Check `json:"check"`
	// Mandatory findings cannot be waived; skippable ones yield to --force.
	Mandatory bool   `json:"mandatory"`
	Message   string `json:"message"`
	// Hint says what to do about it (may be empty).
	Hint string `json:"hint,omitempty"`
}

// Releases is what policy needs to know about published releases.
// catalog.Catalog implements it.
type Releases interface {
	// EarliestMinor returns the lowest minor with a GA release in major.
	EarliestMinor(major uint64) (uint64, bool)
	// LatestInMajor returns the newest GA release of major.
	LatestInMajor(major uint64) (*semver.Version, bool)
	// Contains reports whether v is a published release.
	Contains(v *semver.Version) bool
}

// Options tune Classify.
type Options struct {
	// Releases, when set, supplies the earliest available minor of a major
	// and the latest release of the source's major. Without it the earliest
	// minor is 0 and no latest-release recommendation is made.
	Releases Releases
	// AllowPrerelease permits a pre-release target.
	AllowPrerelease bool
}

// Result is the verdict on one transition.
type Result struct {
	From     *semver.Version
	To       *semver.Version
	Kind     Kind
	Findings []Finding
}

// Supported reports whether the transition may go ahead: its kind is
// supported and no mandatory finding stands against it. Skippable findings
// do not count here; see Blocking.
func (r Result) Supported() bool {
	if !r.Kind.Supported() {
		return false
	}
	for _, f := range r.Findings {
		if f.Mandatory {
			return false
		}
	}
	return true
}

// Blocking returns the findings that stop the transition: every mandatory
// one, and the skippable ones unless force is set.
func (r Result) Blocking(force bool) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Mandatory || !force {
			out = append(out, f)
		}
	}
	return out
}

// Classify decides the kind of FROM → TO and collects its findings.
func Classify(from, to *semver.Version, opts Options) Result {
	r := Result{From: from, To: to, Kind: KindOf(from, to, opts.Releases)}
	add := func(c Check, mandatory bool, hint, format string, args ...any) {
		r.Findings = append(r.Findings, Finding{Check: c, Mandatory: mandatory, Message: fmt.Sprintf(format, args...), Hint: hint})
	}
	switch r.Kind {
	case PatchDowngrade, MinorDowngrade, MajorDowngrade:
		add(CheckDowngrade, true, "", "%s is older than %s: downgrades are never supported", to, from)
	case SkipMinor:
		add(CheckSkipMinor, true, "ladder plan "+from.String()+" "+to.String()+" shows the supported path",
			"%s skips minor versions after %d.%d: minors must be upgraded one at a time", to, from.Major(), from.Minor())
	case SkipMajor:
		add(CheckSkipMajor, true, "ladder plan "+from.String()+" "+to.String()+" shows the supported path",
			"%s skips major versions after %d.x: majors must be upgraded one at a time", to, from.Major())
	case MajorUpgradeSkippingMinor:
		e := earliestMinor(opts.Releases, to.Major())
		add(CheckEarliestMinor, true, "ladder plan "+from.String()+" "+to.String()+" shows the supported path",
			"a major upgrade must land on the earliest minor of %d.x, which is %d.%d, not %d.%d",
			to.Major(), to.Major(), e, to.Major(), to.Minor())
	}
	if r.Kind == NoChange {
		return r
	}
	if to.Prerelease() != "" && !opts.AllowPrerelease {
		add(CheckPrereleaseTarget, true, "pass --allow-prerelease to target it anyway",
			"%s is a pre-release: it carries no upgrade guarantee", to)
	}
	if from.Prerelease() != "" && !r.Kind.Downgrade() {
		add(CheckPrereleaseSource, false, "pass --force to go ahead",
			"%s is a pre-release: upgrades from it are not tested", from)
	}
	if r.Kind == MajorUpgrade && opts.Releases != nil {
		if latest, ok := opts.Releases.LatestInMajor(from.Major()); ok && from.LessThan(latest) {
			add(CheckLatestBeforeMajr, false, "upgrade to "+latest.String()+" first, or pass --force",
				"%s is not the latest release of %d.x (%s): upgrading to it before a major upgrade is strongly recommended",
				from, from.Major(), latest)
		}
	}
	if opts.Releases != nil && !opts.Releases.Contains(to) {
		add(CheckUnknownRelease, false, "check the version, or pass --catalog with a catalog that lists it",
			"%s is not a release in the catalog", to)
	}
	return r
}

// KindOf applies the seed's table: the kind of FROM → TO, without
// findings. rel may be nil (the earliest minor of a major is then 0).
// Comparisons are written so that no arithmetic can overflow on very large
// version numbers.
func KindOf(from, to *semver.Version, rel Releases) Kind {
	switch {
	case to.Major() < from.Major():
		return MajorDowngrade
	case to.Major() > from.Major():
		if to.Major()-from.Major() > 1 {
			return SkipMajor
		}
		if to.Minor() > earliestMinor(rel, to.Major()) {
			return MajorUpgradeSkippingMinor
		}
		return MajorUpgrade
	case to.Minor() < from.Minor():
		return MinorDowngrade
	case to.Minor() > from.Minor():
		if to.Minor()-from.Minor() > 1 {
			return SkipMinor
		}
		return MinorUpgrade
	}
	switch c := to.Compare(from); {
	case c == 0:
		return NoChange
	case c < 0:
		return PatchDowngrade
	case to.Patch()-from.Patch() > 1:
		return SkipPatch
	default:
		// Next patch, or the same numbers with a later pre-release
		// (2.2.0-rc.1 → 2.2.0).
		return PatchUpgrade
	}
}

func earliestMinor(rel Releases, major uint64) uint64 {
	if rel != nil {
		if m, ok := rel.EarliestMinor(major); ok {
			return m
		}
	}
	return 0
}
