package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Member is a replica to probe: its id, the release it was started as, and
// the base URL of its HTTP API.
type Member struct {
	ID      string
	Release string
	URL     string
}

// ClusterReport is what Probe learns of a cluster; GET /api/v1/cluster
// serves it.
type ClusterReport struct {
	Cluster string `json:"cluster"`
	// Version is the release every replica runs, or VersionMixed.
	Version string `json:"version"`
	// SchemaVersion is the newest schema a replica reports (0 if none).
	SchemaVersion int             `json:"schema_version"`
	Replicas      []ReplicaHealth `json:"replicas"`
	Store         StoreReport     `json:"store"`
}

// VersionMixed is ClusterReport.Version when replicas run different releases.
const VersionMixed = "mixed"

// ReplicaHealth is one replica as it reports itself, or fails to.
type ReplicaHealth struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	// Healthy: /health answered 200.
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
	// Unresponsive: every request to the replica timed out (it accepts
	// connections, or the network swallows them, but nothing answers).
	Unresponsive bool `json:"unresponsive,omitempty"`
	// Silent: the raft leader reports it has not heard from the replica's
	// store member lately (see PeerReport). False when no leader reports.
	Silent bool `json:"silent,omitempty"`
	// Joining: the store member follows a leader but has not joined the
	// cluster yet (it publishes itself through the leader, and retries
	// every few seconds when an attempt is lost, as after an election).
	Joining bool `json:"joining,omitempty"`
	// Error says in one phrase, read after the replica's id, why it is not
	// fully up ("does not answer within 2s").
	Error string `json:"error,omitempty"`
}

// StoreReport is the replicated store as a whole.
type StoreReport struct {
	// Settled: every replica is healthy, a voter, and every table is ready.
	Settled bool          `json:"settled"`
	Tables  []TableReport `json:"tables"`
}

// TableReport is the readiness of one table on every replica.
type TableReport struct {
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

// Replica returns the health of replica id.
func (c ClusterReport) Replica(id string) (ReplicaHealth, bool) {
	for _, r := range c.Replicas {
		if r.ID == id {
			return r, true
		}
	}
	return ReplicaHealth{}, false
}

// Leader returns the id of the replica whose member leads, or "".
func (c ClusterReport) Leader() string {
	for _, r := range c.Replicas {
		if r.Leader {
			return r.ID
		}
	}
	return ""
}

// probeTimeout bounds each request Probe makes.
const probeTimeout = 2 * time.Second

// probeResult is what one replica answered.
type probeResult struct {
	status  *StatusReport
	healthy bool
	ui      bool
	// errs holds the request errors by endpoint: status, health, ui.
	errs [3]error
}

const (
	epStatus = iota
	epHealth
	epUI
)

var endpointNames = [3]string{"status", "health", "ui"}

// timeouts counts the requests that failed because they timed out, and
// all that failed.
func (res probeResult) timeouts() (timedOut, failed int) {
	for _, err := range res.errs {
		if err == nil {
			continue
		}
		failed++
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			timedOut++
		}
	}
	return timedOut, failed
}

// diagnose says in one phrase, to be read after the replica's name, why it
// is not fully up: it does not answer in time, refuses connections, is
// starting, or which endpoint failed how.
func (res probeResult) diagnose() string {
	timeouts, failed := res.timeouts()
	refused := 0
	for _, err := range res.errs {
		if errors.Is(err, syscall.ECONNREFUSED) {
			refused++
		}
	}
	switch {
	case failed == 0:
		return ""
	case timeouts == failed:
		return fmt.Sprintf("does not answer within %s", probeTimeout)
	case refused == failed:
		return "refuses connections (not running, or not listening yet)"
	case res.status != nil && res.status.Error != "":
		return "is starting: " + res.status.Error
	}
	var parts []string
	for i, err := range res.errs {
		if err != nil {
			parts = append(parts, endpointNames[i]+": "+err.Error())
		}
	}
	return "is unhealthy: " + strings.Join(parts, "; ")
}

// Probe asks every replica for /api/v1/status, /health and the UI page, all
// at once with short timeouts, and computes the cluster's status: the
// common release (or "mixed"), the stored schema, each replica's health and
// membership, and each table's readiness. A table is ready when every
// replica answered, is a voter, and has applied the table's latest
// committed revision; the store is settled when every replica is healthy,
// a voter, and every table is ready.
func Probe(ctx context.Context, cluster string, replicas []Member, hc *http.Client) ClusterReport {
	if hc == nil {
		hc = &http.Client{Timeout: probeTimeout}
	}
	results := make([]probeResult, len(replicas))
	var wg sync.WaitGroup
	for i, rep := range replicas {
		res := &results[i]
		var mu sync.Mutex
		base := strings.TrimRight(rep.URL, "/")
		wg.Add(3)
		go func() {
			defer wg.Done()
			var st StatusReport
			_, err := getJSON(ctx, hc, base+"/api/v1/status", &st)
			mu.Lock()
			defer mu.Unlock()
			if st.ID != "" {
				res.status = &st
			}
			if err != nil {
				res.errs[epStatus] = err
			}
		}()
		go func() {
			defer wg.Done()
			var h map[string]string
			code, err := getJSON(ctx, hc, base+"/health", &h)
			mu.Lock()
			defer mu.Unlock()
			res.healthy = err == nil && code == http.StatusOK
			if err != nil {
				res.errs[epHealth] = err
			}
		}()
		go func() {
			defer wg.Done()
			ok, err := checkUI(ctx, hc, base+"/")
			mu.Lock()
			defer mu.Unlock()
			res.ui = ok
			if err != nil {
				res.errs[epUI] = err
			}
		}()
	}
	wg.Wait()
	return summarize(cluster, replicas, results)
}

