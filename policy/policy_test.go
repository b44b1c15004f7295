package policy_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/policy"
)

// TestSeedTable is the seed's support table, row by row, with concrete versions.
func TestSeedTable(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string
		kind      policy.Kind
		supported bool
	}{
		{"patch upgrade x.y.0 -> x.y.1", "2.2.0", "2.2.1", policy.PatchUpgrade, true},
		{"skip patch version x.y.0 -> x.y.2", "2.2.0", "2.2.2", policy.SkipPatch, true},
		{"patch downgrade x.y.2 -> x.y.1", "2.2.2", "2.2.1", policy.PatchDowngrade, false},
		{"minor upgrade x.y.* -> x.y+1.*", "2.1.4", "2.2.5", policy.MinorUpgrade, true},
		{"skip minor version x.y.* -> x.y+2.*", "2.1.4", "2.3.0", policy.SkipMinor, false},
		{"minor downgrade x.y.* -> x.y-1.*", "2.2.0", "2.1.4", policy.MinorDowngrade, false},
		{"skip major version x.*.* -> x+2.*.*", "1.4.3", "3.0.0", policy.SkipMajor, false},
		{"major downgrade x.*.* -> x-1.*.*", "3.0.0", "2.3.2", policy.MajorDowngrade, false},
		{"major upgrade x.y.z -> x+1.0.0", "2.3.2", "3.0.0", policy.MajorUpgrade, true},
		{"major upgrade skipping minor x.y.z -> x+1.y+1.z", "2.3.2", "3.1.0", policy.MajorUpgradeSkippingMinor, false},
		{"no change", "2.2.4", "2.2.4", policy.NoChange, true},
		// The seed's tested scenarios.
		{"seed: DTR 2.1.4 to 2.2.4", "2.1.4", "2.2.4", policy.MinorUpgrade, true},
		{"seed: DTR 2.2.4 to 2.2.5", "2.2.4", "2.2.5", policy.PatchUpgrade, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := policy.Classify(policy.MustParse(tc.from), policy.MustParse(tc.to), policy.Options{})
			if r.Kind != tc.kind {
				t.Errorf("kind = %s, want %s", r.Kind, tc.kind)
			}
			if r.Supported() != tc.supported {
				t.Errorf("supported = %v, want %v (findings %+v)", r.Supported(), tc.supported, r.Findings)
			}
			if r.Kind.Supported() != tc.supported {
				t.Errorf("%s.Supported() = %v, want %v", r.Kind, r.Kind.Supported(), tc.supported)
			}
		})
	}
}

func TestClassifyEdgeCases(t *testing.T) {
	cat := catalog.Builtin()
	tests := []struct {
		name     string
		from, to string
		opts     policy.Options
		kind     policy.Kind
		support  bool
		checks   []policy.Check // every finding's check, in order
		mand     []bool         // mandatory flags matching checks
	}{
		{"pre-release to its GA is a patch upgrade", "3.2.0-rc.1", "3.2.0", policy.Options{}, policy.PatchUpgrade, true,
			[]policy.Check{policy.CheckPrereleaseSource}, []bool{false}},
		{"GA to its own pre-release is a downgrade", "2.2.0", "2.2.0-rc.1", policy.Options{AllowPrerelease: true}, policy.PatchDowngrade, false,
			[]policy.Check{policy.CheckDowngrade}, []bool{true}},
		{"pre-release target needs opt-in", "3.1.2", "3.2.0-rc.1", policy.Options{Releases: cat}, policy.MinorUpgrade, false,
			[]policy.Check{policy.CheckPrereleaseTarget}, []bool{true}},
		{"pre-release target with opt-in", "3.1.2", "3.2.0-rc.1", policy.Options{Releases: cat, AllowPrerelease: true}, policy.MinorUpgrade, true,
			nil, nil},
		{"build metadata is ignored for precedence", "2.2.4+build.1", "2.2.4+build.2", policy.Options{}, policy.NoChange, true, nil, nil},
		{"v prefix", "v2.2.4", "v2.2.5", policy.Options{}, policy.PatchUpgrade, true, nil, nil},
		{"very large numbers", "18446744073709551614.0.0", "18446744073709551615.0.0", policy.Options{}, policy.MajorUpgrade, true, nil, nil},
		{"very large minor skip", "1.0.0", "1.18446744073709551615.0", policy.Options{}, policy.SkipMinor, false,
			[]policy.Check{policy.CheckSkipMinor}, []bool{true}},
		{"major without latest first warns", "2.2.5", "3.0.1", policy.Options{Releases: cat}, policy.MajorUpgrade, true,
			[]policy.Check{policy.CheckLatestBeforeMajr}, []bool{false}},
		{"major from latest is clean", "2.3.2", "3.0.1", policy.Options{Releases: cat}, policy.MajorUpgrade, true, nil, nil},
		{"earliest minor comes from the catalog", "0.9.0", "1.4.0", policy.Options{Releases: cat}, policy.MajorUpgrade, true, nil, nil},
		{"without a catalog the earliest minor is 0", "0.9.0", "1.4.0", policy.Options{}, policy.MajorUpgradeSkippingMinor, false,
			[]policy.Check{policy.CheckEarliestMinor}, []bool{true}},
		{"target unknown to the catalog warns", "2.2.4", "2.2.3", policy.Options{Releases: cat}, policy.PatchDowngrade, false,
			[]policy.Check{policy.CheckDowngrade, policy.CheckUnknownRelease}, []bool{true, false}},
		{"unknown patch target", "2.2.4", "2.2.9", policy.Options{Releases: cat}, policy.SkipPatch, true,
			[]policy.Check{policy.CheckUnknownRelease}, []bool{false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := policy.Classify(policy.MustParse(tc.from), policy.MustParse(tc.to), tc.opts)
			if r.Kind != tc.kind {
				t.Errorf("kind = %s, want %s", r.Kind, tc.kind)
			}
			if r.Supported() != tc.support {
				t.Errorf("supported = %v, want %v", r.Supported(), tc.support)
			}
			var checks []policy.Check
			var mand []bool
			for _, f := range r.Findings {
				checks = append(checks, f.Check)
				mand = append(mand, f.Mandatory)
				if f.Message == "" {
					t.Errorf("finding %s has no message", f.Check)
				}
			}
			if fmt.Sprint(checks) != fmt.Sprint(tc.checks) || fmt.Sprint(mand) != fmt.Sprint(tc.mand) {
				t.Errorf("findings = %v %v, want %v %v", checks, mand, tc.checks, tc.mand)
			}
		})
	}
}

