package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/driver"
)

// gate is a condition the wait helper waits for. ok says whether the
// cluster is there, and if not, why not (for progress and diagnosis).
type gate struct {
	what string
	ok   func(st Status, reps []driver.Replica) (bool, string)
}

// settledGate: every replica healthy, UI up, a voter; every table ready.
func settledGate() gate {
	return gate{what: "store settled", ok: func(st Status, reps []driver.Replica) (bool, string) {
		if id, why := firstProblem(st, reps); id != "" {
			return false, id + " " + why
		}
		if why := lagProblem(st); why != "" {
			return false, why
		}
		if !st.Store.Settled {
			return false, "store not settled"
		}
		return true, ""
	}}
}

// replicaGate: replica id passes the health rule and (if v is set) runs v
// as both the driver and the replica itself report.
func replicaGate(id string, v *semver.Version) gate {
	what := id + " healthy"
	if v != nil {
		what += " on " + v.String()
	}
	return gate{what: what, ok: func(st Status, reps []driver.Replica) (bool, string) {
		rs, found := st.Replica(id)
		if !found {
			return false, id + " " + whyMissing
		}
		if why := rs.Problem(); why != "" {
			return false, id + " " + why
		}
		if v != nil {
			if rs.Version != "" && !sameVersion(rs.Version, v) {
				return false, fmt.Sprintf("%s still reports release %s", id, rs.Version)
			}
			for _, r := range reps {
				if r.ID == id && !sameVersion(r.Version, v) {
					return false, fmt.Sprintf("%s runs %s, not %s", id, r.Version, v)
				}
			}
		}
		return true, ""
	}}
}

// whyMissing is the health rule's verdict on a replica the driver lists and
// the status does not.
const whyMissing = "missing from cluster status"

// firstProblem applies the health rule to every replica: the first that
// the driver lists and the status lacks, else the first whose status has a
// Problem; "" when every replica passes.
func firstProblem(st Status, reps []driver.Replica) (id, why string) {
	for _, r := range reps {
		if _, ok := st.Replica(r.ID); !ok {
			return r.ID, whyMissing
		}
	}
	for _, rs := range st.Replicas {
		if why := rs.Problem(); why != "" {
			return rs.ID, why
		}
	}
	return "", ""
}

// lagProblem describes the largest table gap, or returns "".
func lagProblem(st Status) string {
	lags := lagsOf(st)
	if len(lags) == 0 {
		return ""
	}
	l := lags[0]
	more := ""
	if len(lags) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(lags)-1)
	}
	return fmt.Sprintf("%s behind on table %s/%s: applied %d of %d%s", l.Replica, l.DB, l.Table, l.Applied, l.Revision, more)
}

// lagsOf lists every replica that answers and is behind on a table,
// largest gap first.
func lagsOf(st Status) []Lag {
	var lags []Lag
	for _, t := range st.Store.Tables {
		for _, id := range t.Lagging {
			applied, ok := t.Applied[id]
			if !ok {
				continue // not answering: reported as unhealthy
			}
			lags = append(lags, Lag{Replica: id, DB: t.DB, Table: t.Name, Applied: applied, Revision: t.Revision})
		}
	}
	slices.SortStableFunc(lags, func(a, b Lag) int {
		ga, gb := a.Revision-a.Applied, b.Revision-b.Applied
		if ga != gb {
			if ga > gb {
				return -1
			}
			return 1
		}
		if a.Replica != b.Replica {
			if a.Replica < b.Replica {
				return -1
			}
			return 1
		}
		return 0
	})
	return lags
}

// snapshot is what progress is measured on.
type snapshot struct {
	replicas map[string]replicaMark
	behind   int // replicas that are not fine
}

type replicaMark struct {
	// answering: the replica answered its status request (it may still be
	// starting); a process that has only just started does not yet.
	answering          bool
	joining            bool
	healthy, ui, voter bool
	index              uint64
	applied            map[string]int64 // db/table → applied
	fine               bool
}

func snapshotOf(st Status) snapshot {
	s := snapshot{replicas: map[string]replicaMark{}}
	for _, rs := range st.Replicas {
		s.replicas[rs.ID] = replicaMark{answering: rs.MemberID != "", joining: rs.Joining, healthy: rs.Healthy, ui: rs.UI, voter: rs.Voter,
			index: rs.AppliedIndex, applied: map[string]int64{}, fine: rs.Problem() == ""}
	}
	for _, t := range st.Store.Tables {
		key := t.DB + "/" + t.Name
		for id, a := range t.Applied {
			if m, ok := s.replicas[id]; ok {
				m.applied[key] = a
			}
		}
		for _, id := range t.Lagging {
			if m, ok := s.replicas[id]; ok {
				m.fine = false
				s.replicas[id] = m
			}
		}
	}
	for _, m := range s.replicas {
		if !m.fine {
			s.behind++
		}
	}
	return s
}

