package upgrade

import "time"

// Event types, in the order a run emits them.
const (
	// EventPlan: the plan about to run. Fields: from, to, hops ([]string),
	// resume (bool), done_steps (int: steps already done).
	EventPlan = "plan"
	// EventHopStart: a hop begins. Fields: index, of, from, to, migrates.
	EventHopStart = "hop-start"
	// EventStepStart: a step journaled its intent and acts.
	EventStepStart = "step-start"
	// EventStepDone: a step finished. Fields: duration (time.Duration) and
	// what the step did (e.g. replaced, job, path).
	EventStepDone = "step-done"
	// EventStepSkip: a step was done by an earlier run.
	EventStepSkip = "step-skip"
	// EventWaitProgress: a wait probed the cluster and is not there yet.
	// Emitted when the picture changes. Message is the current reason.
	// Fields: gate, waited (time.Duration), lagging ([]Lag), unhealthy
	// ([]string replica IDs).
	EventWaitProgress = "wait-progress"
	// EventStall: a wait saw no progress for StallAfter, or a replica down
	// for a reason no wait cures. Message is the diagnosis
	// (StallError.Error()). Fields: db, table, applied, revision.
	EventStall = "stall"
	// EventFault: while an action runs (a replace, a job, a backup), the
	// driver sees another replica go down (its process exited or stopped
	// dead). Message names it; the wait after the action repairs it.
	EventFault = "fault"
	// EventRemediation: a remediation action. Fields: round, budget,
	// action ("start", "restart", "rolling-restart", "settled", "gave-up").
	EventRemediation = "remediation"
	// EventNote: something worth telling: a replica already on TO, a
	// migration already applied, a stale lock taken over, a torn journal line.
	EventNote = "note"
	// EventHopDone: a hop is finalized. Fields: duration.
	EventHopDone = "hop-done"
	// EventDone: the upgrade (or rolling restart) finished. Fields: version, duration.
	EventDone = "done"
	// EventFailed: a step failed and Run returns. Message is the error.
	// Fields: hint.
	EventFailed = "failed"
)

// Event is a progress report. Step, Hop and Replica are set when they
// apply. Fields hold the numbers a progress display needs.
type Event struct {
	Time    time.Time      `json:"time"`
	Type    string         `json:"type"`
	Step    string         `json:"step,omitempty"`
	Hop     string         `json:"hop,omitempty"`
	Replica string         `json:"replica,omitempty"`
	Message string         `json:"message,omitempty"`
	Fields  map[string]any `json:"fields,omitempty"`
}

// Lag is one replica behind on one table, in wait-progress events.
type Lag struct {
	Replica  string `json:"replica"`
	DB       string `json:"db"`
	Table    string `json:"table"`
	Applied  int64  `json:"applied"`
	Revision int64  `json:"revision"`
}
