package journal

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrLocked means another process holds the cluster's upgrade lock.
	ErrLocked = errors.New("upgrade lock held")
	// ErrNotLocked means a write was attempted without holding the lock.
	ErrNotLocked = errors.New("journal not locked by this process")
	// ErrCorrupt means the journal file has a malformed record that is not a
	// torn last line.
	ErrCorrupt = errors.New("journal corrupt")
)

// LockedError says who holds the lock and since when.
type LockedError struct {
	// Path is the lock file, for the person who must remove a lock whose
	// holder is gone for good; empty for a lock that frees itself (Frees).
	Path string
	// Frees says when a lock that frees itself does so, such as the
	// cluster's lock, whose lease ends soon after its holder.
	Frees string
	LockInfo
}

func (e *LockedError) Error() string {
	next := "if that process is gone for good, remove " + e.Path
	if e.Frees != "" {
		next = e.Frees
	}
	return fmt.Sprintf("take upgrade lock: held by %s since %s (%s ago); %s",
		e.describe(), e.Since.Format(time.RFC3339), time.Since(e.Since).Round(time.Second), next)
}

func (e *LockedError) describe() string {
	if e.Holder != "" {
		return e.Holder
	}
	return fmt.Sprintf("pid %d on %s", e.PID, e.Host)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
