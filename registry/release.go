package registry

import (
	"fmt"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/policy"
)

// StampedRelease is the release a registry binary or image was built as,
// set at link time with
// -ldflags "-X github.com/ladder-dev/ladder/registry.StampedRelease=2.2.4".
// Empty in development builds: then the release must be given explicitly.
var StampedRelease = ""

// SchemaOf returns the schema version release knows, from the built-in
// catalog. The release must be a release of that catalog.
func SchemaOf(release string) (int, error) {
	v, err := policy.Parse(release)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnknownRelease, err)
	}
	if !catalog.Builtin().Contains(v) {
		return 0, fmt.Errorf("%w: %s is not a registry release (see `ladder catalog`)", ErrUnknownRelease, release)
	}
	s, ok := catalog.Builtin().SchemaOf(v)
	if !ok {
		return 0, fmt.Errorf("%w: release %s has no schema version", ErrUnknownRelease, release)
	}
	return s, nil
}

// LatestSchema is the newest schema any built-in release knows.
func LatestSchema() int {
	latest := 0
	for _, r := range catalog.Builtin().Releases() {
		latest = max(latest, r.Schema)
	}
	return latest
}

// releaseFor returns the earliest release that knows schema, preferring
// generally available releases over pre-releases ("" if none).
func releaseFor(schema int) string {
	pre := ""
	for _, r := range catalog.Builtin().Releases() {
		if r.Schema < schema {
			continue
		}
		if r.Version.Prerelease() == "" {
			return r.Version.String()
		}
		if pre == "" {
			pre = r.Version.String()
		}
	}
	return pre
}