// movedSince reports whether a replica moved on from p: began to answer,
// became healthy, answered its UI, became a voter, applied more.
func (m replicaMark) movedSince(p replicaMark) bool {
	if (m.answering && !p.answering) || (m.joining && !p.joining) || (m.healthy && !p.healthy) || (m.ui && !p.ui) || (m.voter && !p.voter) || m.index > p.index {
		return true
	}
	for k, a := range m.applied {
		if a > p.applied[k] {
			return true
		}
	}
	return false
}

// progress tracks, replica by replica, how long each replica that is
// behind has gone without moving. Progress is per replica: writes that
// healthy replicas apply meanwhile (clients keep them a revision or two
// behind for a moment) are not the progress of a replica cut off or stuck,
// which a wait on the cluster as a whole would mistake them for.
type progress struct {
	prev *snapshot
	// moved maps each replica behind to when it last moved, or fell
	// behind.
	moved map[string]time.Time
	// clear is when the last replica behind caught up (or the wait began).
	clear time.Time
}

func newProgress(now time.Time) *progress {
	return &progress{moved: map[string]time.Time{}, clear: now}
}

// observe takes a probe's snapshot.
func (p *progress) observe(s snapshot, now time.Time) {
	for id := range p.moved {
		if m, ok := s.replicas[id]; !ok || m.fine {
			delete(p.moved, id)
			p.clear = now
		}
	}
	for id, m := range s.replicas {
		if m.fine {
			continue
		}
		_, tracked := p.moved[id]
		var pm replicaMark
		var seen bool
		if p.prev != nil {
			pm, seen = p.prev.replicas[id]
		}
		if !tracked || (seen && m.movedSince(pm)) {
			p.moved[id] = now
		}
	}
	p.prev = &s
}

// JoinGrace is how long a replica whose store member follows a leader but
// has not joined yet may go without moving: the member publishes itself
// through the leader, and an attempt lost (to an election, or a quorum not
// back yet) is retried only after etcd's request timeout, 7s here. Two
// attempts fit; a restart would only start the wait over.
const JoinGrace = 15 * time.Second

// stalled says whether the wait has gone without progress for too long:
// a replica behind that has not moved for stallAfter (JoinGrace, at
// least, for one joining); with none behind, stallAfter since the last one
// caught up. idle is that time, stuck that replica ("": none).
func (p *progress) stalled(now time.Time, stallAfter time.Duration) (stalled bool, idle time.Duration, stuck string) {
	if len(p.moved) == 0 {
		idle = now.Sub(p.clear)
		return idle >= stallAfter, idle, ""
	}
	var over time.Duration = -1 << 62
	for id, t := range p.moved {
		limit := stallAfter
		if p.prev != nil && p.prev.replicas[id].joining {
			limit = max(limit, JoinGrace)
		}
		i := now.Sub(t)
		if o := i - limit; o > over || (o == over && id < stuck) {
			over, idle, stuck = o, i, id
		}
	}
	return over >= 0, idle, stuck
}

// fault names a replica that is down for a reason no wait cures, seen in
// one probe: the driver says its process is gone or stopped dead; or the
// store's leader reports it has not heard from it while it answers
// nothing, or fails, having been up since the engine last started it. A
// replica that refuses connections, or answers slowly while the leader
// hears from it, is not a fault: it may be starting or busy, and the
// progress-aware wait judges it. up says which replicas have been healthy
// since the engine last started them.
func fault(st Status, reps []driver.Replica, up map[string]bool) (id, why string) {
	if id, why := driverFault(reps); id != "" {
		return id, why
	}
	for _, r := range reps {
		rs, ok := st.Replica(r.ID)
		switch {
		case !ok || !rs.Silent:
		case rs.Unresponsive:
			return r.ID, "answers nothing and the store's leader has not heard from it (frozen or cut off)"
		case !rs.Healthy && up[r.ID]:
			return r.ID, "went down and the store's leader has not heard from it (cut off?): " + rs.Problem()
		}
	}
	return "", ""
}

// driverFault is the part of fault the driver sees on its own: a replica
// whose process is gone or stopped dead.
func driverFault(reps []driver.Replica) (id, why string) {
	for _, r := range reps {
		switch {
		case !r.Running:
			return r.ID, "is not running: its process exited"
		case r.Paused:
			return r.ID, "is frozen: its process is stopped"
		}
	}
	return "", ""
}