// summarize turns the replicas' answers into a report.
func summarize(cluster string, replicas []Member, results []probeResult) ClusterReport {
	st := ClusterReport{Cluster: cluster, Replicas: []ReplicaHealth{}}
	versions := map[string]bool{}
	type tableAcc struct {
		rev     int64
		applied map[string]int64
	}
	tables := map[string]*tableAcc{}
	var order []string
	for i, rep := range replicas {
		res := results[i]
		rs := ReplicaHealth{ID: rep.ID, Version: rep.Release, URL: rep.URL, Healthy: res.healthy, UI: res.ui}
		if s := res.status; s != nil {
			rs.Version = s.Release
			rs.Leader = s.IsLeader
			rs.Voter = s.Voter
			rs.MemberID = s.MemberID
			rs.AppliedIndex = s.AppliedIndex
			rs.Joining = !s.Ready && s.LeaderID != ""
			st.SchemaVersion = max(st.SchemaVersion, s.SchemaVersion)
			for _, t := range s.Tables {
				k := t.DB + "/" + t.Name
				acc := tables[k]
				if acc == nil {
					acc = &tableAcc{applied: map[string]int64{}}
					tables[k] = acc
					order = append(order, k)
				}
				acc.rev = max(acc.rev, t.Revision, t.LocalRevision)
				acc.applied[rep.ID] = t.LocalRevision
			}
		}
		if timedOut, failed := res.timeouts(); failed == len(res.errs) && timedOut == failed {
			rs.Unresponsive = true
		}
		if !(res.healthy && res.ui && res.status != nil) {
			rs.Error = res.diagnose()
			if rs.Error == "" && res.status != nil && res.status.Error != "" {
				rs.Error = "is starting: " + res.status.Error
			}
		}
		versions[rs.Version] = true
		st.Replicas = append(st.Replicas, rs)
	}
	markSilent(&st, results)
	switch len(versions) {
	case 0:
	case 1:
		for v := range versions {
			st.Version = v
		}
	default:
		st.Version = VersionMixed
	}
	settled := len(replicas) > 0
	for _, rs := range st.Replicas {
		if !rs.Healthy || !rs.Voter {
			settled = false
		}
	}
	for _, k := range order {
		acc := tables[k]
		db, name, _ := strings.Cut(k, "/")
		ts := TableReport{DB: db, Name: name, Revision: acc.rev, Applied: acc.applied, Lagging: []string{}}
		for i, rs := range st.Replicas {
			applied, answered := acc.applied[rs.ID]
			if !answered || results[i].status == nil || !rs.Voter || applied < acc.rev {
				ts.Lagging = append(ts.Lagging, rs.ID)
			}
		}
		slices.Sort(ts.Lagging)
		ts.Ready = len(ts.Lagging) == 0
		if !ts.Ready {
			settled = false
		}
		st.Store.Tables = append(st.Store.Tables, ts)
	}
	if len(order) == 0 {
		settled = false
	}
	st.Store.Settled = settled
	return st
}

// markSilent marks the replicas the leader reports it has not heard from.
func markSilent(st *ClusterReport, results []probeResult) {
	active := map[string]bool{}
	for _, res := range results {
		if res.status == nil || !res.status.IsLeader {
			continue
		}
		for _, p := range res.status.Peers {
			active[p.Name] = p.Active
		}
	}
	for i, rs := range st.Replicas {
		if a, reported := active[rs.ID]; reported && !a {
			st.Replicas[i].Silent = true
		}
	}
}

// getJSON GETs url into v and returns the status code. A status other than
// 200 is an error, but v is still decoded when the body is JSON.
func getJSON(ctx context.Context, hc *http.Client, url string, v any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	derr := json.Unmarshal(body, v)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if derr != nil {
		return resp.StatusCode, fmt.Errorf("decode %s: %w", url, derr)
	}
	return resp.StatusCode, nil
}

// checkUI reports whether url answers 200 with an HTML page.
func checkUI(ctx context.Context, hc *http.Client, url string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		return false, fmt.Errorf("%s answered %q, not a page", url, ct)
	}
	return true, nil
}

// FetchBackup streams a consistent snapshot of the store from the replica
// at replicaURL into w, authenticating as admin.
func FetchBackup(ctx context.Context, hc *http.Client, replicaURL, adminPassword string, w io.Writer) error {
	if hc == nil {
		hc = http.DefaultClient
	}
	url := strings.TrimRight(replicaURL, "/") + "/api/v1/backup"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch backup: %w", err)
	}
	req.SetBasicAuth("admin", adminPassword)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetch backup: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return fmt.Errorf("fetch backup from %s: %w: check the admin password", replicaURL, ErrUnauthorized)
	default:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("fetch backup from %s: %s: %s", replicaURL, resp.Status, strings.TrimSpace(string(msg)))
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return fmt.Errorf("fetch backup from %s: after %d bytes: %w", replicaURL, n, err)
	}
	if n == 0 {
		return fmt.Errorf("fetch backup from %s: empty snapshot", replicaURL)
	}
	return nil
}

// Stats asks the replica at replicaURL for the row count of every table.
// The map has one entry per table and "schema_version".
func Stats(ctx context.Context, hc *http.Client, replicaURL string) (map[string]int, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	var rep StatsReport
	if _, err := getJSON(ctx, hc, strings.TrimRight(replicaURL, "/")+"/api/v1/stats", &rep); err != nil {
		return nil, fmt.Errorf("read stats: %w", err)
	}
	out := map[string]int{"schema_version": rep.SchemaVersion}
	for k, v := range rep.Tables {
		out[k] = v
	}
	return out, nil
}
