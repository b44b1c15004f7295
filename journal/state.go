package journal

// State is what the records of the current upgrade say: the records since
// the last PlanStep intent (all records when there is none).
type State struct {
	// Plan is the PlanStep intent that opened the current upgrade, or nil.
	Plan *Record
	// Finished: the current upgrade's PlanStep done was written.
	Finished bool
	// Done maps each finished step to its done record.
	Done map[string]Record
	// Pending maps each step that has an intent (or a failure) after its
	// last done, or no done at all, to that last intent.
	Pending map[string]Record
	// Failed maps each step whose last record is a failure to it.
	Failed map[string]Record
	// Started maps every step that has an intent to its first intent.
	Started map[string]Record
	// Order lists steps in the order of their first intent.
	Order []string
	// Notes are the note records, oldest first.
	Notes []Record
	// Records are all the records of the current upgrade, oldest first.
	Records []Record
}

// IsDone reports whether step is finished.
func (s State) IsDone(step string) bool { _, ok := s.Done[step]; return ok }

// IsPending reports whether step was started (or failed) and not finished.
func (s State) IsPending(step string) bool { _, ok := s.Pending[step]; return ok }

// Unfinished reports whether an upgrade was opened and not closed.
func (s State) Unfinished() bool { return s.Plan != nil && !s.Finished }

// LastNote returns the latest note of step.
func (s State) LastNote(step string) (Record, bool) {
	for i := len(s.Notes) - 1; i >= 0; i-- {
		if s.Notes[i].Step == step {
			return s.Notes[i], true
		}
	}
	return Record{}, false
}

// State interprets the journal's records.
func (j *Journal) State() State {
	return Interpret(j.Records())
}

// Interpret builds the State of records (oldest first).
func Interpret(records []Record) State {
	start := 0
	for i := len(records) - 1; i >= 0; i-- {
		if records[i].Step == PlanStep && records[i].Phase == Intent {
			start = i
			break
		}
	}
	s := State{
		Done:    map[string]Record{},
		Pending: map[string]Record{},
		Failed:  map[string]Record{},
		Started: map[string]Record{},
		Records: append([]Record(nil), records[start:]...),
	}
	for _, r := range s.Records {
		if r.Step == PlanStep {
			switch r.Phase {
			case Intent:
				rr := r
				s.Plan = &rr
			case Done:
				s.Finished = true
			}
			continue
		}
		switch r.Phase {
		case Intent:
			if _, ok := s.Started[r.Step]; !ok {
				s.Started[r.Step] = r
				s.Order = append(s.Order, r.Step)
			}
			s.Pending[r.Step] = r
			delete(s.Failed, r.Step)
			delete(s.Done, r.Step)
		case Done:
			s.Done[r.Step] = r
			delete(s.Pending, r.Step)
			delete(s.Failed, r.Step)
		case Failed:
			s.Failed[r.Step] = r
		case Note:
			s.Notes = append(s.Notes, r)
		}
	}
	return s
}
