package journal_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// FuzzOpen feeds arbitrary bytes to the journal reader: it never panics,
// and what it accepts is well formed (sequence numbers from 1, a step on
// every record, a torn tail only at the end) and reads back the same once
// written again.
func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","step":"plan","phase":"intent","detail":{}}` + "\n"))
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","step":"plan","phase":"intent"}` + "\n" + `{"seq":2,"ti`))
	f.Add([]byte("not json\n"))
	f.Add([]byte(`{"seq":2,"step":"x","phase":"done"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, journal.FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := journal.Open(dir)
		if err != nil {
			if !errors.Is(err, journal.ErrCorrupt) {
				t.Fatalf("Open: %v, want nil or ErrCorrupt", err)
			}
			return
		}
		recs := j.Records()
		for i, r := range recs {
			if r.Seq != int64(i+1) || r.Step == "" {
				t.Fatalf("record %d: seq %d step %q", i, r.Seq, r.Step)
			}
		}
		if torn := j.Torn(); torn != nil && torn.Offset+torn.Bytes != int64(len(data)) {
			t.Fatalf("torn tail %+v does not end the data (%d bytes)", torn, len(data))
		}
		var again []byte
		for _, r := range recs {
			line, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			again = append(append(again, line...), '\n')
		}
		dir2 := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir2, journal.FileName), again, 0o600); err != nil {
			t.Fatal(err)
		}
		j2, err := journal.Open(dir2)
		if err != nil || len(j2.Records()) != len(recs) || j2.Torn() != nil {
			t.Fatalf("rewritten journal: %v, %d records (want %d), torn %v", err, len(j2.Records()), len(recs), j2.Torn())
		}
	})
}

// TestMirrorAndAdopt: a mirror gets every record once it is synced, its
// error is Append's; Adopt takes a longer journal from elsewhere and
// appending goes on after it.
func TestMirrorAndAdopt(t *testing.T) {
	j := locked(t, t.TempDir())
	var mirrored []journal.Record
	j.SetMirror(func(r journal.Record) error {
		mirrored = append(mirrored, r)
		if r.Step == "unreachable" {
			return errors.New("cluster unreachable")
		}
		return nil
	})
	mustAppend(t, j, journal.PlanStep, journal.Intent, nil)
	if _, err := j.Append("unreachable", journal.Note, nil); err == nil {
		t.Error("a mirror's error is not Append's")
	}
	if len(mirrored) != 2 || len(j.Records()) != 2 {
		t.Fatalf("mirrored %d, journal %d records; want 2 and 2", len(mirrored), len(j.Records()))
	}

	other := locked(t, t.TempDir())
	for _, s := range []string{journal.PlanStep, "a", "b", "c"} {
		mustAppend(t, other, s, journal.Note, nil)
	}
	if err := j.Adopt(other.Records()); err != nil {
		t.Fatal(err)
	}
	j.SetMirror(nil)
	mustAppend(t, j, "d", journal.Note, nil)
	again, err := journal.Open(j.Dir())
	if err != nil {
		t.Fatal(err)
	}
	recs := again.Records()
	if len(recs) != 5 || recs[3].Step != "c" || recs[4].Step != "d" || recs[4].Seq != 5 {
		t.Fatalf("after Adopt and Append: %+v", recs)
	}
	bad := append(other.Records()[:1], journal.Record{Seq: 7, Step: "x"})
	if err := j.Adopt(bad); !errors.Is(err, journal.ErrCorrupt) {
		t.Errorf("Adopt of records out of sequence: %v, want ErrCorrupt", err)
	}
}
