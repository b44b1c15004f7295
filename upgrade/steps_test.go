package upgrade_test

import (
	"context"
	"slices"
	"testing"

	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestStepRef(t *testing.T) {
	tests := []struct {
		name     string
		ref      upgrade.StepRef
		id       string
		category string
	}{
		{"plan", upgrade.StepRef{Name: upgrade.StepPlan}, "plan", ""},
		{"run note", upgrade.StepRef{Name: upgrade.StepRun}, "run", ""},
		{"preflight", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepPreflight}, "hop/2.1.4->2.2.5/preflight", "preflight"},
		{"backup", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepBackup}, "hop/2.1.4->2.2.5/backup", "backup"},
		{"roll note", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepRoll}, "hop/2.1.4->2.2.5/roll", ""},
		{"replace", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepReplace, Replica: "replica-2"},
			"hop/2.1.4->2.2.5/roll/replica-2/replace", "restart"},
		{"wait", upgrade.StepRef{Hop: "3.0.1->3.1.2", Name: upgrade.StepWait, Replica: "replica-10"},
			"hop/3.0.1->3.1.2/roll/replica-10/wait", "settle"},
		{"migrate", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepMigrate}, "hop/2.1.4->2.2.5/migrate", "migration"},
		{"finalize", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepFinalize}, "hop/2.1.4->2.2.5/finalize", "finalize"},
		{"remediation round", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepRemediate, Round: 1},
			"hop/2.1.4->2.2.5/remediate/round-1", "remediation"},
		{"remediation restart", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepRemediate, Round: 2,
			Action: upgrade.ActionRestart, Replica: "replica-3"}, "hop/2.1.4->2.2.5/remediate/round-2/restart/replica-3", "remediation"},
		{"remediation settled", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepRemediate, Round: 1,
			Action: upgrade.ActionSettled}, "hop/2.1.4->2.2.5/remediate/round-1/settled", "remediation"},
		{"remediation gave up", upgrade.StepRef{Hop: "2.1.4->2.2.5", Name: upgrade.StepRemediate, Round: 3,
			Action: upgrade.ActionGaveUp}, "hop/2.1.4->2.2.5/remediate/round-3/gave-up", "remediation"},
		{"rolling restart", upgrade.StepRef{Name: upgrade.StepRestart, Replica: "replica-1"}, "restart/replica-1", ""},
		{"pre-release hop", upgrade.StepRef{Hop: "3.1.2->3.2.0-rc.1+b.5", Name: upgrade.StepPreflight},
			"hop/3.1.2->3.2.0-rc.1+b.5/preflight", "preflight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ref.String(); got != tc.id {
				t.Errorf("String() = %q, want %q", got, tc.id)
			}
			got, err := upgrade.ParseStep(tc.id)
			if err != nil || got != tc.ref {
				t.Errorf("ParseStep(%q) = %+v, %v; want %+v", tc.id, got, err, tc.ref)
			}
			if c := tc.ref.Category(); c != tc.category {
				t.Errorf("Category() = %q, want %q", c, tc.category)
			}
		})
	}
}

func TestParseStepRefuses(t *testing.T) {
	for _, id := range []string{
		"", "hop/", "hop/2.1.4->2.2.5", "hop/2.1.4->2.2.5/", "hop/2.1.4->2.2.5/dance",
		"hop/2.1.4->2.2.5/roll/replica-2", "hop/2.1.4->2.2.5/roll//replace", "hop/2.1.4->2.2.5/roll/replica-2/dance",
		"hop/2.1.4->2.2.5/remediate", "hop/2.1.4->2.2.5/remediate/round-0", "hop/2.1.4->2.2.5/remediate/round-x",
		"hop/2.1.4->2.2.5/remediate/round-1/restart", "hop/2.1.4->2.2.5/remediate/round-1/dance",
		"hop/2.1.4->2.2.5/remediate/round-01", "restart", "restart/", "restart/a/b", "preflight/x",
	} {
		if ref, err := upgrade.ParseStep(id); err == nil {
			t.Errorf("ParseStep(%q) = %+v, want an error", id, ref)
		}
	}
}

// FuzzParseStep: whatever ParseStep accepts, String writes back unchanged.
func FuzzParseStep(f *testing.F) {
	for _, s := range []string{"plan", "hop/2.1.4->2.2.5/roll/replica-2/replace", "hop/a/remediate/round-3/restart/r",
		"restart/replica-1", "hop/a/remediate/round-1/settled"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ref, err := upgrade.ParseStep(id)
		if err != nil {
			return
		}
		if got := ref.String(); got != id {
			t.Fatalf("ParseStep(%q) = %+v, which writes back as %q", id, ref, got)
		}
	})
}

// TestStepsMatchJournal: the dry-run listing is exactly what a run
// journals, hop by hop, given each hop's roll order.
func TestStepsMatchJournal(t *testing.T) {
	c := upgradetest.New("test", source, 3)
	dir := t.TempDir()
	p := makePlan(t, source, target)
	st, _ := c.App().Status(context.Background(), nil)
	initial := upgrade.RollOrder(st, []string{"replica-3", "replica-1", "replica-2"})
	if !slices.Equal(initial, []string{"replica-2", "replica-3", "replica-1"}) {
		t.Fatalf("roll order %v: want followers by ID, leader last", initial)
	}
	e, rec := engine(t, c, dir, fastOptions())
	if err := e.Run(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	js := assertJournal(t, dir)
	got := doneSteps(js)

	var want []string
	for _, h := range p.Hops {
		note, ok := js.LastNote("hop/" + h.ID() + "/roll")
		if !ok {
			t.Fatalf("no roll order journaled for %s", h.ID())
		}
		var d struct{ Order []string }
		if err := note.Decode(&d); err != nil {
			t.Fatal(err)
		}
		want = append(want, upgrade.Steps(plan.Plan{From: h.From, To: h.To, Hops: []plan.Hop{h}}, d.Order)...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("journaled steps differ from Steps:\n got %v\nwant %v", got, want)
	}
	// The first hop rolls in the order RollOrder gave before the run.
	hop1 := upgrade.Steps(plan.Plan{Hops: p.Hops[:1]}, initial)
	if !slices.Equal(got[:len(hop1)], hop1) {
		t.Errorf("first hop steps %v, want %v", got[:len(hop1)], hop1)
	}
	// Every listed step of the whole plan is journaled (in some roll order).
	all := upgrade.Steps(p, initial)
	slices.Sort(all)
	sorted := slices.Clone(got)
	slices.Sort(sorted)
	if !slices.Equal(all, sorted) {
		t.Errorf("Steps lists a different set of steps than the run journaled")
	}
	if n := len(rec.ofType(upgrade.EventStepDone)); n != len(got) {
		t.Errorf("%d step-done events for %d done steps", n, len(got))
	}
}
