package upgrade

import (
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/plan"
)

// Step names, the last element of a step ID.
const (
	StepPreflight = "preflight"
	StepBackup    = "backup"
	StepReplace   = "replace"
	StepWait      = "wait"
	StepMigrate   = "migrate"
	StepFinalize  = "finalize"
)

// HopPrefix is the prefix of every step ID of hop h: "hop/2.1.4->2.2.5".
func HopPrefix(h plan.Hop) string { return "hop/" + h.ID() }

// StepID is the ID of hop h's step name ("preflight", "backup", "migrate",
// "finalize").
func StepID(h plan.Hop, name string) string { return HopPrefix(h) + "/" + name }

// RollStepID is the ID of the roll step name ("replace", "wait") of
// replica id in hop h: "hop/2.1.4->2.2.5/roll/replica-2/replace".
func RollStepID(h plan.Hop, id, name string) string {
	return HopPrefix(h) + "/roll/" + id + "/" + name
}

// rollNoteStep is the step of the note that records a hop's roll order.
func rollNoteStep(h plan.Hop) string { return HopPrefix(h) + "/roll" }

// Steps lists every step ID of p in the order Run runs them, rolling the
// replicas of every hop in the order given (use RollOrder for the order
// Run would choose now; Run chooses it again when each hop's roll begins,
// after the leader may have moved).
func Steps(p plan.Plan, replicaIDs []string) []string {
	var ids []string
	for _, h := range p.Hops {
		ids = append(ids, StepID(h, StepPreflight))
		if h.Migrates {
			ids = append(ids, StepID(h, StepBackup))
		}
		for _, r := range replicaIDs {
			ids = append(ids, RollStepID(h, r, StepReplace), RollStepID(h, r, StepWait))
		}
		if h.Migrates {
			ids = append(ids, StepID(h, StepMigrate))
		}
		ids = append(ids, StepID(h, StepFinalize))
	}
	return ids
}

// RollOrder orders replica IDs for a roll: followers first by ID, the
// leader (per st) last, so that leadership changes once per hop.
func RollOrder(st driver.Status, ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	leader := st.Leader()
	if i := slices.Index(out, leader); i >= 0 {
		out = append(slices.Delete(out, i, i+1), leader)
	}
	return out
}

// Category is the timing category of a step ID: "preflight", "backup",
// "restart" (replace), "settle" (wait), "migration", "finalize",
// "remediation", or "" for IDs that are not steps.
func Category(step string) string {
	switch stepName(step) {
	case StepPreflight:
		return "preflight"
	case StepBackup:
		return "backup"
	case StepReplace:
		return "restart"
	case StepWait:
		return "settle"
	case StepMigrate:
		return "migration"
	case StepFinalize:
		return "finalize"
	}
	if strings.Contains(step, "/remediate/") {
		return "remediation"
	}
	return ""
}

func stepName(step string) string { return step[strings.LastIndexByte(step, '/')+1:] }

// hopOf returns the hop ID part of a step ID ("2.1.4->2.2.5"), or "".
func hopOf(step string) string {
	rest, ok := strings.CutPrefix(step, "hop/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return id
}

// replicaOf returns the replica of a roll or remediation step ID, or "".
func replicaOf(step string) string {
	parts := strings.Split(step, "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "roll" || parts[i] == "restart" {
			return parts[i+1]
		}
	}
	return ""
}

// sameVersion reports whether a driver's version string names v.
func sameVersion(s string, v *semver.Version) bool {
	if s == "" || v == nil {
		return false
	}
	got, err := semver.NewVersion(s)
	return err == nil && got.Equal(v)
}
