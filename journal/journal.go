package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// File names inside a journal directory.
const (
	FileName = "journal.jsonl"
	LockName = "lock"
)

// PlanStep is the step whose Intent opens an upgrade (its detail holds the
// plan) and whose Done closes it.
const PlanStep = "plan"

// Phase says what a record records.
type Phase string

// The phases.
const (
	Intent Phase = "intent"
	Done   Phase = "done"
	Failed Phase = "failed"
	Note   Phase = "note"
)

// Record is one line of the journal.
type Record struct {
	Seq    int64           `json:"seq"`
	Time   time.Time       `json:"time"`
	Step   string          `json:"step"`
	Phase  Phase           `json:"phase"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// Decode unmarshals the record's detail into v; an empty detail leaves v
// unchanged.
func (r Record) Decode(v any) error {
	if len(r.Detail) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Detail, v); err != nil {
		return fmt.Errorf("decode detail of record %d (%s %s): %w", r.Seq, r.Step, r.Phase, err)
	}
	return nil
}

// TornTail describes a torn last line found when the journal was read.
type TornTail struct {
	// Offset is where the torn line starts; Bytes is its length.
	Offset, Bytes int64
}

// Journal is a cluster's upgrade journal. Its methods are safe for
// concurrent use.
type Journal struct {
	dir string

	mu      sync.Mutex
	records []Record
	torn    *TornTail
	f       *os.File // open for append while the lock is held
	lock    *LockInfo
	now     func() time.Time
	// mirror, when set, gets every record once it is synced here.
	mirror func(Record) error
}

// Open reads the journal in dir. A missing directory or file is an empty
// journal; nothing is created or changed until Lock.
func Open(dir string) (*Journal, error) {
	j := &Journal{dir: dir, now: time.Now}
	if err := j.load(); err != nil {
		return nil, err
	}
	return j, nil
}

// Dir is the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Path is the journal file's path.
func (j *Journal) Path() string { return filepath.Join(j.dir, FileName) }

// Torn reports the torn last line found by the last read, or nil.
func (j *Journal) Torn() *TornTail {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.torn == nil {
		return nil
	}
	t := *j.torn
	return &t
}

// Records returns every record, oldest first. The slice is a copy.
func (j *Journal) Records() []Record {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Record(nil), j.records...)
}

// Reload reads the file again, for readers following a journal that
// another process writes.
func (j *Journal) Reload() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f != nil {
		return nil // we are the writer: memory is the truth
	}
	return j.loadLocked()
}

func (j *Journal) load() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.loadLocked()
}

func (j *Journal) loadLocked() error {
	data, err := os.ReadFile(j.Path())
	if errors.Is(err, fs.ErrNotExist) {
		j.records, j.torn = nil, nil
		return nil
	}
	if err != nil {
		return fmt.Errorf("read journal: %w", err)
	}
	recs, torn, err := parse(j.Path(), data)
	if err != nil {
		return err
	}
	j.records, j.torn = recs, torn
	return nil
}

// parse splits data into records. Only the last line may be malformed (a
// torn write); it is reported, not returned.
func parse(path string, data []byte) ([]Record, *TornTail, error) {
	var recs []Record
	var off int64
	line := 0
	for len(data) > 0 {
		line++
		i := bytes.IndexByte(data, '\n')
		last := i < 0
		var raw []byte
		if last {
			raw = data
		} else {
			raw = data[:i]
			last = i == len(data)-1
		}
		var r Record
		err := json.Unmarshal(raw, &r)
		if err == nil && r.Step == "" {
			err = errors.New("record has no step")
		}
		if err == nil && r.Seq != int64(len(recs))+1 {
			err = fmt.Errorf("seq %d where %d was expected", r.Seq, len(recs)+1)
		}
		complete := i >= 0
		if err != nil || !complete {
			if last {
				return recs, &TornTail{Offset: off, Bytes: int64(len(data))}, nil
			}
			return nil, nil, fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, path, line, err)
		}
		recs = append(recs, r)
		off += int64(i + 1)
		data = data[i+1:]
	}
	return recs, nil, nil
}

// Append writes one record and syncs it. It needs the lock.
func (j *Journal) Append(step string, phase Phase, detail any) (Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return Record{}, fmt.Errorf("append %s %s: %w", step, phase, ErrNotLocked)
	}
	r := Record{Seq: int64(len(j.records)) + 1, Time: j.now().UTC(), Step: step, Phase: phase}
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return Record{}, fmt.Errorf("append %s %s: encode detail: %w", step, phase, err)
		}
		if string(b) != "null" {
			r.Detail = b
		}
	}
	line, err := json.Marshal(r)
	if err != nil {
		return Record{}, fmt.Errorf("append %s %s: %w", step, phase, err)
	}
	line = append(line, '\n')
	if _, err := j.f.Write(line); err != nil {
		return Record{}, fmt.Errorf("append %s %s: %w", step, phase, err)
	}
	if err := j.f.Sync(); err != nil {
		return Record{}, fmt.Errorf("append %s %s: sync: %w", step, phase, err)
	}
	j.records = append(j.records, r)
	if j.mirror != nil {
		if err := j.mirror(r); err != nil {
			return r, fmt.Errorf("append %s %s: written here, not mirrored: %w", step, phase, err)
		}
	}
	return r, nil
}

// SetMirror makes Append hand every record, once synced here, to m (a
// copy the cluster keeps). An error of m is Append's: the record is
// written here all the same. Nil stops mirroring.
func (j *Journal) SetMirror(m func(Record) error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.mirror = m
}

// Adopt replaces the journal's records with records, a journal kept
// elsewhere (the cluster's copy, further along than this one). It needs the
// lock. The file is rewritten whole, synced and renamed into place.
func (j *Journal) Adopt(records []Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("adopt records: %w", ErrNotLocked)
	}
	var buf bytes.Buffer
	for i, r := range records {
		if r.Seq != int64(i+1) || r.Step == "" {
			return fmt.Errorf("adopt records: %w: record %d has seq %d, step %q", ErrCorrupt, i+1, r.Seq, r.Step)
		}
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("adopt records: %w", err)
		}
		buf.Write(append(line, '\n'))
	}
	tmp, err := os.CreateTemp(j.dir, "."+FileName+".adopt-*")
	if err != nil {
		return fmt.Errorf("adopt records: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(buf.Bytes())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), j.Path())
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		return fmt.Errorf("adopt records: %w", err)
	}
	j.f.Close()
	j.f = nil
	if err := j.openForAppend(); err != nil {
		return fmt.Errorf("adopt records: %w", err)
	}
	return nil
}

// openForAppend is called with the lock file held: it re-reads the file
// (another process may have written since Open), cuts a torn tail and
// opens the file for appending.
func (j *Journal) openForAppend() error {
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return fmt.Errorf("create journal directory: %w", err)
	}
	if err := j.loadLocked(); err != nil {
		return err
	}
	f, err := os.OpenFile(j.Path(), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open journal: %w", err)
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return fmt.Errorf("open journal: %w", err)
	}
	if j.torn != nil {
		end = j.torn.Offset
		if err := f.Truncate(end); err != nil {
			f.Close()
			return fmt.Errorf("cut torn last line of journal: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("cut torn last line of journal: %w", err)
		}
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("open journal: %w", err)
	}
	if err := syncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	j.f = f
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
