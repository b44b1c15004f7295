package journal_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/journal"
)

func TestLockExcludesSecondHolder(t *testing.T) {
	dir := t.TempDir()
	first := locked(t, dir)
	_ = first
	second, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = second.Lock("second")
	if !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	var le *journal.LockedError
	if !errors.As(err, &le) || le.Holder != "test" || le.Since.IsZero() || le.PID != os.Getpid() {
		t.Fatalf("locked error = %+v", le)
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := second.Lock("second"); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	second.Unlock()
	if _, err := os.Stat(filepath.Join(dir, journal.LockName)); !os.IsNotExist(err) {
		t.Fatal("lock file should be gone after Unlock")
	}
}

func TestStaleLockTakenOver(t *testing.T) {
	dir := t.TempDir()
	host, _ := os.Hostname()
	tests := []struct {
		name     string
		info     journal.LockInfo
		takeover bool
	}{
		{name: "dead pid on this host", info: journal.LockInfo{Holder: "old", PID: 0x7ffffff0, Host: host, Since: time.Now()}, takeover: true},
		{name: "live pid on this host", info: journal.LockInfo{Holder: "alive", PID: os.Getpid(), Host: host, Since: time.Now()}},
		{name: "other host", info: journal.LockInfo{Holder: "remote", PID: 0x7ffffff0, Host: host + "-elsewhere", Since: time.Now()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.info)
			if err := os.WriteFile(filepath.Join(dir, journal.LockName), b, 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(filepath.Join(dir, journal.LockName))
			j, err := journal.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			prev, err := j.Lock("new")
			if !tt.takeover {
				if !errors.Is(err, journal.ErrLocked) {
					t.Fatalf("lock: %v, want ErrLocked", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("lock over stale: %v", err)
			}
			defer j.Unlock()
			if prev == nil || prev.Holder != "old" {
				t.Fatalf("takeover = %+v, want the stale lock", prev)
			}
			got, err := journal.ReadLock(dir)
			if err != nil || got.Holder != "new" || got.PID != os.Getpid() {
				t.Fatalf("lock now %+v, %v", got, err)
			}
		})
	}
}

func TestLockRace(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j, err := journal.Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := j.Lock("racer"); err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			} else if !errors.Is(err, journal.ErrLocked) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d holders, want exactly 1", won)
	}
}
