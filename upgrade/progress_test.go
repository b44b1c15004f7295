package upgrade

import (
	"testing"
	"time"
)

// TestProgressIsPerReplica: a replica cut off makes no progress while
// the clients' writes keep the others a revision behind now and then; the
// wait must see it idle, named, after the stall budget, not reset by the
// others' catching up.
func TestProgressIsPerReplica(t *testing.T) {
	const table = "registry/tags"
	snap := func(tick int) snapshot {
		s := snapshot{replicas: map[string]replicaMark{
			// Cut off: answers nothing, the whole time.
			"replica-1": {applied: map[string]int64{}},
			"replica-3": {answering: true, healthy: true, ui: true, voter: true, index: uint64(100 + tick),
				applied: map[string]int64{table: int64(10 + tick)}, fine: true},
		}}
		// replica-2 is behind on every other probe, by a write it then
		// applies: the traffic.
		r2 := replicaMark{answering: true, healthy: true, ui: true, voter: true, index: uint64(100 + tick),
			applied: map[string]int64{table: int64(10 + tick)}, fine: tick%2 == 0}
		s.replicas["replica-2"] = r2
		for _, m := range s.replicas {
			if !m.fine {
				s.behind++
			}
		}
		return s
	}
	start := time.Unix(0, 0)
	p := newProgress(start)
	var idle time.Duration
	var stuck string
	var stalled bool
	for tick := range 100 {
		now := start.Add(time.Duration(tick) * 100 * time.Millisecond)
		p.observe(snap(tick), now)
		stalled, idle, stuck = p.stalled(now, 5*time.Second)
	}
	if !stalled || stuck != "replica-1" || idle < 9*time.Second {
		t.Fatalf("stalled %v, idle %s on %q after 9.9s of a replica cut off, want a stall of about 9.9s on replica-1", stalled, idle, stuck)
	}
}

// TestProgressOfASlowReplica: a replica behind that keeps applying is
// progress, however long it takes; once it stops, it is idle from its last
// move.
func TestProgressOfASlowReplica(t *testing.T) {
	const table = "registry/tags"
	start := time.Unix(0, 0)
	p := newProgress(start)
	applied := int64(0)
	for tick := range 100 {
		if tick < 60 {
			applied++
		}
		now := start.Add(time.Duration(tick) * 100 * time.Millisecond)
		p.observe(snapshot{behind: 1, replicas: map[string]replicaMark{
			"replica-2": {answering: true, healthy: true, ui: true, voter: true, applied: map[string]int64{table: applied}},
		}}, now)
		stalled, idle, stuck := p.stalled(now, 3*time.Second)
		switch {
		case tick < 60 && idle > 0:
			t.Fatalf("tick %d: idle %s while the replica applies", tick, idle)
		case tick == 99 && (!stalled || stuck != "replica-2" || idle != 4*time.Second):
			t.Fatalf("stalled %v, idle %s on %q, want a stall of 4s on replica-2 (last applied at 5.9s)", stalled, idle, stuck)
		}
	}
}

// TestProgressOfAJoiningReplica: a replica whose store member follows a
// leader but has not joined yet gets JoinGrace, not --stall-after: etcd
// retries its join only every few seconds.
func TestProgressOfAJoiningReplica(t *testing.T) {
	start := time.Unix(0, 0)
	p := newProgress(start)
	joining := snapshot{behind: 1, replicas: map[string]replicaMark{
		"replica-1": {answering: true, joining: true, voter: true, applied: map[string]int64{}},
	}}
	p.observe(joining, start)
	if stalled, _, _ := p.stalled(start.Add(10*time.Second), 5*time.Second); stalled {
		t.Error("a joining replica stalled after 10s, within JoinGrace")
	}
	if stalled, _, stuck := p.stalled(start.Add(JoinGrace), 5*time.Second); !stalled || stuck != "replica-1" {
		t.Errorf("a joining replica did not stall on JoinGrace (stuck %q)", stuck)
	}
}
