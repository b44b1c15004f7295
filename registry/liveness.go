package registry

import (
	"expvar"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/raft/v3"
)

// PeerReport is the raft leader's view of another member: whether it has
// heard from it lately, and how much of the log it holds. The store runs
// raft with check-quorum, so the leader clears every follower's
// recent-activity mark once per election timeout (1 s) and sets it again
// on the follower's next message (heartbeats go every 100 ms): a member
// that is frozen, dead or cut off reads inactive within two election
// timeouts, whatever its HTTP server does.
type PeerReport struct {
	// Name is the member's name: the replica's id.
	Name     string `json:"name"`
	MemberID string `json:"member_id"`
	// Active: the leader heard from the member within the current
	// election timeout.
	Active bool `json:"active"`
	// Match is the highest log index the leader knows the member holds.
	Match uint64 `json:"match"`
}

// peers returns the leader's view of the other members, or nil when this
// member does not lead. The raft status comes from the process-wide
// "raft.status" variable that the store publishes; in a process that runs
// more than one member (tests) it may be another member's, and is then
// not used.
func (r *Replica) peers() []PeerReport {
	f, ok := expvar.Get("raft.status").(expvar.Func)
	if !ok {
		return nil
	}
	st, ok := f().(raft.Status)
	srv := r.etcd.Server
	if !ok || st.ID != uint64(srv.MemberID()) || st.RaftState != raft.StateLeader {
		return nil
	}
	var out []PeerReport
	for id, pr := range st.Progress {
		if id == st.ID {
			continue
		}
		p := PeerReport{MemberID: types.ID(id).String(), Active: pr.RecentActive, Match: pr.Match}
		if m := srv.Cluster().Member(types.ID(id)); m != nil {
			p.Name = m.Name
		}
		out = append(out, p)
	}
	return out
}
