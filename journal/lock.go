package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// LockInfo is the content of the lock file.
type LockInfo struct {
	// Holder describes the holder for people ("ladder upgrade by alice").
	Holder string    `json:"holder"`
	PID    int       `json:"pid"`
	Host   string    `json:"host"`
	Since  time.Time `json:"since"`
}

// Lock takes the cluster's upgrade lock for this process and opens the
// journal for appending. holder describes the taker for the error a
// second taker gets. A stale lock (its process is gone from this host) is
// taken over; the returned takeover, if not nil, is the lock that was
// replaced, for the caller to log.
func (j *Journal) Lock(holder string) (takeover *LockInfo, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		return nil, fmt.Errorf("take upgrade lock: already held by this journal")
	}
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return nil, fmt.Errorf("take upgrade lock: %w", err)
	}
	host, _ := os.Hostname()
	info := LockInfo{Holder: holder, PID: os.Getpid(), Host: host, Since: j.now().UTC().Truncate(time.Second)}
	path := filepath.Join(j.dir, LockName)
	for attempt := 0; ; attempt++ {
		err := createExclusive(path, info)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("take upgrade lock: %w", err)
		}
		held, rerr := ReadLock(j.dir)
		if errors.Is(rerr, fs.ErrNotExist) && attempt < 10 {
			continue // released in between
		}
		if rerr != nil {
			return nil, &LockedError{Path: path, LockInfo: LockInfo{Holder: "unknown holder (" + rerr.Error() + ")"}}
		}
		if attempt > 2 || !stale(held, host) {
			return nil, &LockedError{Path: path, LockInfo: held}
		}
		if err := removeStale(path, held); err != nil {
			return nil, fmt.Errorf("take over stale upgrade lock: %w", err)
		}
		h := held
		takeover = &h
	}
	if err := j.openForAppend(); err != nil {
		_ = os.Remove(path)
		return nil, err
	}
	j.lock = &info
	return takeover, nil
}

// Unlock closes the journal for appending and removes the lock file. It is
// a no-op when the lock is not held.
func (j *Journal) Unlock() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	j.lock = nil
	if rerr := os.Remove(filepath.Join(j.dir, LockName)); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("release upgrade lock: %w", err)
	}
	return nil
}

// Locked reports whether this journal holds the lock.
func (j *Journal) Locked() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.f != nil
}

// ReadLock returns the lock held on the journal in dir; an error wrapping
// fs.ErrNotExist means nobody holds it.
func ReadLock(dir string) (LockInfo, error) {
	var info LockInfo
	b, err := os.ReadFile(filepath.Join(dir, LockName))
	if err != nil {
		return info, fmt.Errorf("read upgrade lock: %w", err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("read upgrade lock: %w", err)
	}
	return info, nil
}

// createExclusive writes info in full to a temporary file and links it to
// path, which fails with fs.ErrExist if path exists.
func createExclusive(path string, info LockInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp.*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// Stale reports whether lock was left by a process of this machine that is
// gone: a lock its holder can no longer release.
func Stale(lock LockInfo) bool {
	host, _ := os.Hostname()
	return stale(lock, host)
}

// stale reports whether held was left by a process gone from this host.
func stale(held LockInfo, host string) bool {
	if held.Host != host || held.PID <= 0 {
		return false
	}
	err := syscall.Kill(held.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}

// removeStale removes the lock at path if it is still the stale one: it
// moves it aside first, so that a fresh lock taken by someone else in the
// meantime is put back instead of removed.
func removeStale(path string, held LockInfo) error {
	aside := path + ".stale." + strconv.Itoa(os.Getpid())
	if err := os.Rename(path, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	b, err := os.ReadFile(aside)
	var got LockInfo
	if err == nil {
		err = json.Unmarshal(b, &got)
	}
	if err != nil || !sameLock(got, held) {
		// Not the lock we judged stale: put it back if nobody took the
		// place, and let the caller find it held.
		_ = os.Link(aside, path)
	}
	return os.Remove(aside)
}

func sameLock(a, b LockInfo) bool {
	return a.Holder == b.Holder && a.PID == b.PID && a.Host == b.Host && a.Since.Equal(b.Since)
}