// diagnose explains a stall from the last status: the stuck replica (the
// one behind that moved least recently) when it fails the health rule or
// lags, else the replica that fails the health rule, else the largest
// table gap, else why.
func diagnose(st Status, reps []driver.Replica, stuck, why string, statusErr error) *StallError {
	e := &StallError{}
	lag := func(l Lag) *StallError {
		e.Replica, e.DB, e.Table, e.Applied, e.Revision = l.Replica, l.DB, l.Table, l.Applied, l.Revision
		return e
	}
	if statusErr != nil {
		e.Reason = "cluster status unavailable: " + statusErr.Error()
		return e
	}
	if rs, ok := st.Replica(stuck); ok && rs.Problem() != "" {
		e.Replica, e.Reason = stuck, rs.Problem()
		return e
	}
	lags := lagsOf(st)
	for _, l := range lags {
		if l.Replica == stuck {
			return lag(l)
		}
	}
	if id, reason := firstProblem(st, reps); id != "" {
		e.Replica, e.Reason = id, reason
		return e
	}
	if len(lags) > 0 {
		return lag(lags[0])
	}
	e.Reason = why
	return e
}

// wait polls the cluster until g holds. It returns the last status and,
// on failure, a *StallError (nothing moved for StallAfter), an error
// wrapping ErrWaitTimeout (still moving after MaxWait) or the context's
// cause.
func (r *runner) wait(ctx context.Context, step string, g gate) (Status, error) {
	start := time.Now()
	var prog *progress // from the first probe
	probes := 0
	var (
		st       Status
		reps     []driver.Replica
		why      string
		lastWhy  string
		probeErr error
	)
	for {
		var err error
		reps, err = r.drv.Replicas(ctx)
		if err == nil {
			// What the driver sees needs no probe, which a frozen
			// replica would make wait for its timeout.
			if id, reason := driverFault(reps); id != "" {
				return st, r.faultErr(ctx, g, id, reason, reps)
			}
			st, err = r.app.Status(ctx, reps)
		}
		if ctx.Err() != nil {
			return st, r.waitErr(g, context.Cause(ctx), why)
		}
		probeErr = err
		probes++
		if probes == 1 {
			prog = newProgress(time.Now())
		}
		if err == nil {
			for _, rs := range st.Replicas {
				if rs.Healthy {
					r.up[rs.ID] = true
				}
			}
			ok, w := g.ok(st, reps)
			if ok {
				return st, nil
			}
			if id, reason := fault(st, reps, r.up); id != "" {
				return st, r.faultErr(ctx, g, id, reason, reps)
			}
			why = w
			prog.observe(snapshotOf(st), time.Now())
		} else {
			why = "cluster status unavailable: " + err.Error()
		}
		now := time.Now()
		if stalled, idle, stuck := prog.stalled(now, r.opts.StallAfter); probes > 1 && stalled {
			e := diagnose(st, reps, stuck, why, probeErr)
			e.Gate, e.For = g.what, idle
			return st, e
		}
		if now.Sub(start) >= r.opts.MaxWait {
			return st, fmt.Errorf("wait for %s: %w after %s, still catching up: %s", g.what, ErrWaitTimeout, roundDuration(r.opts.MaxWait), why)
		}
		if why != lastWhy {
			lastWhy = why
			fields := map[string]any{"gate": g.what, "waited": now.Sub(start)}
			if probeErr == nil {
				fields["lagging"] = lagsOf(st)
				fields["unhealthy"] = unhealthyOf(st)
			}
			r.emit(Event{Type: EventWaitProgress, Step: step, Message: why, Fields: fields})
		}
		t := time.NewTimer(r.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return st, r.waitErr(g, context.Cause(ctx), why)
		case <-t.C:
		}
	}
}

// faultErr is the stall of a faulty replica, with its log's last lines
// when its process exited and the driver can show them.
func (r *runner) faultErr(ctx context.Context, g gate, id, reason string, reps []driver.Replica) *StallError {
	e := &StallError{Gate: g.what, Replica: id, Reason: reason, Fault: true}
	lt, ok := r.drv.(driver.LogTailer)
	for _, rep := range reps {
		if ok && rep.ID == id && !rep.Running {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			e.Log = lt.LogTail(lctx, id, 10)
			cancel()
		}
	}
	return e
}

func (r *runner) waitErr(g gate, cause error, why string) error {
	if why == "" {
		return fmt.Errorf("wait for %s: %w", g.what, cause)
	}
	return fmt.Errorf("wait for %s: %w (last seen: %s)", g.what, cause, why)
}

func unhealthyOf(st Status) []string {
	var ids []string
	for _, rs := range st.Replicas {
		if rs.Problem() != "" {
			ids = append(ids, rs.ID)
		}
	}
	return ids
}

// isStall reports whether err is (or wraps) a stall.
func isStall(err error) (*StallError, bool) {
	var se *StallError
	ok := errors.As(err, &se)
	return se, ok
}
