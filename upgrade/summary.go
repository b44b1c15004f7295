package upgrade

import (
	"errors"
	"io/fs"
	"time"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
)

// Summary states of an upgrade, a hop or a step.
const (
	StateNone        = "none"        // no upgrade in the journal
	StatePending     = "pending"     // not started
	StateRunning     = "running"     // started, the lock is held
	StateInterrupted = "interrupted" // started, not finished, nobody holds the lock
	StateFailed      = "failed"      // the last attempt failed
	StateDone        = "done"
)

// Summary is what a journal says about the latest upgrade, for `status`
// and the end of `demo`. Durations are nanoseconds in JSON.
type Summary struct {
	State   string    `json:"state"`
	Cluster string    `json:"cluster,omitempty"`
	From    string    `json:"from,omitempty"`
	To      string    `json:"to,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Ended is the time of the latest record.
	Ended time.Time `json:"ended,omitzero"`
	// Version is the release the cluster reached: To when done, else the
	// TO of the last finalized hop, else From.
	Version string       `json:"version,omitempty"`
	Hops    []HopSummary `json:"hops,omitempty"`
	// Current is the step that has an intent and no done (running, or
	// where a run stopped).
	Current string `json:"current,omitempty"`
	// Failure is the latest failure not followed by a success of its step.
	Failure      *Failure      `json:"failure,omitempty"`
	Remediations []Remediation `json:"remediations,omitempty"`
	// Timing sums step time per category ("restart", "settle",
	// "migration", "backup", "remediation", ...): the time spent in those
	// activities, measured inside the steps.
	Timing map[string]time.Duration `json:"timing,omitempty"`
	// Runs counts the runs (first run and resumes) of this upgrade.
	Runs    int               `json:"runs"`
	Backups []string          `json:"backups,omitempty"`
	Lock    *journal.LockInfo `json:"lock,omitempty"`
}

// HopSummary is one hop of the plan.
type HopSummary struct {
	ID       string                   `json:"id"`
	From     string                   `json:"from"`
	To       string                   `json:"to"`
	Migrates bool                     `json:"migrates"`
	State    string                   `json:"state"`
	Started  time.Time                `json:"started,omitzero"`
	Ended    time.Time                `json:"ended,omitzero"`
	Duration time.Duration            `json:"duration"`
	Timing   map[string]time.Duration `json:"timing,omitempty"`
	Steps    []StepSummary            `json:"steps,omitempty"`
}

// StepSummary is one step that was started.
type StepSummary struct {
	ID       string    `json:"id"`
	Category string    `json:"category"`
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"`
	// Duration is from the last intent to the done record.
	Duration time.Duration `json:"duration"`
	Attempts int           `json:"attempts"`
}

// Failure is a failed step.
type Failure struct {
	Step  string    `json:"step"`
	Error string    `json:"error"`
	Hint  string    `json:"hint,omitempty"`
	Time  time.Time `json:"time"`
}

