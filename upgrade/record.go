package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

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
func (e *Engine) holdRecord(ctx context.Context, r *runner, cr ClusterRecord) (context.Context, func(), error) {
	host, _ := os.Hostname()
	held, err := cr.Lock(ctx, journal.LockInfo{Holder: r.opts.Holder, PID: os.Getpid(), Host: host,
		Since: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		return ctx, nil, err
	}
	if t := held.TookOver(); t != nil {
		r.emit(Event{Type: EventNote, Message: fmt.Sprintf("took over the cluster's upgrade lock of %s (pid %d, since %s): that process is gone",
			t.Holder, t.PID, t.Since.Format(time.RFC3339))})
	}
	release := func() {
		e.Journal.SetMirror(nil)
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
	e.Journal.SetMirror(mirrorTo(context.WithoutCancel(ctx), held))
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

// mirrorTo is the journal's mirror into the cluster's record: a record
// that could not be mirrored goes again with the next one, so the
// cluster's copy has no holes (appending a record twice is harmless).
func mirrorTo(ctx context.Context, held HeldLock) func(journal.Record) error {
	var behind []journal.Record
	return func(rec journal.Record) error {
		behind = append(behind, rec)
		if err := held.Append(ctx, behind...); err != nil {
			return err
		}
		behind = nil
		return nil
	}
}

func sameRecord(a, b journal.Record) bool {
	return a.Seq == b.Seq && a.Step == b.Step && a.Phase == b.Phase && a.Time.Equal(b.Time)
}
