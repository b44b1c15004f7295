package upgrade

import (
	"fmt"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
)

// planRecord is the detail of the journal's plan intent.
type planRecord struct {
	Cluster string      `json:"cluster"`
	Driver  string      `json:"driver"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	Hops    []hopRecord `json:"hops"`
}

type hopRecord struct {
	ID         string `json:"id"`
	From       string `json:"from"`
	To         string `json:"to"`
	Kind       string `json:"kind"`
	Migrates   bool   `json:"migrates"`
	FromSchema int    `json:"from_schema,omitempty"`
	ToSchema   int    `json:"to_schema,omitempty"`
	Reason     string `json:"reason,omitempty"`
}

func encodePlan(p plan.Plan, cluster, drv string) planRecord {
	pr := planRecord{Cluster: cluster, Driver: drv, From: p.From.String(), To: p.To.String()}
	for _, h := range p.Hops {
		pr.Hops = append(pr.Hops, hopRecord{ID: h.ID(), From: h.From.String(), To: h.To.String(), Kind: string(h.Kind),
			Migrates: h.Migrates, FromSchema: h.FromSchema, ToSchema: h.ToSchema, Reason: h.Reason})
	}
	return pr
}

// changedNothing reports whether the journal's unfinished upgrade has begun
// no step that changes the cluster: no replace and no migration started.
func changedNothing(st journal.State) bool {
	for id := range st.Started {
		switch parseStep(id).Name {
		case StepReplace, StepMigrate:
			return false
		}
	}
	return true
}

func decodePlan(rec journal.Record) (plan.Plan, error) {
	var pr planRecord
	if err := rec.Decode(&pr); err != nil {
		return plan.Plan{}, fmt.Errorf("%w: %w", ErrBadJournal, err)
	}
	return pr.plan()
}

func (pr planRecord) plan() (plan.Plan, error) {
	parse := func(s string) (*semver.Version, error) {
		v, err := policy.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("%w: plan record: %w", ErrBadJournal, err)
		}
		return v, nil
	}
	var p plan.Plan
	var err error
	if p.From, err = parse(pr.From); err != nil {
		return p, err
	}
	if p.To, err = parse(pr.To); err != nil {
		return p, err
	}
	for _, hr := range pr.Hops {
		h := plan.Hop{Kind: policy.Kind(hr.Kind), Migrates: hr.Migrates, FromSchema: hr.FromSchema, ToSchema: hr.ToSchema, Reason: hr.Reason}
		if h.From, err = parse(hr.From); err != nil {
			return p, err
		}
		if h.To, err = parse(hr.To); err != nil {
			return p, err
		}
		p.Hops = append(p.Hops, h)
	}
	return p, nil
}

// Unfinished returns the plan of the journal's unfinished upgrade, if
// there is one that changed something: the plan Run resumes when given the
// same target. The CLI uses it to resume a cluster whose replicas run mixed
// releases. An unfinished upgrade that changed nothing (it stopped before
// any replica was replaced or data migrated) is not returned: Run gives it
// up for a new plan.
func Unfinished(j *journal.Journal) (plan.Plan, bool, error) {
	return UnfinishedRecords(j.Records())
}

// UnfinishedRecords is Unfinished of a journal's records, such as the
// copy a cluster keeps.
func UnfinishedRecords(records []journal.Record) (plan.Plan, bool, error) {
	st := journal.Interpret(records)
	if !st.Unfinished() || changedNothing(st) {
		return plan.Plan{}, false, nil
	}
	p, err := decodePlan(*st.Plan)
	if err != nil {
		return plan.Plan{}, false, err
	}
	return p, true, nil
}
