package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/journal"
)

// ClusterRecord is the upgrade record a service keeps in the cluster
// itself, so that every operator, from any machine, sees the same upgrade
// and only one runs at a time: a lock bound to a lease its holder renews
// (it expires when the holder dies), and a copy of the journal.
type ClusterRecord interface {
	// Lock takes the cluster's upgrade lock for holder. When someone else
	// holds it, the error is a *journal.LockedError naming them.
	Lock(ctx context.Context, holder journal.LockInfo) (HeldLock, error)
	// Read returns the journal as the cluster keeps it, and who holds the
	// lock (nil: nobody).
	Read(ctx context.Context) ([]journal.Record, *journal.LockInfo, error)
}

// HeldLock is the cluster's upgrade lock, held.
type HeldLock interface {
	// Append adds records to the cluster's copy of the journal. Appending
	// a record that is there already changes nothing.
	Append(ctx context.Context, records ...journal.Record) error
	// Lost is closed when the lock is lost: its lease could not be renewed
	// before it ended, and someone else may take it.
	Lost() <-chan struct{}
	// Release gives the lock up.
	Release(ctx context.Context) error
	// TookOver is the lock this one replaced, left by a holder that is
	// gone, or nil.
	TookOver() *journal.LockInfo
}

// Recorder is implemented by an App whose service keeps the upgrade record
// in the cluster (see ClusterRecord). Run then takes the cluster's lock
// besides this machine's, starts from the cluster's journal when it is
// further along than this one, and mirrors every record it writes. Record
// may return nil: the cluster keeps none.
type Recorder interface {
	Record() ClusterRecord
}

// recordOf is the App's cluster record, or nil.
func recordOf(app App) ClusterRecord {
	if rec, ok := app.(Recorder); ok {
		return rec.Record()
	}
	return nil
}

// ErrLockLost means the cluster's upgrade lock was lost while a run held it.
var ErrLockLost = errors.New("cluster upgrade lock lost")

// holdRecord takes the cluster's lock, brings this journal and the
// cluster's copy level, and mirrors what is written from now on. It
// returns what releases it all, and ctx, which ends if the lock is lost.
// wait bounds the wait for a replica that can serve the lock (takeLock).
func (e *Engine) holdRecord(ctx context.Context, r *runner, cr ClusterRecord, wait time.Duration) (context.Context, func(), error) {
	held, err := takeLock(ctx, r, cr, wait)
	if err != nil {
		return ctx, nil, err
	}
	if t := held.TookOver(); t != nil {
		r.emit(Event{Type: EventNote, Message: fmt.Sprintf("took over the cluster's upgrade lock of %s (pid %d, since %s): that process is gone",
			t.Holder, t.PID, t.Since.Format(time.RFC3339))})
	}
	m := &mirror{ctx: context.WithoutCancel(ctx), held: held, r: r}
	release := func() {
		e.Journal.SetMirror(nil)
		m.flush(10 * time.Second)
		if err := held.Release(context.WithoutCancel(ctx)); err != nil {
			r.log.Warn("release the cluster's upgrade lock", "err", err)
		}
	}
	remote, _, err := cr.Read(ctx)
	if err == nil {
		err = e.level(ctx, r, held, remote)
	}
	if err != nil {
		release()
		return ctx, nil, fmt.Errorf("read the cluster's upgrade record: %w", err)
	}
	e.Journal.SetMirror(m.append)
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-held.Lost():
			cancel(fmt.Errorf("%w: its lease could not be renewed; another run may take it", ErrLockLost))
		case <-ctx.Done():
		}
	}()
	return ctx, func() {
		cancel(nil)
		release()
	}, nil
}

// lockWait is how long takeLock waits for a replica that can serve the
// cluster's lock: replicas starting, or the store electing a leader, take
// seconds; a store that has lost its quorum does not come back by waiting.
func lockWait(opts Options) time.Duration { return 3 * opts.StallAfter }

