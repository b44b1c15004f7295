package upgrade_test

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

const (
	source = "2.1.4"
	target = "3.1.2"
)

var errCrash = errors.New("simulated crash")

func makePlan(t *testing.T, from, to string) plan.Plan {
	t.Helper()
	p, err := plan.Make(catalog.Builtin(), policy.MustParse(from), policy.MustParse(to), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fastOptions: tiny polls; no stall expected unless a test makes one.
func fastOptions() upgrade.Options {
	o := upgrade.DefaultOptions()
	o.PollInterval = 50 * time.Microsecond
	o.StallAfter = 5 * time.Second
	o.MaxWait = time.Minute
	o.StepTimeout = time.Minute
	return o
}

// stallOptions: stalls are detected quickly.
func stallOptions() upgrade.Options {
	o := fastOptions()
	o.PollInterval = time.Millisecond
	o.StallAfter = 50 * time.Millisecond
	return o
}

// recorder collects events.
type recorder struct {
	mu     sync.Mutex
	events []upgrade.Event
}

func (r *recorder) add(ev upgrade.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func (r *recorder) ofType(typ string) []upgrade.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []upgrade.Event
	for _, ev := range r.events {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

// engine builds an engine over c with a freshly opened journal in dir.
func engine(t *testing.T, c *upgradetest.Cluster, dir string, opts upgrade.Options) (*upgrade.Engine, *recorder) {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	return &upgrade.Engine{Driver: c, App: c.App(), Journal: j, OnEvent: rec.add, Options: opts}, rec
}

// assertUpgraded checks the end state of a 2.1.4 → 3.1.2 upgrade.
func assertUpgraded(t *testing.T, c *upgradetest.Cluster) {
	t.Helper()
	for id, v := range c.Versions() {
		if v != target {
			t.Errorf("%s runs %s, want %s", id, v, target)
		}
	}
	if s := c.Schema(); s != 6 {
		t.Errorf("schema %d, want 6", s)
	}
	m := c.Migrations()
	for _, s := range []int{4, 5, 6} {
		if m[s] != 1 {
			t.Errorf("migration to schema %d applied %d times, want exactly once (all: %v)", s, m[s], m)
		}
	}
	if len(m) != 3 {
		t.Errorf("migrations %v, want schemas 4, 5, 6 once each", m)
	}
}

// assertJournal checks the journal in dir is well formed and finished:
// every done follows an intent of its step, nothing is left pending, the
// upgrade is closed.
func assertJournal(t *testing.T, dir string) journal.State {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatalf("reopen journal: %v", err)
	}
	if j.Torn() != nil {
		t.Errorf("journal has a torn tail after a clean end")
	}
	open := map[string]bool{}
	for _, r := range j.Records() {
		if r.Step == journal.PlanStep {
			continue
		}
		switch r.Phase {
		case journal.Intent:
			open[r.Step] = true
		case journal.Done:
			if !open[r.Step] {
				t.Errorf("record %d: done of %s without an intent", r.Seq, r.Step)
			}
			delete(open, r.Step)
		case journal.Failed:
			if !open[r.Step] {
				t.Errorf("record %d: failure of %s without an intent", r.Seq, r.Step)
			}
		}
		if !json.Valid(r.Detail) && len(r.Detail) > 0 {
			t.Errorf("record %d: invalid detail", r.Seq)
		}
	}
	st := j.State()
	if !st.Finished || len(st.Pending) > 0 {
		t.Errorf("journal not finished: finished=%v pending=%v", st.Finished, keys(st.Pending))
	}
	if _, err := journal.ReadLock(dir); err == nil {
		t.Errorf("lock left behind")
	}
	return st
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// doneSteps lists the steps done in the current upgrade, in journal order.
func doneSteps(st journal.State) []string {
	var ids []string
	for _, r := range st.Records {
		if r.Phase == journal.Done && strings.HasPrefix(r.Step, "hop/") {
			ids = append(ids, r.Step)
		}
	}
	return ids
}
