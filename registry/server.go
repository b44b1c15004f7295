package registry

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ladder-dev/ladder/registry/oci"
)

// StatusReport is a replica's report on itself: GET /api/v1/status.
type StatusReport struct {
	ID      string `json:"id"`
	Cluster string `json:"cluster"`
	Release string `json:"release"`
	// SchemaVersion is the schema stored (as this member has applied it).
	SchemaVersion int `json:"schema_version"`
	// KnownSchema is the newest schema the release knows.
	KnownSchema int `json:"known_schema"`
	// Ready: the replica serves the store (it may still lack a leader).
	Ready          bool   `json:"ready"`
	MemberID       string `json:"member_id"`
	LeaderID       string `json:"leader_id"`
	IsLeader       bool   `json:"is_leader"`
	Voter          bool   `json:"voter"`
	AppliedIndex   uint64 `json:"applied_index"`
	CommittedIndex uint64 `json:"committed_index"`
	RaftTerm       uint64 `json:"raft_term"`
	HTTPURL        string `json:"http_url"`
	// ClientURL and PeerURL are the store's addresses: only callers with
	// a client certificate of the cluster's CA see them.
	ClientURL string       `json:"client_url,omitempty"`
	PeerURL   string       `json:"peer_url,omitempty"`
	Tables    []TableState `json:"tables"`
	// Peers is the raft leader's view of the other members; only the
	// leader reports it.
	Peers []PeerReport `json:"peers,omitempty"`
	Error string       `json:"error,omitempty"`
}

// TableState is one table as a replica sees it.
type TableState struct {
	DB   string `json:"db"`
	Name string `json:"name"`
	// LocalRevision is the table's latest revision as this member has
	// applied it (serializable read).
	LocalRevision int64 `json:"local_revision"`
	// Revision is the table's latest committed revision (linearizable
	// read); 0 with Error when the cluster has no quorum.
	Revision int64  `json:"revision"`
	Error    string `json:"error,omitempty"`
}

// StatsReport is GET /api/v1/stats: rows per table.
type StatsReport struct {
	SchemaVersion int            `json:"schema_version"`
	Tables        map[string]int `json:"tables"`
}

// requestTimeout bounds the store reads of one API request.
const requestTimeout = 1500 * time.Millisecond

func (r *Replica) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", r.handleHealth)
	mux.HandleFunc("GET /api/v1/status", r.handleStatus)
	mux.HandleFunc("GET /api/v1/cluster", r.handleCluster)
	mux.HandleFunc("GET /api/v1/stats", r.handleStats)
	mux.HandleFunc("GET /api/v1/backup", r.handleBackup)
	mux.HandleFunc("GET /api/v1/upgrade", r.handleUpgrade)
	mux.HandleFunc("POST /api/v1/upgrade/lock", r.handleLock)
	mux.HandleFunc("POST /api/v1/upgrade/lock/renew", r.handleRenew)
	mux.HandleFunc("DELETE /api/v1/upgrade/lock", r.handleUnlock)
	mux.HandleFunc("POST /api/v1/upgrade/journal", r.handleAppend)
	mux.HandleFunc("GET /{$}", r.handleUI)
	r.authRoutes(mux)
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, req *http.Request) {
		h := r.oci.Load()
		if h == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAVAILABLE","message":"replica is not serving the store yet"}]}`+"\n")
			return
		}
		(*h).ServeHTTP(w, req)
	})
	return mux
}

// ociHandler is the OCI distribution API over st.
func (r *Replica) ociHandler(st *Store) http.Handler {
	var blobs oci.BlobStore
	if r.blobs != nil {
		blobs = r.blobs
	}
	return oci.NewHandler(oci.Options{
		Meta:       st,
		BlobDir:    r.cfg.BlobDir,
		Blobs:      blobs,
		CheckAdmin: r.checkAdmin,
		Authorizer: r.auth,
		Logger:     r.log.With("component", "oci"),
	})
}

// checkAdmin accepts user "admin" with the admin password; nothing when no
// password is configured.
func (r *Replica) checkAdmin(user, pass string) bool {
	want := r.cfg.AdminPassword
	return want != "" && user == "admin" && subtle.ConstantTimeCompare([]byte(pass), []byte(want)) == 1
}

