package upgrade

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrUnfinished means the journal holds an unfinished upgrade to
	// another target.
	ErrUnfinished = errors.New("another upgrade is unfinished")
	// ErrWaitTimeout means a wait kept making progress but did not end
	// within Options.MaxWait.
	ErrWaitTimeout = errors.New("wait timed out")
	// ErrStepTimeout is the cause of a step's context when the step ran
	// longer than Options.StepTimeout.
	ErrStepTimeout = errors.New("step timed out")
	// ErrUnexpectedVersion means a replica runs neither the hop's FROM nor
	// its TO release.
	ErrUnexpectedVersion = errors.New("replica runs an unexpected release")
	// ErrSchemaTooNew means the stored schema is newer than the hop's FROM
	// release knows.
	ErrSchemaTooNew = errors.New("store schema too new")
	// ErrSchemaMismatch means the stored schema is not the one the hop's
	// migration should have produced.
	ErrSchemaMismatch = errors.New("store schema not as expected")
	// ErrInterrupted is the cause a person's interruption (Ctrl-C,
	// SIGTERM) gives the contexts it ends.
	ErrInterrupted = errors.New("interrupted")
	// ErrBadJournal means the journal's plan record cannot be read.
	ErrBadJournal = errors.New("unreadable upgrade journal")
)

// StepError is a step that failed. Hint says what to do next, often the
// exact command that continues.
type StepError struct {
	Step string
	Err  error
	Hint string
}

func (e *StepError) Error() string { return "step " + e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// StallError is a wait that saw no progress for Options.StallAfter.
type StallError struct {
	// Gate is what was awaited ("store settled", "replica-2 healthy on 2.2.5").
	Gate string
	// Replica is the replica the diagnosis blames ("" when the cluster's
	// status could not be read at all).
	Replica string
	// DB, Table, Applied and Revision describe the table the replica is
	// stuck on, when it answers but does not catch up.
	DB, Table         string
	Applied, Revision int64
	// Reason is the diagnosis when it is not a table gap: "not answering:
	// <error>", "UI not answering", "is not a voting member", ...
	Reason string
	// Fault: the replica is down for a reason no wait cures (its process
	// exited, it is frozen, or it does not answer and the store's leader
	// has not heard from it), named as soon as seen rather than after
	// StallAfter without progress.
	Fault bool
	// Log holds the last lines the replica logged, when its process
	// exited and the driver can tell.
	Log string
	// For is how long nothing moved (not set for a Fault).
	For time.Duration
}

func (e *StallError) Error() string {
	tail := " (no progress for " + roundDuration(e.For) + ")"
	switch {
	case e.Fault:
		return e.Replica + " " + e.Reason
	case e.Table != "":
		return fmt.Sprintf("%s stalled on table %s/%s: applied %d of %d%s",
			e.Replica, e.DB, e.Table, e.Applied, e.Revision, tail)
	case e.Replica != "":
		return e.Replica + " " + e.Reason + tail
	default:
		return e.Reason + tail
	}
}

// UnfinishedError refuses an upgrade while the journal holds an
// unfinished one to another target.
type UnfinishedError struct {
	// From and To are the unfinished upgrade's plan; Started is when it
	// was opened.
	From, To string
	Started  time.Time
	// Requested is the target of the refused run.
	Requested string
	// Hint is the command that finishes the unfinished upgrade.
	Hint string
}

func (e *UnfinishedError) Error() string {
	return fmt.Sprintf("upgrade to %s refused: the upgrade from %s to %s started %s is unfinished; %s",
		e.Requested, e.From, e.To, e.Started.Format(time.RFC3339), e.Hint)
}

// Is makes errors.Is(err, ErrUnfinished) true.
func (e *UnfinishedError) Is(target error) bool { return target == ErrUnfinished }

// roundDuration prints d the way people read it: 10s, 1.5s, 250ms.
func roundDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		d = d.Round(time.Second)
	case d >= time.Second:
		d = d.Round(100 * time.Millisecond)
	default:
		d = d.Round(time.Millisecond)
	}
	return d.String()
}
