package upgrade

import (
	"context"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/plan"
)

// HopPreparer is an optional capability of an App: a service rule the
// cluster must meet before a hop's roll changes any replica. The engine
// calls PrepareHop in the hop's preflight, once the store has settled. It
// may act on the cluster, as long as acting again is safe (etcd forces
// its members to snapshot before 3.7), and it returns what it did, for
// the journal, or an error that says what to do.
type HopPreparer interface {
	PrepareHop(ctx context.Context, h plan.Hop, replicas []driver.Replica) (map[string]any, error)
}

// HopFinisher is an optional capability of an App whose replicas migrate
// their store themselves once every replica runs the new release (etcd
// moves its cluster version). For such a service the hop's migrate step
// runs no job: it and the finalize step wait until HopFinished holds.
type HopFinisher interface {
	// HopFinished reports whether st shows hop h finished, and if not,
	// why not, as a phrase ("cluster version 3.5.0, not yet 3.6").
	HopFinished(h plan.Hop, st Status) (bool, string)
}

// finishedGate: the service says the hop is finished.
func finishedGate(f HopFinisher, h plan.Hop) gate {
	return gate{what: "hop " + h.ID() + " finished", ok: func(st Status, _ []driver.Replica) (bool, string) {
		return f.HopFinished(h, st)
	}}
}