// takeLock takes the cluster's upgrade lock. While no replica can serve it
// (every one down, starting, or without a store leader) it tries again,
// saying why, for up to wait, and then returns an *UnreachableError;
// someone else holding it ends it at once.
func takeLock(ctx context.Context, r *runner, cr ClusterRecord, wait time.Duration) (HeldLock, error) {
	host, _ := os.Hostname()
	info := journal.LockInfo{Holder: r.opts.Holder, PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second)}
	start := time.Now()
	var held HeldLock
	var last string
	err := poll.For(ctx, wait, 500*time.Millisecond, func() (bool, error) {
		var err error
		held, err = cr.Lock(ctx, info)
		var le *journal.LockedError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &le), ctx.Err() != nil:
			return false, err
		}
		last = strings.ReplaceAll(err.Error(), "\n", "; ")
		r.emit(Event{Type: EventWaitProgress, Step: "lock", Message: "no replica can serve the cluster's upgrade lock yet: " + last,
			Fields: map[string]any{"gate": "cluster upgrade lock", "waited": time.Since(start)}})
		return false, nil
	})
	if err != nil && last != "" && ctx.Err() == nil && !errors.As(err, new(*journal.LockedError)) {
		return nil, &UnreachableError{For: time.Since(start), Last: last, Restart: restartCommand(r.opts, r.drv.Cluster())}
	}
	return held, err
}

// UnreachableError: no replica could serve the cluster's upgrade record.
type UnreachableError struct {
	For     time.Duration
	Last    string // the last answer
	Restart string // the command that restarts the replicas
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("%s; no replica could serve it for %s: check the replicas with `ladder status`; `%s` restarts them one at a time",
		e.Last, roundDuration(e.For), e.Restart)
}

// level makes this journal and the cluster's copy the same: the cluster's
// copy, when it is further along (the upgrade ran from elsewhere) or
// differs (it is the truth); this one's records it lacks, otherwise (a
// mirror that failed).
func (e *Engine) level(ctx context.Context, r *runner, held HeldLock, remote []journal.Record) error {
	local := e.Journal.Records()
	same := 0
	for same < min(len(local), len(remote)) && sameRecord(local[same], remote[same]) {
		same++
	}
	switch {
	case same == len(remote) && same == len(local):
		return nil
	case same == len(remote):
		return held.Append(ctx, local[same:]...)
	case holes(local, remote):
		// Mirroring failed for some records and not for later ones: the
		// cluster's copy is this journal with holes. Fill them.
		var missing []journal.Record
		have := map[int64]bool{}
		for _, rec := range remote {
			have[rec.Seq] = true
		}
		for _, rec := range local {
			if !have[rec.Seq] {
				missing = append(missing, rec)
			}
		}
		return held.Append(ctx, missing...)
	default:
		if err := e.Journal.Adopt(remote); err != nil {
			return err
		}
		r.emit(Event{Type: EventNote, Message: fmt.Sprintf("took the cluster's journal (%d records; %d written from elsewhere)",
			len(remote), len(remote)-same)})
		return nil
	}
}

// holes reports whether remote is local with records missing: every
// remote record is local's record of the same sequence number.
func holes(local, remote []journal.Record) bool {
	for _, rec := range remote {
		if rec.Seq < 1 || rec.Seq > int64(len(local)) || !sameRecord(local[rec.Seq-1], rec) {
			return false
		}
	}
	return true
}

// mirror is the journal's mirror into the cluster's record. A record that
// could not be mirrored (no replica could take it: the only one is being
// replaced, or the store has no leader for a moment) goes again with the
// next one, so the cluster's copy has no holes (appending a record twice
// is harmless), and flush sends what is left before the lock is released.
// The copy running behind does not stop the upgrade; losing the lock does.
type mirror struct {
	ctx    context.Context
	held   HeldLock
	r      *runner
	behind []journal.Record
}

func (m *mirror) append(rec journal.Record) error {
	m.behind = append(m.behind, rec)
	err := m.held.Append(m.ctx, m.behind...)
	switch {
	case err == nil:
		m.behind = nil
	case errors.Is(err, ErrLockLost):
		return err
	case len(m.behind) == 1:
		m.r.log.Warn("the cluster's copy of the journal is behind; it catches up with the next record", "err", err)
	}
	return nil
}

// flush sends the records still behind, trying for up to wait.
func (m *mirror) flush(wait time.Duration) {
	if len(m.behind) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, wait)
	defer cancel()
	err := poll.For(ctx, wait, 250*time.Millisecond, func() (bool, error) {
		err := m.held.Append(ctx, m.behind...)
		if errors.Is(err, ErrLockLost) {
			return false, err
		}
		return err == nil, nil
	})
	if err != nil {
		m.r.emit(Event{Type: EventNote, Message: fmt.Sprintf("the cluster's copy of the journal lacks the last %d records (%v); the next run from this machine adds them", len(m.behind), err)})
		return
	}
	m.behind = nil
}

func sameRecord(a, b journal.Record) bool {
	return a.Seq == b.Seq && a.Step == b.Step && a.Phase == b.Phase && a.Time.Equal(b.Time)
}