func writeJSONResponse(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// healthy says whether the replica serves: HTTP up, member started with a
// leader, store open. The reason is empty when it does.
func (r *Replica) healthy() string {
	select {
	case <-r.failed:
		return r.failErr.Error()
	default:
	}
	select {
	case <-r.ready:
	default:
		return "store member has not joined the cluster yet"
	}
	if r.etcd.Server.Leader() == 0 {
		return "store member has no leader"
	}
	if st := r.Store(); st != nil {
		if err := st.checkSchema(st.Schema()); err != nil {
			return err.Error()
		}
	}
	return ""
}

func (r *Replica) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if reason := r.healthy(); reason != "" {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Status builds the replica's report on itself.
func (r *Replica) Status(ctx context.Context) StatusReport {
	srv := r.etcd.Server
	rep := StatusReport{
		ID: r.cfg.ID, Cluster: r.cfg.Cluster, Release: r.cfg.Release, KnownSchema: r.known,
		MemberID: srv.MemberID().String(), IsLeader: srv.Leader() == srv.MemberID() && srv.Leader() != 0,
		Voter: !srv.IsLearner(), AppliedIndex: srv.AppliedIndex(), CommittedIndex: srv.CommittedIndex(),
		RaftTerm: srv.Term(), HTTPURL: r.httpURL, ClientURL: r.clientURL, PeerURL: r.peerURL,
	}
	if l := srv.Leader(); l != 0 {
		rep.LeaderID = l.String()
	}
	if rep.IsLeader {
		rep.Peers = r.peers()
	}
	rep.Error = r.healthy()
	cli := r.cli.Load()
	select {
	case <-r.ready:
		rep.Ready = true
	default:
	}
	if cli == nil {
		return rep
	}
	tables := Tables()
	lctx, lcancel := context.WithTimeout(ctx, requestTimeout)
	defer lcancel()
	local, err := readMarkers(lctx, cli, tables, true)
	if err != nil {
		rep.Error = "read table revisions: " + err.Error()
		return rep
	}
	rep.SchemaVersion = int(local[schemaKey])
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	committed, cerr := readMarkers(cctx, cli, tables, false)
	cancel()
	for _, tb := range tables {
		t := TableState{DB: DB, Name: tb, LocalRevision: local[markerKey(tb)]}
		if cerr != nil {
			t.Error = "no quorum: " + cerr.Error()
		} else {
			t.Revision = committed[markerKey(tb)]
		}
		rep.Tables = append(rep.Tables, t)
	}
	return rep
}

// readMarkers reads the tables' revision markers (mod revisions) and the
// stored schema (its value, under schemaKey) in one read-only transaction,
// served by the local member alone when serializable.
func readMarkers(ctx context.Context, cli *clientv3.Client, tables []string, serializable bool) (map[string]int64, error) {
	var opts []clientv3.OpOption
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	ops := []clientv3.Op{clientv3.OpGet(schemaKey, opts...)}
	for _, tb := range tables {
		ops = append(ops, clientv3.OpGet(markerKey(tb), opts...))
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, rr := range resp.Responses {
		for _, kv := range rr.GetResponseRange().Kvs {
			if string(kv.Key) == schemaKey {
				n, _ := parseSchema(kv.Value)
				out[schemaKey] = int64(n)
				continue
			}
			out[string(kv.Key)] = kv.ModRevision
		}
	}
	return out, nil
}

func (r *Replica) handleStatus(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	rep := r.Status(ctx)
	if !trustedCaller(req) {
		rep.ClientURL, rep.PeerURL = "", ""
	}
	code := http.StatusOK
	if !rep.Ready {
		code = http.StatusServiceUnavailable
	}
	writeJSONResponse(w, code, rep)
}

// Members lists the replicas registered in the store, by id: their release
// and HTTP URL.
func (r *Replica) Members(ctx context.Context) ([]Member, error) {
	cli := r.cli.Load()
	if cli == nil {
		return nil, ErrNotReady
	}
	cctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := cli.Get(cctx, prefixOf(TableReplicas), clientv3.WithPrefix())
	cancel()
	if err != nil {
		// Without quorum, what this member has is the best answer.
		if resp, err = cli.Get(ctx, prefixOf(TableReplicas), clientv3.WithPrefix(), clientv3.WithSerializable()); err != nil {
			return nil, fmt.Errorf("list replicas: %w", err)
		}
	}
	hosts := r.memberHosts()
	var out []Member
	for _, kv := range resp.Kvs {
		var row replicaRow
		if json.Unmarshal(kv.Value, &row) != nil {
			continue
		}
		if err := r.checkRow(row, hosts); err != nil {
			r.log.Warn("ignoring a replica row that does not match the store's membership", "row", row.ID, "err", err)
			continue
		}
		out = append(out, Member{ID: row.ID, Release: row.Release, URL: row.HTTPURL})
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (r *Replica) handleCluster(w http.ResponseWriter, req *http.Request) {
	reps, err := r.Members(req.Context())
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSONResponse(w, http.StatusOK, Probe(req.Context(), r.cfg.Cluster, reps, r.hc))
}

// CountRows counts the rows of every table.
func CountRows(ctx context.Context, cli *clientv3.Client) (StatsReport, error) {
	rep := StatsReport{Tables: map[string]int{}}
	ops := []clientv3.Op{clientv3.OpGet(schemaKey)}
	for _, tb := range Tables() {
		ops = append(ops, clientv3.OpGet(prefixOf(tb), clientv3.WithPrefix(), clientv3.WithCountOnly()))
	}
	resp, err := cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return rep, fmt.Errorf("count rows: %w", err)
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		rep.SchemaVersion, _ = parseSchema(kvs[0].Value)
	}
	for i, tb := range Tables() {
		rep.Tables[tb] = int(resp.Responses[i+1].GetResponseRange().Count)
	}
	return rep, nil
}

func (r *Replica) handleStats(w http.ResponseWriter, req *http.Request) {
	cli := r.cli.Load()
	if cli == nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": ErrNotReady.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 2*requestTimeout)
	defer cancel()
	rep, err := CountRows(ctx, cli)
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSONResponse(w, http.StatusOK, rep)
}

func (r *Replica) handleBackup(w http.ResponseWriter, req *http.Request) {
	if !r.requireAdmin(w, req) {
		return
	}
	cli := r.cli.Load()
	if cli == nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": ErrNotReady.Error()})
		return
	}
	rc, err := cli.Snapshot(req.Context())
	if err != nil {
		writeJSONResponse(w, http.StatusServiceUnavailable, map[string]string{"error": "snapshot: " + err.Error()})
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s-%s.db"`,
		r.cfg.Cluster, r.cfg.ID, time.Now().UTC().Format("20060102T150405Z")))
	if _, err := io.Copy(w, rc); err != nil {
		r.log.Warn("backup stream interrupted", "err", err)
	}
}
