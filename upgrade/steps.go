package upgrade

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
)

// Step names: the kind of a step, and the last word of its ID.
const (
	StepPreflight = "preflight"
	StepBackup    = "backup"
	// StepRoll is the note that records a hop's roll order; the roll's
	// steps are StepReplace and StepWait of each replica.
	StepRoll     = "roll"
	StepReplace  = "replace"
	StepWait     = "wait"
	StepMigrate  = "migrate"
	StepFinalize = "finalize"
	// StepRemediate names remediation records: a round's note and its
	// actions (Action).
	StepRemediate = "remediate"
	// StepRestart is a replica's restart in a rolling restart.
	StepRestart = "restart"
	// StepRun is the note of each run (a first run or a resume).
	StepRun = "run"
	// StepPlan is the record that opens and closes an upgrade.
	StepPlan = journal.PlanStep
)

// Remediation actions: the Action of a remediation record (restart,
// settled, gave-up) and the "action" field of remediation events (all of
// them).
const (
	ActionStart   = "start"
	ActionRestart = "restart"
	ActionRolling = "rolling-restart"
	ActionSettled = "settled"
	ActionGaveUp  = "gave-up"
)

// StepRef names a step, or another journal record, by its parts. Its
// String is the step ID used in the journal, events, logs and errors:
//
//	plan, run                                     the upgrade's own records
//	hop/2.1.4->2.2.5/preflight                    a hop's step (backup, migrate, finalize)
//	hop/2.1.4->2.2.5/roll                         the note of the roll order
//	hop/2.1.4->2.2.5/roll/replica-2/replace       a replica's roll step (wait)
//	hop/2.1.4->2.2.5/remediate/round-1            a remediation round's note
//	hop/2.1.4->2.2.5/remediate/round-1/restart/replica-3
//	hop/2.1.4->2.2.5/remediate/round-1/settled    (gave-up)
//	restart/replica-2                             a rolling restart's step
type StepRef struct {
	// Hop is the hop's ID, "2.1.4->2.2.5"; "" outside a hop.
	Hop string
	// Name is the step's kind: one of the Step* names.
	Name string
	// Replica is the replica a roll step, a remediation restart or a
	// rolling restart acts on.
	Replica string
	// Round is a remediation record's round, from 1.
	Round int
	// Action is a remediation record's action: ActionRestart,
	// ActionSettled, ActionGaveUp, or "" for the round's note.
	Action string
}

// HopStep is the ref of hop h's step name (preflight, backup, roll,
// migrate, finalize).
func HopStep(h plan.Hop, name string) StepRef { return StepRef{Hop: h.ID(), Name: name} }

// RollStep is the ref of replica id's roll step name (replace, wait) in hop h.
func RollStep(h plan.Hop, id, name string) StepRef {
	return StepRef{Hop: h.ID(), Name: name, Replica: id}
}

func (s StepRef) String() string {
	var b strings.Builder
	if s.Hop != "" {
		b.WriteString("hop/" + s.Hop + "/")
	}
	switch s.Name {
	case StepReplace, StepWait:
		b.WriteString(StepRoll + "/" + s.Replica + "/" + s.Name)
	case StepRemediate:
		b.WriteString(StepRemediate + "/round-" + strconv.Itoa(s.Round))
		switch s.Action {
		case "":
		case ActionRestart:
			b.WriteString("/" + ActionRestart + "/" + s.Replica)
		default:
			b.WriteString("/" + s.Action)
		}
	case StepRestart:
		b.WriteString(StepRestart + "/" + s.Replica)
	default:
		b.WriteString(s.Name)
	}
	return b.String()
}

// stepNames are the names a StepRef can have.
var stepNames = map[string]bool{StepPreflight: true, StepBackup: true, StepRoll: true, StepReplace: true, StepWait: true,
	StepMigrate: true, StepFinalize: true, StepRemediate: true, StepRestart: true, StepRun: true, StepPlan: true}

// remediationRecords are the actions a remediation record can have ("" is
// the round's own note).
var remediationRecords = map[string]bool{"": true, ActionRestart: true, ActionSettled: true, ActionGaveUp: true}

