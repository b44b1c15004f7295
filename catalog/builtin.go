package catalog

import "github.com/ladder-dev/ladder/policy"

// builtin is the reference registry's release history. Patch lists have
// gaps on purpose (1.4.2, 2.1.2, 2.2.2 were never published), and 3.2.0-rc.1
// is a pre-release. Schema is the registry's data schema: patches share
// their minor's, and a minor whose schema does not change migrates nothing.
var builtin = []struct {
	version string
	schema  int
	notes   string
}{
	{"1.4.0", 1, "first release of the 1.x line"},
	{"1.4.1", 1, ""},
	{"1.4.3", 1, "last release of 1.x"},
	{"2.0.0", 2, "new store layout: repositories keyed by namespace"},
	{"2.0.1", 2, ""},
	{"2.0.3", 2, ""},
	{"2.1.0", 3, "blob↔repository links table, built from manifests"},
	{"2.1.1", 3, ""},
	{"2.1.4", 3, ""},
	{"2.2.0", 4, "tag events: every tag row gains a pushed_at field"},
	{"2.2.1", 4, ""},
	{"2.2.4", 4, ""},
	{"2.2.5", 4, ""},
	{"2.3.0", 4, "web UI refresh; no schema change"},
	{"2.3.2", 4, ""},
	{"3.0.0", 5, "manifests re-keyed by digest"},
	{"3.0.1", 5, ""},
	{"3.1.0", 6, "repository size accounting"},
	{"3.1.2", 6, ""},
	{"3.2.0-rc.1", 7, "pre-release"},
}

var builtinCatalog = func() *Catalog {
	rs := make([]Release, 0, len(builtin))
	for _, b := range builtin {
		rs = append(rs, Release{Version: policy.MustParse(b.version), Schema: b.schema, Notes: b.notes})
	}
	return MustNew("built-in", rs)
}()

// Builtin returns the reference registry's release catalog.
func Builtin() *Catalog { return builtinCatalog }
