package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/upgrade"
)

// holder describes this process in the upgrade lock: what it does, and
// which process it is.
func holder(what string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s (pid %d on %s)", what, os.Getpid(), host)
}

// withLock runs fn holding the cluster's upgrade lock as what, this
// machine's and, when the cluster keeps one, the cluster's, so that it
// never runs while an upgrade, a rolling restart or another such command
// does, from here or elsewhere: then it is refused with exit 4 and the
// holder named.
func (e *env) withLock(ctx context.Context, d driver.Driver, rec home.Record, what string, fn func() error) (err error) {
	cluster := d.Cluster()
	locked := func(err error) error {
		return withCode(ExitLocked, fmt.Errorf("%s of cluster %s refused while another command holds it: %w\n  follow it with: ladder status --cluster %s",
			what, cluster, err, cluster))
	}
	j, jerr := openJournal(cluster)
	if jerr != nil {
		return jerr
	}
	var le *journal.LockedError
	if _, lerr := j.Lock(holder(what)); errors.As(lerr, &le) {
		return locked(lerr)
	} else if lerr != nil {
		return lerr
	}
	// A destroyed cluster takes its journal, and the lock, with it.
	defer func() {
		if uerr := j.Unlock(); uerr != nil && !errors.Is(uerr, os.ErrNotExist) {
			err = errors.Join(err, uerr)
		}
	}()
	if app, aerr := e.appOf(d, rec); aerr == nil {
		if cr := app.(upgrade.Recorder).Record(); cr != nil {
			host, _ := os.Hostname()
			held, lerr := cr.Lock(ctx, journal.LockInfo{Holder: holder(what), PID: os.Getpid(), Host: host, Since: time.Now().UTC()})
			switch {
			case errors.As(lerr, &le):
				return locked(lerr)
			case lerr == nil:
				defer func() { _ = held.Release(context.WithoutCancel(ctx)) }()
			}
			// A cluster whose record cannot be read at all is not
			// running an upgrade either: go on.
		}
	}
	return fn()
}
