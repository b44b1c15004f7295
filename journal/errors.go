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
	Path string
	LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("take upgrade lock: held by %s since %s (%s ago); if that process is gone for good, remove %s",
		e.describe(), e.Since.Format(time.RFC3339), time.Since(e.Since).Round(time.Second), e.Path)
}

func (e *LockedError) describe() string {
	if e.Holder != "" {
		return e.Holder
	}
	return fmt.Sprintf("pid %d on %s", e.PID, e.Host)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }
