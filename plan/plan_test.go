package plan_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
)

func path(p plan.Plan) string {
	var s []string
	for _, v := range p.Versions() {
		s = append(s, v.String())
	}
	return strings.Join(s, " -> ")
}

func TestMake(t *testing.T) {
	tests := []struct {
		name     string
		from, to string
		pre      bool
		want     string
		err      error
	}{
		{"no change", "2.2.4", "2.2.4", false, "2.2.4", nil},
		{"patch", "2.2.4", "2.2.5", false, "2.2.4 -> 2.2.5", nil},
		{"minor", "2.1.4", "2.2.4", false, "2.1.4 -> 2.2.4", nil},
		{"two minors", "2.1.4", "2.3.2", false, "2.1.4 -> 2.2.5 -> 2.3.2", nil},
		{"across a major", "2.1.4", "3.1.2", false, "2.1.4 -> 2.2.5 -> 2.3.2 -> 3.0.1 -> 3.1.2", nil},
		{"from an unlisted patch", "2.3.1", "3.0.0", false, "2.3.1 -> 2.3.2 -> 3.0.0", nil},
		{"latest patch before major", "2.3.0", "3.0.1", false, "2.3.0 -> 2.3.2 -> 3.0.1", nil},
		{"two majors", "1.4.0", "3.0.1", false,
			"1.4.0 -> 1.4.3 -> 2.0.3 -> 2.1.4 -> 2.2.5 -> 2.3.2 -> 3.0.1", nil},
		{"from before the catalog", "0.9.0", "1.4.3", false, "0.9.0 -> 1.4.3", nil},
		// 1.2 and 1.3 were never published: the recommended climb to 1.4.3
		// is impossible, the direct major upgrade is supported.
		{"latest of the major out of reach", "1.1.0", "3.0.1", false, "1.1.0 -> 2.0.3 -> 2.1.4 -> 2.2.5 -> 2.3.2 -> 3.0.1", nil},
		{"pre-release target allowed", "3.0.1", "3.2.0-rc.1", true, "3.0.1 -> 3.1.2 -> 3.2.0-rc.1", nil},
		{"pre-release target refused", "3.0.1", "3.2.0-rc.1", false, "", plan.ErrPrerelease},
		{"downgrade", "3.1.2", "2.3.2", false, "", plan.ErrDowngrade},
		{"unknown target", "2.2.4", "2.2.3", false, "", plan.ErrUnknownTarget},
		{"unknown major on the way", "3.1.2", "5.0.0", false, "", plan.ErrUnknownTarget},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := plan.Make(catalog.Builtin(), policy.MustParse(tc.from), policy.MustParse(tc.to), plan.Options{AllowPrerelease: tc.pre})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := path(p); got != tc.want {
				t.Fatalf("path = %s\nwant   %s", got, tc.want)
			}
			assertHopsSupported(t, catalog.Builtin(), p)
		})
	}
}

func TestMakeMissingMinor(t *testing.T) {
	cat, err := catalog.FromVersions("test", "1.0.0", "1.2.0", "2.0.0")
	if err != nil {
		t.Fatal(err)
	}
	_, err = plan.Make(cat, policy.MustParse("1.0.0"), policy.MustParse("1.2.0"), plan.Options{})
	if !errors.Is(err, plan.ErrNoPath) || !strings.Contains(err.Error(), "1.1") {
		t.Fatalf("err = %v, want ErrNoPath naming 1.1", err)
	}
	cat2, _ := catalog.FromVersions("test", "1.0.0", "3.0.0")
	if _, err := plan.Make(cat2, policy.MustParse("1.0.0"), policy.MustParse("3.0.0"), plan.Options{}); !errors.Is(err, plan.ErrNoPath) {
		t.Fatalf("skipping a missing major: err = %v", err)
	}
}