// ParseStep reads a step ID written by StepRef.String.
func ParseStep(id string) (StepRef, error) {
	var s StepRef
	rest := id
	if r, ok := strings.CutPrefix(id, "hop/"); ok {
		s.Hop, rest, _ = strings.Cut(r, "/")
	}
	parts := strings.Split(rest, "/")
	switch parts[0] {
	case StepRoll:
		s.Name = StepRoll
		if len(parts) == 3 {
			s.Replica, s.Name = parts[1], parts[2]
		}
	case StepRestart:
		s.Name = StepRestart
		if len(parts) > 1 {
			s.Replica = parts[1]
		}
	case StepRemediate:
		s.Name = StepRemediate
		parseRemediation(&s, parts[1:])
	default:
		s.Name = parts[0]
	}
	needsReplica := s.Name == StepReplace || s.Name == StepWait || s.Name == StepRestart || s.Action == ActionRestart
	switch {
	case !stepNames[s.Name], needsReplica && s.Replica == "", s.String() != id,
		s.Name == StepRemediate && (s.Round < 1 || !remediationRecords[s.Action]):
		return StepRef{}, fmt.Errorf("parse step %q: not a step ID", id)
	}
	return s, nil
}

// parseRemediation reads "round-N[/ACTION[/REPLICA]]" into s.
func parseRemediation(s *StepRef, parts []string) {
	if len(parts) == 0 {
		return
	}
	if n, ok := strings.CutPrefix(parts[0], "round-"); ok {
		s.Round, _ = strconv.Atoi(n)
	}
	if len(parts) > 1 {
		s.Action = parts[1]
	}
	if len(parts) > 2 {
		s.Replica = parts[2]
	}
}

// parseStep is ParseStep for IDs the engine wrote; a foreign ID yields
// the zero StepRef.
func parseStep(id string) StepRef {
	s, _ := ParseStep(id)
	return s
}

// Step categories: what a step's time is counted as.
const (
	CategoryPreflight   = "preflight"
	CategoryBackup      = "backup"
	CategoryRestart     = "restart"
	CategorySettle      = "settle"
	CategoryMigration   = "migration"
	CategoryFinalize    = "finalize"
	CategoryRemediation = "remediation"
)

// Category is the timing category of the step: replace counts as
// restart, wait as settle, remediation records as remediation; "" for
// records that are not steps.
func (s StepRef) Category() string {
	switch s.Name {
	case StepPreflight:
		return CategoryPreflight
	case StepBackup:
		return CategoryBackup
	case StepReplace:
		return CategoryRestart
	case StepWait:
		return CategorySettle
	case StepMigrate:
		return CategoryMigration
	case StepFinalize:
		return CategoryFinalize
	case StepRemediate:
		return CategoryRemediation
	}
	return ""
}

// HopSteps lists hop h's steps in the order the engine runs them:
// preflight, backup (if the hop migrates), the roll, migrate (if it
// migrates), finalize. The roll is RollSteps of order; with no order, one
// StepRoll entry stands for it, to be expanded once the order is chosen
// (the engine chooses it when the roll begins).
func HopSteps(h plan.Hop, order []string) []StepRef {
	steps := []StepRef{HopStep(h, StepPreflight)}
	if h.Migrates {
		steps = append(steps, HopStep(h, StepBackup))
	}
	if order == nil {
		steps = append(steps, HopStep(h, StepRoll))
	}
	steps = append(steps, RollSteps(h, order)...)
	if h.Migrates {
		steps = append(steps, HopStep(h, StepMigrate))
	}
	return append(steps, HopStep(h, StepFinalize))
}

// RollSteps lists the roll's steps of hop h: replace and wait for each
// replica, in order.
func RollSteps(h plan.Hop, order []string) []StepRef {
	var steps []StepRef
	for _, id := range order {
		steps = append(steps, RollStep(h, id, StepReplace), RollStep(h, id, StepWait))
	}
	return steps
}

// Steps lists every step ID of p in the order Run runs them, rolling the
// replicas of every hop in the order given (use RollOrder for the order
// Run would choose now; Run chooses it again when each hop's roll begins,
// after the leader may have moved).
func Steps(p plan.Plan, replicaIDs []string) []string {
	var ids []string
	order := replicaIDs
	if order == nil {
		order = []string{}
	}
	for _, h := range p.Hops {
		for _, s := range HopSteps(h, order) {
			ids = append(ids, s.String())
		}
	}
	return ids
}

// RollOrder orders replica IDs for a roll: followers first by ID, the
// leader (per st) last, so that leadership changes once per hop.
func RollOrder(st Status, ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	leader := st.Leader()
	if i := slices.Index(out, leader); i >= 0 {
		out = append(slices.Delete(out, i, i+1), leader)
	}
	return out
}

// sameVersion reports whether a driver's version string names v.
func sameVersion(s string, v *semver.Version) bool {
	if s == "" || v == nil {
		return false
	}
	got, err := semver.NewVersion(s)
	return err == nil && got.Equal(v)
}
