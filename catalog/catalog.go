package catalog

import (
	"fmt"
	"slices"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/policy"
)

// Release is one published version.
type Release struct {
	Version *semver.Version
	// Notes is free text shown next to the release (may be empty).
	Notes string
	// Schema is the data schema version the release works with; 0 means the
	// catalog does not say. Releases of one minor share their schema.
	Schema int
}

// Catalog is a sorted, de-duplicated, indexed set of releases.
type Catalog struct {
	source   string
	releases []Release
	// byMinor maps major → minor → the GA releases of that minor, ascending.
	byMinor map[uint64]map[uint64][]*semver.Version
	// minors maps major → the minors that have at least one GA release, ascending.
	minors map[uint64][]uint64
	// schemas maps major.minor → the schema its releases record.
	schemas map[[2]uint64]int
	// index maps a version's precedence key to its position in releases.
	index map[versionKey]int
}

// versionKey identifies a version up to precedence (build metadata ignored).
type versionKey struct {
	major, minor, patch uint64
	pre                 string
}

func keyOf(v *semver.Version) versionKey {
	return versionKey{v.Major(), v.Minor(), v.Patch(), v.Prerelease()}
}

// New builds a catalog from releases in any order. Duplicates (equal
// precedence, so 1.0.0 and 1.0.0+build are the same release) are an error
// that names both entries.
func New(source string, releases []Release) (*Catalog, error) {
	rs := slices.Clone(releases)
	for i, r := range rs {
		if r.Version == nil {
			return nil, fmt.Errorf("%w: %s: entry %d has no version", ErrInvalid, source, i+1)
		}
	}
	slices.SortStableFunc(rs, func(a, b Release) int { return a.Version.Compare(b.Version) })
	for i := 1; i < len(rs); i++ {
		if rs[i-1].Version.Equal(rs[i].Version) {
			return nil, fmt.Errorf("%w: %s: release %s is listed twice (as %q and %q)",
				ErrInvalid, source, rs[i].Version, rs[i-1].Version.Original(), rs[i].Version.Original())
		}
	}
	c := &Catalog{
		source:   source,
		releases: rs,
		byMinor:  map[uint64]map[uint64][]*semver.Version{},
		minors:   map[uint64][]uint64{},
		schemas:  map[[2]uint64]int{},
		index:    make(map[versionKey]int, len(rs)),
	}
	for i, r := range rs {
		v := r.Version
		c.index[keyOf(v)] = i
		if key := [2]uint64{v.Major(), v.Minor()}; r.Schema != 0 && c.schemas[key] == 0 {
			c.schemas[key] = r.Schema
		}
		if v.Prerelease() != "" {
			continue
		}
		mm, ok := c.byMinor[v.Major()]
		if !ok {
			mm = map[uint64][]*semver.Version{}
			c.byMinor[v.Major()] = mm
		}
		if _, seen := mm[v.Minor()]; !seen {
			c.minors[v.Major()] = append(c.minors[v.Major()], v.Minor())
		}
		mm[v.Minor()] = append(mm[v.Minor()], v)
	}
	return c, nil
}

// MustNew is New for hard-coded lists; it panics on error.
func MustNew(source string, releases []Release) *Catalog {
	c, err := New(source, releases)
	if err != nil {
		panic(err)
	}
	return c
}

// FromVersions builds a catalog from version strings, parsed strictly.
func FromVersions(source string, versions ...string) (*Catalog, error) {
	rs := make([]Release, 0, len(versions))
	for i, s := range versions {
		v, err := policy.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: entry %d: %w", ErrInvalid, source, i+1, err)
		}
		rs = append(rs, Release{Version: v})
	}
	return New(source, rs)
}

// Source says where the catalog came from ("built-in" or a file path).
func (c *Catalog) Source() string { return c.source }

// Releases returns every release, ascending. The slice is a copy.
func (c *Catalog) Releases() []Release { return slices.Clone(c.releases) }

// Len is the number of releases, pre-releases included.
func (c *Catalog) Len() int { return len(c.releases) }

// Find returns the release with v's precedence.
func (c *Catalog) Find(v *semver.Version) (Release, bool) {
	i, ok := c.index[keyOf(v)]
	if !ok {
		return Release{}, false
	}
	return c.releases[i], true
}

// Contains reports whether v is a release of the catalog.
func (c *Catalog) Contains(v *semver.Version) bool {
	_, ok := c.Find(v)
	return ok
}

// LatestPatch returns the newest GA release of major.minor.
func (c *Catalog) LatestPatch(major, minor uint64) (*semver.Version, bool) {
	vs := c.byMinor[major][minor]
	if len(vs) == 0 {
		return nil, false
	}
	return vs[len(vs)-1], true
}

// EarliestMinor returns the lowest minor with a GA release in major.
func (c *Catalog) EarliestMinor(major uint64) (uint64, bool) {
	ms := c.minors[major]
	if len(ms) == 0 {
		return 0, false
	}
	return ms[0], true
}

// LatestInMajor returns the newest GA release of major.
func (c *Catalog) LatestInMajor(major uint64) (*semver.Version, bool) {
	ms := c.minors[major]
	if len(ms) == 0 {
		return nil, false
	}
	return c.LatestPatch(major, ms[len(ms)-1])
}

// Latest returns the newest GA release of the whole catalog.
func (c *Catalog) Latest() (*semver.Version, bool) {
	for i := len(c.releases) - 1; i >= 0; i-- {
		if v := c.releases[i].Version; v.Prerelease() == "" {
			return v, true
		}
	}
	return nil, false
}

// Oldest returns the oldest GA release of the whole catalog.
func (c *Catalog) Oldest() (*semver.Version, bool) {
	for _, r := range c.releases {
		if r.Version.Prerelease() == "" {
			return r.Version, true
		}
	}
	return nil, false
}

// SchemaOf returns the schema version recorded for v's release, or for its
// minor when v itself is not listed (patches share their minor's schema).
func (c *Catalog) SchemaOf(v *semver.Version) (int, bool) {
	if r, ok := c.Find(v); ok && r.Schema != 0 {
		return r.Schema, true
	}
	s, ok := c.schemas[[2]uint64{v.Major(), v.Minor()}]
	return s, ok
}

// EarliestMinorFunc adapts the catalog to policy.Options.EarliestMinor.
func (c *Catalog) EarliestMinorFunc() func(major uint64) (uint64, bool) {
	return c.EarliestMinor
}