func TestMigratesFromSchema(t *testing.T) {
	p, err := plan.Make(catalog.Builtin(), policy.MustParse("2.2.5"), policy.MustParse("3.0.1"), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 2.2 → 2.3 keeps schema 4; 2.3 → 3.0 moves 4 → 5.
	if p.Hops[0].Migrates || !p.Hops[1].Migrates || p.Hops[1].ToSchema != 5 {
		t.Fatalf("migrates = %v/%v (schemas %d→%d)", p.Hops[0].Migrates, p.Hops[1].Migrates, p.Hops[1].FromSchema, p.Hops[1].ToSchema)
	}
	// Without schemas, every minor and major hop is assumed to migrate.
	cat, _ := catalog.FromVersions("test", "1.0.0", "1.0.1", "1.1.0")
	p2, _ := plan.Make(cat, policy.MustParse("1.0.0"), policy.MustParse("1.1.0"), plan.Options{})
	if !p2.Hops[0].Migrates {
		t.Fatal("a minor hop without schema data should be assumed to migrate")
	}
}

func assertHopsSupported(t testing.TB, cat *catalog.Catalog, p plan.Plan) {
	t.Helper()
	prev := p.From
	for i, h := range p.Hops {
		if !h.From.Equal(prev) {
			t.Fatalf("hop %d starts at %s, not %s", i, h.From, prev)
		}
		r := policy.Classify(h.From, h.To, policy.Options{Releases: cat, AllowPrerelease: true})
		if !r.Supported() {
			t.Fatalf("hop %s is not supported: %s %+v", h.ID(), r.Kind, r.Findings)
		}
		if i < len(p.Hops)-1 && h.To.Prerelease() != "" {
			t.Fatalf("intermediate stop %s is a pre-release", h.To)
		}
		if h.Reason == "" {
			t.Fatalf("hop %s has no reason", h.ID())
		}
		prev = h.To
	}
	if !prev.Equal(p.To) {
		t.Fatalf("plan ends at %s, not %s", prev, p.To)
	}
}

func FuzzMake(f *testing.F) {
	f.Add(uint8(2), uint8(1), uint8(4), uint8(3), uint8(1), uint8(2))
	f.Add(uint8(1), uint8(4), uint8(0), uint8(3), uint8(0), uint8(1))
	cat := catalog.Builtin()
	f.Fuzz(func(t *testing.T, fM, fm, fp, tM, tm, tp uint8) {
		from := semver.New(uint64(fM%5), uint64(fm%6), uint64(fp%7), "", "")
		to := semver.New(uint64(tM%5), uint64(tm%6), uint64(tp%7), "", "")
		p, err := plan.Make(cat, from, to, plan.Options{})
		if err != nil {
			if to.GreaterThan(from) && cat.Contains(to) && from.Major() >= 1 && from.Major() < to.Major() {
				// Reachable in the built-in catalog whenever FROM's major is known.
				t.Fatalf("plan %s -> %s: %v", from, to, err)
			}
			return
		}
		if to.LessThan(from) {
			t.Fatalf("planned a downgrade %s -> %s", from, to)
		}
		assertHopsSupported(t, cat, p)
		again, _ := plan.Make(cat, from, to, plan.Options{})
		if fmt.Sprint(again.Versions()) != fmt.Sprint(p.Versions()) {
			t.Fatal("plan is not deterministic")
		}
	})
}

// bigCatalog generates n releases: majors of 10 minors of up to 10 patches.
func bigCatalog(b *testing.B, n int) *catalog.Catalog {
	rs := make([]catalog.Release, 0, n)
	for i := 0; len(rs) < n; i++ {
		major, minor, patch := uint64(1+i/100), uint64(i/10%10), uint64(i%10)
		if patch == 3 && minor%2 == 0 {
			continue // gaps
		}
		rs = append(rs, catalog.Release{Version: semver.New(major, minor, patch, "", "")})
	}
	c, err := catalog.New("generated", rs)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkPlan plans across the whole of a 10,000-release catalog: from the
// first release to the last, about 1,100 hops through 100 majors.
func BenchmarkPlan(b *testing.B) {
	cat := bigCatalog(b, 10000)
	from, _ := cat.Oldest()
	to, _ := cat.Latest()
	b.ReportAllocs()
	var hops int
	for b.Loop() {
		p, err := plan.Make(cat, from, to, plan.Options{})
		if err != nil {
			b.Fatal(err)
		}
		hops = len(p.Hops)
	}
	b.ReportMetric(float64(hops), "hops")
}

// BenchmarkPlanTypical plans a 4-hop upgrade over the same large catalog.
func BenchmarkPlanTypical(b *testing.B) {
	cat := bigCatalog(b, 10000)
	from, to := semver.New(50, 1, 4, "", ""), semver.New(51, 2, 9, "", "")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := plan.Make(cat, from, to, plan.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
