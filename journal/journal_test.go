package journal_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/journal"
)

func locked(t *testing.T, dir string) *journal.Journal {
	t.Helper()
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Lock("test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Unlock() })
	return j
}

func mustAppend(t *testing.T, j *journal.Journal, step string, ph journal.Phase, detail any) {
	t.Helper()
	if _, err := j.Append(step, ph, detail); err != nil {
		t.Fatal(err)
	}
}

func TestAppendAndReadBack(t *testing.T) {
	dir := t.TempDir()
	j := locked(t, dir)
	mustAppend(t, j, journal.PlanStep, journal.Intent, map[string]string{"to": "3.1.2"})
	mustAppend(t, j, "a", journal.Intent, nil)
	mustAppend(t, j, "a", journal.Done, map[string]int{"n": 1})
	mustAppend(t, j, "b", journal.Intent, nil)
	mustAppend(t, j, "b", journal.Failed, map[string]string{"error": "boom"})
	mustAppend(t, j, "c", journal.Note, map[string][]string{"order": {"r2", "r1"}})
	if err := j.Unlock(); err != nil {
		t.Fatal(err)
	}

	r, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := r.Records()
	if len(recs) != 6 {
		t.Fatalf("read %d records, want 6", len(recs))
	}
	for i, rec := range recs {
		if rec.Seq != int64(i+1) {
			t.Errorf("record %d has seq %d", i, rec.Seq)
		}
	}
	st := r.State()
	if !st.Unfinished() {
		t.Error("plan without done should be unfinished")
	}
	if !st.IsDone("a") || st.IsDone("b") || !st.IsPending("b") {
		t.Errorf("done=%v pending=%v", st.Done, st.Pending)
	}
	if _, ok := st.Failed["b"]; !ok {
		t.Error("b should be failed")
	}
	note, ok := st.LastNote("c")
	if !ok {
		t.Fatal("note of c missing")
	}
	var d map[string][]string
	if err := note.Decode(&d); err != nil || strings.Join(d["order"], ",") != "r2,r1" {
		t.Errorf("note detail = %v, %v", d, err)
	}
}

func TestStateStartsAtLastPlan(t *testing.T) {
	j := locked(t, t.TempDir())
	mustAppend(t, j, journal.PlanStep, journal.Intent, nil)
	mustAppend(t, j, "a", journal.Intent, nil)
	mustAppend(t, j, "a", journal.Done, nil)
	mustAppend(t, j, journal.PlanStep, journal.Done, nil)
	if st := j.State(); st.Unfinished() || !st.Finished {
		t.Fatalf("closed plan: unfinished=%v finished=%v", st.Unfinished(), st.Finished)
	}
	mustAppend(t, j, journal.PlanStep, journal.Intent, nil)
	st := j.State()
	if !st.Unfinished() || st.IsDone("a") {
		t.Errorf("new plan must start empty: done=%v", st.Done)
	}
}

func TestAppendNeedsLock(t *testing.T) {
	j, err := journal.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append("a", journal.Intent, nil); !errors.Is(err, journal.ErrNotLocked) {
		t.Fatalf("append without lock: %v, want ErrNotLocked", err)
	}
}

func TestOpenMissingDirIsEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	j, err := journal.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Records()) != 0 || j.State().Plan != nil {
		t.Fatal("missing journal should be empty")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatal("Open must not create the directory")
	}
}

func TestTornTail(t *testing.T) {
	tests := []struct {
		name string
		tail string
	}{
		{name: "half a record", tail: `{"seq":3,"time":"2024-01-01T00:00:00Z","st`},
		{name: "garbage line with newline", tail: "\x00\x00\x00\n"},
		{name: "wrong seq", tail: `{"seq":9,"time":"2024-01-01T00:00:00Z","step":"x","phase":"done"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			j := locked(t, dir)
			mustAppend(t, j, "a", journal.Intent, nil)
			mustAppend(t, j, "a", journal.Done, nil)
			if err := j.Unlock(); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(filepath.Join(dir, journal.FileName), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(tt.tail)
			f.Close()

			r, err := journal.Open(dir)
			if err != nil {
				t.Fatalf("open with torn tail: %v", err)
			}
			if r.Torn() == nil || len(r.Records()) != 2 {
				t.Fatalf("torn=%v records=%d", r.Torn(), len(r.Records()))
			}
			// Taking the lock cuts the tail; appends continue the sequence.
			if _, err := r.Lock("again"); err != nil {
				t.Fatal(err)
			}
			mustAppend(t, r, "b", journal.Intent, nil)
			r.Unlock()
			again, err := journal.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			if again.Torn() != nil || len(again.Records()) != 3 || again.Records()[2].Seq != 3 {
				t.Fatalf("after repair: torn=%v records=%+v", again.Torn(), again.Records())
			}
		})
	}
}

func TestCorruptMiddleLine(t *testing.T) {
	dir := t.TempDir()
	good := func(seq int) string {
		b, _ := json.Marshal(journal.Record{Seq: int64(seq), Time: time.Now(), Step: "s", Phase: journal.Note})
		return string(b) + "\n"
	}
	data := good(1) + "not json\n" + good(2)
	if err := os.WriteFile(filepath.Join(dir, journal.FileName), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.Open(dir); !errors.Is(err, journal.ErrCorrupt) {
		t.Fatalf("open corrupt journal: %v, want ErrCorrupt", err)
	}
}

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
