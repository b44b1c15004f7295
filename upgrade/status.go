package upgrade

import (
	"fmt"
	"strings"
)

// Status is the observed state of a cluster: what the engine waits on, as
// a service's App reports it, and the JSON contract of `ladder cluster
// status -o json`.
type Status struct {
	Cluster string `json:"cluster"`
	// Version is the release every replica runs, or "mixed".
	Version string `json:"version"`
	// SchemaVersion is the schema recorded in the store (0 if unknown).
	SchemaVersion int `json:"schema_version"`
	// ClusterVersion is the version the cluster as a whole runs at, for
	// services that keep one (etcd's cluster version, MAJOR.MINOR.0); ""
	// for the others.
	ClusterVersion string          `json:"cluster_version,omitempty"`
	Replicas       []ReplicaStatus `json:"replicas"`
	Store          StoreStatus     `json:"store"`
}

// VersionMixed is Status.Version when replicas run different releases.
const VersionMixed = "mixed"

// ReplicaStatus is one replica as it reports itself (or fails to).
type ReplicaStatus struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	// Healthy: the replica answered /health with success.
	Healthy bool `json:"healthy"`
	// UI: the web UI page answered.
	UI  bool   `json:"ui"`
	URL string `json:"url"`
	// Leader: this replica's store member is the raft leader.
	Leader bool `json:"leader"`
	// Voter: the member is a voting member (not a learner).
	Voter        bool   `json:"voter"`
	MemberID     string `json:"member_id,omitempty"`
	AppliedIndex uint64 `json:"applied_index"`
	// Unresponsive: every request to the replica timed out.
	Unresponsive bool `json:"unresponsive,omitempty"`
	// Silent: the store's leader reports it has not heard from the
	// replica lately (within about a second); false when no leader says.
	Silent bool `json:"silent,omitempty"`
	// Joining: the replica's store member follows a leader and has yet to
	// join the cluster (see JoinGrace).
	Joining bool `json:"joining,omitempty"`
	PID     int  `json:"pid,omitempty"`
	// Error says why the replica could not be asked, if it could not.
	Error string `json:"error,omitempty"`
}

// StoreStatus is the replicated store as a whole.
type StoreStatus struct {
	// Settled: every replica is up, a voter, and has applied the latest
	// revision of every table.
	Settled bool          `json:"settled"`
	Tables  []TableStatus `json:"tables"`
}

// TableStatus is the readiness of one table on every replica.
type TableStatus struct {
	DB   string `json:"db"`
	Name string `json:"name"`
	// Revision is the latest committed revision of the table.
	Revision int64 `json:"revision"`
	// Applied maps replica id to the table revision that replica has
	// applied; a replica that could not be asked is absent.
	Applied map[string]int64 `json:"applied,omitempty"`
	Ready   bool             `json:"ready"`
	// Lagging lists the ids of replicas on which the table is not ready.
	Lagging []string `json:"lagging"`
}

// Problem is the health rule every gate, diagnosis and status display
// applies to a replica: why it is not fully up, as a phrase read after its
// id ("does not answer within 2s", "UI not answering", "is not a voting
// member"), or "" when it is healthy, its UI answers and it is a voter.
func (rs ReplicaStatus) Problem() string {
	switch {
	case !rs.Healthy && rs.Error != "":
		return rs.Error
	case !rs.Healthy:
		return "is not healthy"
	case !rs.UI:
		return "UI not answering"
	case !rs.Voter:
		return "is not a voting member"
	}
	return ""
}

// Unsettled lists why the cluster has not settled: each replica's problem
// and each table not ready, with the replicas it lags on; empty when
// settled.
func (s Status) Unsettled() []string {
	var why []string
	for _, r := range s.Replicas {
		if p := r.Problem(); p != "" {
			why = append(why, r.ID+" "+p)
		}
	}
	for _, t := range s.Store.Tables {
		if !t.Ready {
			why = append(why, fmt.Sprintf("table %s/%s lagging on %s", t.DB, t.Name, strings.Join(t.Lagging, ",")))
		}
	}
	if len(why) == 0 && !s.Store.Settled {
		why = append(why, "no replica answered")
	}
	return why
}

// Replica returns the status of replica id.
func (s Status) Replica(id string) (ReplicaStatus, bool) {
	for _, r := range s.Replicas {
		if r.ID == id {
			return r, true
		}
	}
	return ReplicaStatus{}, false
}

// Leader returns the id of the replica whose member leads, or "".
func (s Status) Leader() string {
	for _, r := range s.Replicas {
		if r.Leader {
			return r.ID
		}
	}
	return ""
}
