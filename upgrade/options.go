package upgrade

import (
	"context"
	"fmt"
	"os"
	"time"
)

// Options tune the engine. Zero durations and budget take the defaults of
// DefaultOptions; Remediate is used as given, so start from DefaultOptions
// to keep remediation on.
type Options struct {
	// MaxWait bounds a wait that keeps making progress (default 10m).
	MaxWait time.Duration
	// StallAfter ends a wait that sees no progress for this long (default 10s).
	StallAfter time.Duration
	// PollInterval is the pause between status probes (default 50ms).
	PollInterval time.Duration
	// Remediate turns automatic remediation of stalls on.
	Remediate bool
	// RemediationBudget is the number of remediation rounds allowed per
	// Run (default 2).
	RemediationBudget int
	// StepTimeout bounds one attempt of one step (default 1h). The step's
	// context is cancelled with a cause wrapping ErrStepTimeout that names
	// the step.
	StepTimeout time.Duration
	// BackupDir is where backups are written (default: the journal
	// directory's "backups" folder). Backups are kept after the upgrade.
	BackupDir string
	// Holder describes this process in the upgrade lock (default "pid N on HOST").
	Holder string
	// ResumeCommand is the command a person runs to continue the upgrade,
	// used in hints (default "ladder upgrade --cluster NAME --to TARGET --yes").
	ResumeCommand string
	// RestartCommand is the command that restarts the replicas one at a
	// time, used in hints (default "ladder restart --cluster NAME --rolling").
	RestartCommand string
	// Abort cuts actions short. An action (a replica's replace or restart,
	// a job, a backup) does not end when Run's context does, a first
	// Ctrl-C: it finishes, its step is journaled, and Run stops before
	// the next step, so the cluster is where the journal says. It ends
	// when Abort does, a second Ctrl-C. Nil: actions always finish (or
	// time out with their step).
	Abort context.Context
	// Knobs are testing hooks.
	Knobs Knobs
}

// Knobs are hooks for tests; nil fields do nothing. An error returned by
// a knob ends Run at once with that error, as if the process had died
// there: nothing more is journaled (the lock is still released).
type Knobs struct {
	// BeforeAct runs after a step's intent is synced, before it acts.
	BeforeAct func(step string) error
	// AfterAct runs after a step acted, before its done record.
	AfterAct func(step string) error
}

// DefaultOptions returns the documented defaults, remediation on.
func DefaultOptions() Options {
	return Options{
		MaxWait:           10 * time.Minute,
		StallAfter:        10 * time.Second,
		PollInterval:      50 * time.Millisecond,
		Remediate:         true,
		RemediationBudget: 2,
		StepTimeout:       time.Hour,
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxWait <= 0 {
		o.MaxWait = d.MaxWait
	}
	if o.StallAfter <= 0 {
		o.StallAfter = d.StallAfter
	}
	if o.PollInterval <= 0 {
		o.PollInterval = d.PollInterval
	}
	if o.RemediationBudget <= 0 {
		o.RemediationBudget = d.RemediationBudget
	}
	if o.StepTimeout <= 0 {
		o.StepTimeout = d.StepTimeout
	}
	if o.Holder == "" {
		host, _ := os.Hostname()
		o.Holder = fmt.Sprintf("pid %d on %s", os.Getpid(), host)
	}
	return o
}
