package catalog_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/policy"
)

// TestBuiltinInvariants: sorted, unique, valid, every adjacent minor
// reachable, schemas monotonic and shared within a minor.
func TestBuiltinInvariants(t *testing.T) {
	rs := catalog.Builtin().Releases()
	if len(rs) < 15 {
		t.Fatalf("built-in catalog has only %d releases", len(rs))
	}
	for i, r := range rs {
		if _, err := policy.Parse(r.Version.Original()); err != nil {
			t.Errorf("release %d: %v", i, err)
		}
		if r.Schema <= 0 {
			t.Errorf("release %s has no schema", r.Version)
		}
		if i == 0 {
			continue
		}
		prev := rs[i-1]
		if !prev.Version.LessThan(r.Version) {
			t.Errorf("releases not strictly ascending: %s then %s", prev.Version, r.Version)
		}
		if r.Schema < prev.Schema {
			t.Errorf("schema goes down from %s (%d) to %s (%d)", prev.Version, prev.Schema, r.Version, r.Schema)
		}
		sameMinor := prev.Version.Major() == r.Version.Major() && prev.Version.Minor() == r.Version.Minor()
		if sameMinor && prev.Schema != r.Schema && r.Version.Prerelease() == "" {
			t.Errorf("patches of %d.%d do not share a schema", r.Version.Major(), r.Version.Minor())
		}
		if prev.Version.Prerelease() != "" || r.Version.Prerelease() != "" || sameMinor {
			continue
		}
		// Adjacent minors: the step between them is a supported hop.
		res := policy.Classify(prev.Version, r.Version, policy.Options{Releases: catalog.Builtin()})
		if !res.Supported() {
			t.Errorf("adjacent minors %s -> %s not reachable: %s %+v", prev.Version, r.Version, res.Kind, res.Findings)
		}
	}
	has := func(s string) bool { return catalog.Builtin().Contains(policy.MustParse(s)) }
	for _, must := range []string{"1.4.3", "2.1.4", "2.2.4", "2.2.5", "2.3.2", "3.0.0", "3.1.2", "3.2.0-rc.1"} {
		if !has(must) {
			t.Errorf("built-in catalog lacks %s", must)
		}
	}
	if has("2.2.2") {
		t.Error("the built-in catalog should have a gap at 2.2.2")
	}
}

func TestLookups(t *testing.T) {
	c := catalog.Builtin()
	if v, _ := c.LatestPatch(2, 2); v.String() != "2.2.5" {
		t.Errorf("LatestPatch(2,2) = %s", v)
	}
	if m, _ := c.EarliestMinor(1); m != 4 {
		t.Errorf("EarliestMinor(1) = %d, want 4", m)
	}
	if v, _ := c.LatestInMajor(3); v.String() != "3.1.2" {
		t.Errorf("LatestInMajor(3) = %s (pre-releases must not count)", v)
	}
	if v, _ := c.Latest(); v.String() != "3.1.2" {
		t.Errorf("Latest = %s", v)
	}
	if s, _ := c.SchemaOf(policy.MustParse("2.2.3")); s != 4 {
		t.Errorf("SchemaOf(2.2.3) = %d, want its minor's 4", s)
	}
	if _, ok := c.LatestPatch(4, 0); ok {
		t.Error("LatestPatch(4,0) found something")
	}
}

func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		data    string
		want    []string
		errPart string
	}{
		{"yaml strings", "c.yaml", "releases:\n  - 1.0.0\n  - v1.1.0\n  - 1.0.1\n", []string{"1.0.0", "1.0.1", "1.1.0"}, ""},
		{"yaml objects", "c.yml", "releases:\n  - version: 2.0.0\n    notes: first\n    schema: 3\n  - 2.0.1\n", []string{"2.0.0", "2.0.1"}, ""},
		{"json", "c.json", `{"releases": ["1.0.0", {"version": "1.1.0", "notes": "x"}]}`, []string{"1.0.0", "1.1.0"}, ""},
		{"json without extension", "c", `{"releases": ["1.0.0"]}`, []string{"1.0.0"}, ""},
		{"invalid entry named", "c.yaml", "releases:\n  - 1.0.0\n  - 2.2\n", nil, `releases[1]: invalid version "2.2"`},
		{"duplicate named", "c.yaml", "releases:\n  - 1.0.0\n  - v1.0.0\n", nil, `release 1.0.0 is listed twice`},
		{"duplicate by precedence", "c.yaml", "releases:\n  - 1.0.0+a\n  - 1.0.0+b\n", nil, `listed twice`},
		{"empty", "c.yaml", "releases: []\n", nil, "no releases"},
		{"wrong key", "c.yaml", "versions:\n  - 1.0.0\n", nil, "versions"},
		{"not yaml", "c.yaml", "releases: [1.0.0\n", nil, "c.yaml"},
		{"negative schema", "c.yaml", "releases:\n  - version: 1.0.0\n    schema: -1\n", nil, "schema must be"},
		{"unknown field", "c.json", `{"releases": [{"version": "1.0.0", "note": "x"}]}`, nil, "note"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), tc.file)
			if err := os.WriteFile(p, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := catalog.Load(p)
			if tc.errPart != "" {
				if err == nil {
					t.Fatalf("want an error containing %q", tc.errPart)
				}
				if !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("error %q: want ErrInvalid containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range c.Releases() {
				got = append(got, r.Version.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("releases = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := catalog.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("releases:\n  - 1.0.0\n  - version: 1.1.0\n"))
	f.Add([]byte(`{"releases": ["1.0.0"]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := catalog.Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		rs := c.Releases()
		for i := 1; i < len(rs); i++ {
			if !rs[i-1].Version.LessThan(rs[i].Version) {
				t.Fatalf("not strictly sorted: %s, %s", rs[i-1].Version, rs[i].Version)
			}
		}
	})
}