func TestBlocking(t *testing.T) {
	r := policy.Classify(policy.MustParse("3.2.0-rc.1"), policy.MustParse("3.1.0"), policy.Options{})
	if len(r.Blocking(true)) != 1 || !r.Blocking(true)[0].Mandatory {
		t.Fatalf("force must not waive the downgrade: %+v", r.Blocking(true))
	}
	w := policy.Classify(policy.MustParse("2.2.5"), policy.MustParse("3.0.1"), policy.Options{Releases: catalog.Builtin()})
	if !w.Supported() || len(w.Blocking(false)) != 1 || len(w.Blocking(true)) != 0 {
		t.Fatalf("a skippable finding blocks without --force only: %+v", w.Findings)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    string // normalized, when valid
		errPart string // part of the message, when invalid
	}{
		{"2.2.4", "2.2.4", ""},
		{"v2.2.4", "2.2.4", ""},
		{"3.2.0-rc.1", "3.2.0-rc.1", ""},
		{"1.0.0-alpha.beta+exp.sha.5114f85", "1.0.0-alpha.beta+exp.sha.5114f85", ""},
		{"18446744073709551615.0.0", "18446744073709551615.0.0", ""},
		{"", "", "empty"},
		{"   ", "", "white space"},
		{" 2.2.4", "", "white space"},
		{"2.2.4\n", "", "white space"},
		{"2.2", "", "expected all three"},
		{"2", "", "expected all three"},
		{"2.2.4.1", "", "4 numeric parts"},
		{"latest", "", "a name, not a version"},
		{"02.1.0", "", "leading zero"},
		{"2.01.0", "", "write 2.1.0"},
		{"1.0.0-01", "", "expected MAJOR.MINOR.PATCH"},
		{"V2.2.4", "", "expected MAJOR.MINOR.PATCH"},
		{"vv2.2.4", "", "expected MAJOR.MINOR.PATCH"},
		{"2.2.4-", "", "expected MAJOR.MINOR.PATCH"},
		{"18446744073709551616.0.0", "", "expected MAJOR.MINOR.PATCH"},
		{"=2.2.4", "", "expected MAJOR.MINOR.PATCH"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			v, err := policy.Parse(tc.in)
			if tc.errPart == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if v.String() != tc.want {
					t.Fatalf("got %s, want %s", v, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want an error", tc.in, v)
			}
			if !errors.Is(err, policy.ErrInvalidVersion) {
				t.Errorf("error %v is not ErrInvalidVersion", err)
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("error %q does not say %q", err, tc.errPart)
			}
		})
	}
}

// checkOne asserts the invariants every classification keeps.
func checkOne(t *testing.T, from, to *semver.Version, opts policy.Options) {
	t.Helper()
	r := policy.Classify(from, to, opts)
	n := 0
	for _, k := range policy.Kinds {
		if r.Kind == k {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%s -> %s: kind %q is not exactly one known kind", from, to, r.Kind)
	}
	if to.LessThan(from) && (r.Supported() || !r.Kind.Downgrade()) {
		t.Fatalf("%s -> %s: a downgrade classified %s, supported=%v", from, to, r.Kind, r.Supported())
	}
	if r.Kind.Downgrade() && !to.LessThan(from) {
		t.Fatalf("%s -> %s: not older but classified %s", from, to, r.Kind)
	}
	if (r.Kind == policy.NoChange) != to.Equal(from) {
		t.Fatalf("%s -> %s: no-change mismatch (%s)", from, to, r.Kind)
	}
}

func FuzzClassify(f *testing.F) {
	f.Add("2.2.0", "2.2.1")
	f.Add("v1.4.3", "3.0.0")
	f.Add("3.2.0-rc.1", "3.2.0")
	f.Add("2.2.4+b", "2.2.4")
	f.Add("02.1.0", "latest")
	f.Fuzz(func(t *testing.T, a, b string) {
		from, errA := policy.Parse(a)
		to, errB := policy.Parse(b)
		if errA != nil || errB != nil {
			for _, err := range []error{errA, errB} {
				if err != nil && !errors.Is(err, policy.ErrInvalidVersion) {
					t.Fatalf("parse error not ErrInvalidVersion: %v", err)
				}
			}
			return
		}
		// Parsing its own output gives the same version.
		if again, err := policy.Parse(from.String()); err != nil || !again.Equal(from) {
			t.Fatalf("round trip of %q: %v %v", from, again, err)
		}
		checkOne(t, from, to, policy.Options{})
		checkOne(t, from, to, policy.Options{Releases: catalog.Builtin(), AllowPrerelease: true})
	})
}
