package plan_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
)

func TestMinPatch(t *testing.T) {
	cat, err := catalog.FromVersions("test", "3.5.20", "3.5.21", "3.5.35", "3.6.0", "3.6.11", "3.6.16", "3.7.0", "3.7.3")
	if err != nil {
		t.Fatal(err)
	}
	rules := []plan.MinPatch{{Min: semver.MustParse("3.5.26"), Source: "guide A"}, {Min: semver.MustParse("3.6.11"), Source: "guide B"}}
	tests := []struct {
		name, from, to string
		rules          []plan.MinPatch
		want, reason   string
		err            error
	}{
		{name: "below the minimum: latest patch first", from: "3.5.20", to: "3.7.3", rules: rules,
			want: "3.5.20 -> 3.5.35 -> 3.6.16 -> 3.7.3", reason: "3.5.20 is below 3.5.26, the minimum to leave 3.5 (guide A)"},
		{name: "at the minimum's minor, above it", from: "3.5.35", to: "3.7.3", rules: rules, want: "3.5.35 -> 3.6.16 -> 3.7.3"},
		{name: "below the minimum of the second minor", from: "3.6.0", to: "3.7.3", rules: rules,
			want: "3.6.0 -> 3.6.16 -> 3.7.3", reason: "minimum to leave 3.6 (guide B)"},
		{name: "a patch hop needs no minimum", from: "3.5.20", to: "3.5.21", rules: rules, want: "3.5.20 -> 3.5.21"},
		{name: "without rules", from: "3.5.20", to: "3.6.16", want: "3.5.20 -> 3.6.16"},
		{name: "the catalog lacks a release past the minimum", from: "3.5.20", to: "3.6.16",
			rules: []plan.MinPatch{{Min: semver.MustParse("3.5.40"), Source: "guide C"}}, err: plan.ErrNoPath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := plan.Make(cat, policy.MustParse(tc.from), policy.MustParse(tc.to), plan.Options{MinPatch: tc.rules})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Make = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := path(p); got != tc.want {
				t.Errorf("path = %s, want %s", got, tc.want)
			}
			if tc.reason != "" && !strings.Contains(p.Hops[0].Reason, tc.reason) {
				t.Errorf("first hop's reason = %q, want it to contain %q", p.Hops[0].Reason, tc.reason)
			}
		})
	}
}
