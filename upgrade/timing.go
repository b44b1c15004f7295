package upgrade

import (
	"encoding/json"
	"time"
)

// Timing is where a step's time went: its total, and the time spent in
// each activity inside it (waiting for the store to settle, restarting
// replicas, migrating, backing up, remediating). It is the "timing" of a
// step's done record, in milliseconds: {"total_ms": …, "settle_ms": …}.
type Timing struct {
	Total       time.Duration
	Settle      time.Duration
	Restart     time.Duration
	Migration   time.Duration
	Backup      time.Duration
	Remediation time.Duration
}

// add counts d under category.
func (t *Timing) add(category string, d time.Duration) {
	switch category {
	case CategorySettle:
		t.Settle += d
	case CategoryRestart:
		t.Restart += d
	case CategoryMigration:
		t.Migration += d
	case CategoryBackup:
		t.Backup += d
	case CategoryRemediation:
		t.Remediation += d
	}
}

// ByCategory returns the activities' times by category, without Total
// and without zeros.
func (t Timing) ByCategory() map[string]time.Duration {
	out := map[string]time.Duration{}
	for c, d := range map[string]time.Duration{CategorySettle: t.Settle, CategoryRestart: t.Restart,
		CategoryMigration: t.Migration, CategoryBackup: t.Backup, CategoryRemediation: t.Remediation} {
		if d > 0 {
			out[c] = d
		}
	}
	return out
}

// timingJSON is Timing in milliseconds, with fractions: an activity that
// took under a millisecond still shows that it happened.
type timingJSON struct {
	Total       float64 `json:"total_ms"`
	Settle      float64 `json:"settle_ms,omitempty"`
	Restart     float64 `json:"restart_ms,omitempty"`
	Migration   float64 `json:"migration_ms,omitempty"`
	Backup      float64 `json:"backup_ms,omitempty"`
	Remediation float64 `json:"remediation_ms,omitempty"`
}

// MarshalJSON writes milliseconds.
func (t Timing) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return json.Marshal(timingJSON{Total: ms(t.Total), Settle: ms(t.Settle), Restart: ms(t.Restart),
		Migration: ms(t.Migration), Backup: ms(t.Backup), Remediation: ms(t.Remediation)})
}

// UnmarshalJSON reads milliseconds.
func (t *Timing) UnmarshalJSON(b []byte) error {
	var j timingJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	ms := func(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }
	*t = Timing{Total: ms(j.Total), Settle: ms(j.Settle), Restart: ms(j.Restart), Migration: ms(j.Migration),
		Backup: ms(j.Backup), Remediation: ms(j.Remediation)}
	return nil
}

// stepDone is the detail of a step's done record: what the step did (the
// fields its act returned) and where its time went.
type stepDone struct {
	Timing Timing         `json:"timing"`
	Result map[string]any `json:"result,omitempty"`
}

// backupPath is the path of the backup a backup step wrote, or "".
func (d stepDone) backupPath() string {
	p, _ := d.Result["path"].(string)
	return p
}

// stepTimer counts the time of the step that runs now, by category.
type stepTimer struct{ t Timing }

// since counts the time since start under category. A nil timer (outside
// a step) counts nothing.
func (s *stepTimer) since(category string, start time.Time) {
	if s != nil {
		s.t.add(category, time.Since(start))
	}
}