// Remediation is one journaled remediation action.
type Remediation struct {
	Time    time.Time `json:"time"`
	Step    string    `json:"step"`
	Round   int       `json:"round"`
	Action  string    `json:"action"` // start, restart, settled, gave-up
	Replica string    `json:"replica,omitempty"`
	// For is the step being remediated; Detail the stall or the error.
	For    string `json:"for,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Summarize reads the latest upgrade out of j, and who holds its lock.
func Summarize(j *journal.Journal) (Summary, error) {
	var lock *journal.LockInfo
	if lk, err := journal.ReadLock(j.Dir()); err == nil {
		lock = &lk
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Summary{State: StateNone}, err
	}
	return SummarizeRecords(j.Records(), lock)
}

// SummarizeRecords reads the latest upgrade out of a journal's records,
// such as the copy a cluster keeps; lock is who holds the upgrade lock
// (nil: nobody, and an unfinished upgrade is interrupted).
func SummarizeRecords(records []journal.Record, lock *journal.LockInfo) (Summary, error) {
	st := journal.Interpret(records)
	s := Summary{State: StateNone, Timing: map[string]time.Duration{}, Lock: lock}
	if st.Plan == nil {
		return s, nil
	}
	var pr planRecord
	if err := st.Plan.Decode(&pr); err != nil {
		return s, err
	}
	p, err := pr.plan()
	if err != nil {
		return s, err
	}
	s.Cluster, s.From, s.To, s.Started, s.Version = pr.Cluster, pr.From, pr.To, st.Plan.Time, pr.From
	if n := len(st.Records); n > 0 {
		s.Ended = st.Records[n-1].Time
	}
	steps := s.readRecords(st.Records)
	running := s.Lock != nil
	for _, h := range p.Hops {
		hs := hopSummary(h, st, steps, running)
		for c, d := range hs.Timing {
			s.Timing[c] += d
		}
		if hs.State == StateDone {
			s.Version = hs.To
		}
		s.Hops = append(s.Hops, hs)
	}
	for _, id := range st.Order {
		if st.IsPending(id) {
			s.Current = id
		}
	}
	s.Failure = latestFailure(st)
	switch {
	case st.Finished:
		s.State, s.Version = StateDone, s.To
	case running:
		s.State = StateRunning
	case s.Failure != nil && s.Failure.Step == s.Current:
		s.State = StateFailed
	default:
		s.State = StateInterrupted
	}
	return s, nil
}

// stepAcc is what the records say of one step: its attempts, its last
// intent, its done record.
type stepAcc struct {
	attempts           int
	lastIntent, doneAt time.Time
	done               stepDone
}

// readRecords counts the runs and collects the remediations and backups
// into s, and returns what the records say of each step.
func (s *Summary) readRecords(records []journal.Record) map[string]*stepAcc {
	steps := map[string]*stepAcc{}
	for _, r := range records {
		ref := parseStep(r.Step)
		switch {
		case ref.Name == StepRun && r.Phase == journal.Note:
			s.Runs++
		case ref.Name == StepRemediate && r.Phase == journal.Note:
			s.Remediations = append(s.Remediations, remediationOf(r, ref))
		case r.Phase == journal.Intent:
			a := steps[r.Step]
			if a == nil {
				a = &stepAcc{}
				steps[r.Step] = a
			}
			a.attempts++
			a.lastIntent = r.Time
		case r.Phase == journal.Done:
			a := steps[r.Step]
			if a == nil {
				continue
			}
			a.doneAt = r.Time
			if r.Decode(&a.done) == nil && a.done.backupPath() != "" {
				s.Backups = append(s.Backups, a.done.backupPath())
			}
		}
	}
	return steps
}

// hopSummary summarizes hop h from the journal state and the steps' records.
func hopSummary(h plan.Hop, st journal.State, steps map[string]*stepAcc, running bool) HopSummary {
	hs := HopSummary{ID: h.ID(), From: h.From.String(), To: h.To.String(), Migrates: h.Migrates,
		State: StatePending, Timing: map[string]time.Duration{}}
	for _, id := range st.Order {
		ref := parseStep(id)
		if ref.Hop != h.ID() || steps[id] == nil {
			continue
		}
		a := steps[id]
		ss := StepSummary{ID: id, Category: ref.Category(), Started: st.Started[id].Time, Attempts: a.attempts}
		switch {
		case st.IsDone(id):
			ss.State, ss.Ended, ss.Duration = StateDone, a.doneAt, a.doneAt.Sub(a.lastIntent)
			for c, d := range a.done.Timing.ByCategory() {
				hs.Timing[c] += d
			}
		case st.Failed[id].Seq != 0:
			ss.State = StateFailed
		case running:
			ss.State = StateRunning
		default:
			ss.State = StateInterrupted
		}
		if hs.Started.IsZero() {
			hs.Started = ss.Started
		}
		hs.Steps = append(hs.Steps, ss)
	}
	finalize := HopStep(h, StepFinalize).String()
	switch {
	case st.IsDone(finalize):
		hs.State = StateDone
		hs.Ended = st.Done[finalize].Time
		hs.Duration = hs.Ended.Sub(hs.Started)
	case len(hs.Steps) > 0:
		hs.State = hs.Steps[len(hs.Steps)-1].State
		if hs.State == StateDone {
			hs.State = StateInterrupted
			if running {
				hs.State = StateRunning
			}
		}
	}
	return hs
}

// latestFailure is the latest failure record, or nil.
func latestFailure(st journal.State) *Failure {
	var latest *journal.Record
	for _, r := range st.Failed {
		if latest == nil || r.Seq > latest.Seq {
			rr := r
			latest = &rr
		}
	}
	if latest == nil {
		return nil
	}
	var d struct{ Error, Hint string }
	_ = latest.Decode(&d)
	return &Failure{Step: latest.Step, Error: d.Error, Hint: d.Hint, Time: latest.Time}
}

func remediationOf(r journal.Record, ref StepRef) Remediation {
	rem := Remediation{Time: r.Time, Step: r.Step, Round: ref.Round, Action: ref.Action, Replica: ref.Replica}
	if rem.Action == "" {
		rem.Action = ActionStart
	}
	var d struct {
		Step  string `json:"step"`
		Stall string `json:"stall"`
		Error string `json:"error"`
		Why   string `json:"why"`
	}
	_ = r.Decode(&d)
	rem.For = d.Step
	rem.Detail = d.Stall + d.Error + d.Why
	return rem
}
