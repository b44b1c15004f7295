package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/ladder-dev/ladder/journal"
)

// holder describes this process in the upgrade lock: what it does, and
// which process it is.
func holder(what string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (pid %d on %s)", what, os.Getpid(), host)
}

// withLock runs fn holding the cluster's upgrade lock as what, so that it
// never runs while an upgrade, a rolling restart or another such command
// does: then it is refused with exit 4 and the holder named.
func withLock(cluster, what string, fn func() error) error {
	j, err := openJournal(cluster)
	if err != nil {
		return err
	}
	if _, err := j.Lock(holder(what)); err != nil {
		var locked *journal.LockedError
		if errors.As(err, &locked) {
			return withCode(ExitLocked, fmt.Errorf("%s of cluster %s refused while another command holds it: %w\n  follow it with: ladder status --cluster %s",
				what, cluster, err, cluster))
		}
		return err
	}
	err = fn()
	// A destroyed cluster takes its journal, and the lock, with it.
	if uerr := j.Unlock(); uerr != nil && !errors.Is(uerr, os.ErrNotExist) {
		err = errors.Join(err, uerr)
	}
	return err
}
