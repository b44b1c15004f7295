package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/Masterminds/semver/v3"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/service/etcd"
	"github.com/ladder-dev/ladder/upgrade"
)

// EtcdName is etcd's service name.
const EtcdName = "etcd"

// etcd's ports, by name: the client API (gRPC and HTTP on one port, what
// Replica.URL points at) and the raft peer port.
const (
	EtcdPortClient = "client"
	EtcdPortPeer   = "peer"
)

// Etcd is etcd as drivers run it: each release is its own static etcd
// binary, built from the Go module proxy into CacheDir (see
// etcd.Fetch: ladder releases fetch etcd VERSION).
type Etcd struct {
	// CacheDir holds the release cache, CacheDir/etcd/<version>/etcd:
	// $LADDER_HOME/cache for the CLI.
	CacheDir string
}

var _ driver.Service = Etcd{}

// Name implements driver.Service.
func (Etcd) Name() string { return EtcdName }

// Artifact implements driver.Service: the cached etcd binary of version.
func (s Etcd) Artifact(version string) (driver.Artifact, error) {
	v, err := policy.Parse(version)
	if err != nil {
		return driver.Artifact{}, err
	}
	if s.CacheDir == "" {
		return driver.Artifact{}, fmt.Errorf("%w: etcd %s: no release cache given", driver.ErrNoArtifact, v)
	}
	b, err := etcd.Cached(s.CacheDir, v.String())
	if err != nil {
		return driver.Artifact{}, fmt.Errorf("%w: etcd %s is not built yet (build it, a few minutes: ladder releases fetch etcd %s)",
			driver.ErrNoArtifact, v, v)
	}
	return driver.Artifact{Version: v.String(), Binary: b.Etcd, Program: "etcd"}, nil
}

// Ports implements driver.Service.
func (Etcd) Ports() []string { return []string{EtcdPortClient, EtcdPortPeer} }

// HealthPath implements driver.Service: /health answers (503 without a
// leader) once the member serves its client port.
func (Etcd) HealthPath() string { return "/health" }

// Command implements driver.Service: a member named by the replica's id.
// The --initial-* flags matter only to a member's first start: once its
// data folder holds a member, etcd ignores them, so a replaced member
// keeps its identity and membership.
func (Etcd) Command(_ driver.Artifact, p driver.Placement) []string {
	var peers []string
	for _, m := range p.Members {
		peers = append(peers, m.ID+"=http://"+m.Addr[EtcdPortPeer])
	}
	self := p.Self()
	return []string{
		"--name", p.ID,
		"--data-dir", p.DataDir,
		"--listen-client-urls", "http://" + p.Listen[EtcdPortClient],
		"--advertise-client-urls", "http://" + self.Addr[EtcdPortClient],
		"--listen-peer-urls", "http://" + p.Listen[EtcdPortPeer],
		"--initial-advertise-peer-urls", "http://" + self.Addr[EtcdPortPeer],
		"--initial-cluster", strings.Join(peers, ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", "ladder-" + p.Cluster,
	}
}

// JobCommand implements driver.Service. etcd has no data migration jobs:
// its members migrate their store themselves (EtcdApp.HopFinished).
func (Etcd) JobCommand(_ driver.Artifact, job driver.Job, _ []driver.Member) []string {
	return append([]string{}, job.Args...)
}

// PortConflict implements driver.Service: etcd exits with status 1 and
// logs the listen error.
func (Etcd) PortConflict(code int, log string) bool {
	return code != 0 && strings.Contains(log, "address already in use")
}

// EtcdCatalog returns etcd's built-in releases (etcd.Releases).
func EtcdCatalog() *catalog.Catalog {
	c, err := catalog.FromVersions("built-in etcd", etcd.Releases()...)
	if err != nil {
		panic(err) // the built-in list is tested
	}
	return c
}

// etcdMinPatch are etcd's minimum-patch rules, as data: the release a
// cluster must run before it leaves a minor.
var etcdMinPatch = []struct{ min, source string }{
	// Successive guides raised it: 3.5.20, then 3.5.24, then 3.5.26.
	{"3.5.26", "etcd's 3.5 → 3.6 upgrade guide"},
	{"3.6.11", "etcd's 3.6 → 3.7 upgrade guide"},
}

// EtcdRules returns etcd's minimum-patch rules for the planner.
func EtcdRules() []plan.MinPatch {
	out := make([]plan.MinPatch, len(etcdMinPatch))
	for i, r := range etcdMinPatch {
		out[i] = plan.MinPatch{Min: semver.MustParse(r.min), Source: r.source}
	}
	return out
}

// EtcdMaxGap is how far, in raft entries, a member's applied index may
// trail the leader's for the cluster to count as settled.
const EtcdMaxGap = 100

// EtcdApp is what the upgrade engine knows of an etcd cluster: its
// status (etcd.Probe and the settled rule etcd.Settled), its backup
// (etcd.Backup), the 3.6 → 3.7 precondition (PrepareHop) and the finalize
// rule: a hop is finished when the cluster version reaches its minor
// (HopFinished). Use it through a pointer: it keeps one prober's
// connections between probes. Close it when done.
type EtcdApp struct {
	Cluster string
	// TLS is the client configuration for https members (nil: plain).
	TLS *tls.Config
	// DataDir returns the data folder of a replica on this machine, where
	// PrepareHop reads its WAL; nil, or ok false, when ladder cannot read
	// it (PrepareHop then refuses a hop to 3.7 it cannot check).
	DataDir func(id string) (dir string, ok bool)
	Log     *slog.Logger

	mu     sync.Mutex
	prober *etcd.Prober
	eps    []string
}

var (
	_ upgrade.App         = (*EtcdApp)(nil)
	_ upgrade.HopPreparer = (*EtcdApp)(nil)
	_ upgrade.HopFinisher = (*EtcdApp)(nil)
)

func (a *EtcdApp) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// Close releases the prober's connections.
func (a *EtcdApp) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.prober == nil {
		return nil
	}
	err := a.prober.Close()
	a.prober = nil
	return err
}

func endpointsOf(reps []driver.Replica) []string {
	eps := make([]string, len(reps))
	for i, r := range reps {
		eps[i] = r.URL
	}
	return eps
}

// probe asks the members at reps, reusing the prober while they stay.
func (a *EtcdApp) probe(ctx context.Context, reps []driver.Replica) (etcd.Report, error) {
	eps := endpointsOf(reps)
	a.mu.Lock()
	if a.prober == nil || !slices.Equal(a.eps, eps) {
		if a.prober != nil {
			_ = a.prober.Close()
			a.prober = nil
		}
		p, err := etcd.NewProber(eps, a.TLS, a.log())
		if err != nil {
			a.mu.Unlock()
			return etcd.Report{}, err
		}
		a.prober, a.eps = p, eps
	}
	p := a.prober
	a.mu.Unlock()
	return p.Probe(ctx), nil
}

// Status implements upgrade.App. Each replica is its member's answer:
// healthy is /health?serializable=true, "UI" is /readyz (etcd has no UI),
// version is the server's own. The store is settled by etcd.Settled
// (every member up, a voter, healthy, one leader, applied index within
// EtcdMaxGap of the leader's); its one table, etcd/raft, shows each
// member's applied index against the leader's, so waits see progress.
func (a *EtcdApp) Status(ctx context.Context, reps []driver.Replica) (upgrade.Status, error) {
	rep, err := a.probe(ctx, reps)
	if err != nil {
		return upgrade.Status{}, err
	}
	return etcdStatus(a.Cluster, reps, rep), nil
}

// etcdStatus maps a probe of reps to the engine's status. Pure.
func etcdStatus(cluster string, reps []driver.Replica, rep etcd.Report) upgrade.Status {
	st := upgrade.Status{Cluster: cluster, ClusterVersion: rep.ClusterVersion}
	leader, hasLeader := rep.Leader()
	table := upgrade.TableStatus{DB: "etcd", Name: "raft", Applied: map[string]int64{}, Lagging: []string{}}
	if hasLeader {
		table.Revision = int64(leader.RaftAppliedIndex)
	}
	versions := map[string]bool{}
	for _, r := range reps {
		m, _ := rep.Member(r.URL)
		rs := upgrade.ReplicaStatus{ID: r.ID, Version: m.Version, URL: r.URL, PID: r.PID,
			Healthy: m.Reachable && m.Healthy, UI: m.Ready, Leader: m.Leader(), Voter: m.Reachable && !m.Learner,
			AppliedIndex: m.RaftAppliedIndex, Error: m.Error,
			Unresponsive: strings.HasPrefix(m.Error, "does not answer")}
		if m.ID != 0 {
			rs.MemberID = fmt.Sprintf("%x", m.ID)
		}
		if rs.Version == "" {
			versions[r.Version] = true
		} else {
			versions[rs.Version] = true
		}
		if m.Reachable {
			table.Applied[r.ID] = int64(m.RaftAppliedIndex)
			if hasLeader && m.RaftAppliedIndex+EtcdMaxGap < leader.RaftAppliedIndex {
				table.Lagging = append(table.Lagging, r.ID)
			}
		}
		st.Replicas = append(st.Replicas, rs)
	}
	table.Ready = hasLeader && len(table.Lagging) == 0
	if !hasLeader {
		table.Lagging = nil
	}
	st.Store.Tables = []upgrade.TableStatus{table}
	st.Store.Settled, _ = etcd.Settled(rep, EtcdMaxGap)
	st.Version = upgrade.VersionMixed
	if len(versions) == 1 {
		for v := range versions {
			st.Version = v
		}
	}
	return st
}

// MigrateJob implements upgrade.App. It is never run: EtcdApp is a
// HopFinisher, and etcd's members migrate their store themselves.
func (*EtcdApp) MigrateJob(int) driver.Job { return driver.Job{Name: "none"} }

// Backup implements upgrade.App: a snapshot of the member's store, in the
// format of `etcdctl snapshot save` (restore it with `etcdutl snapshot
// restore`), checksum verified.
func (a *EtcdApp) Backup(ctx context.Context, via driver.Replica, w io.Writer) error {
	_, err := etcd.Backup(ctx, via.URL, a.TLS, w, a.log())
	return err
}

// HopFinished implements upgrade.HopFinisher: the cluster version has
// reached the hop's minor. etcd moves it within seconds once every member
// runs the new minor; until then the cluster still behaves as the old one.
func (*EtcdApp) HopFinished(h plan.Hop, st upgrade.Status) (bool, string) {
	want := fmt.Sprintf("%d.%d", h.To.Major(), h.To.Minor())
	cv, err := semver.NewVersion(st.ClusterVersion)
	if err == nil && fmt.Sprintf("%d.%d", cv.Major(), cv.Minor()) == want {
		return true, ""
	}
	got := st.ClusterVersion
	if got == "" {
		got = "unknown"
	}
	return false, fmt.Sprintf("cluster version %s, not yet %s (etcd moves it once every member runs %s)", got, want, want)
}

// crossesInto37 reports whether h goes from a release before 3.7 to 3.7
// or later.
func crossesInto37(h plan.Hop) bool {
	v37 := semver.MustParse("3.7.0")
	return h.From.LessThan(v37) && !h.To.LessThan(v37)
}

// ErrCannotCheckSnapshots: ladder cannot read the members' data folders,
// so it cannot check the 3.6 → 3.7 precondition.
var ErrCannotCheckSnapshots = errors.New("cannot check the members' snapshots")

// PrepareHop implements upgrade.HopPreparer. Before a hop into etcd 3.7
// every member still on 3.6 must have snapshotted past every raft entry a
// 3.5 member wrote, or 3.7 panics replaying its log (see service/etcd's
// hazard.go). PrepareHop sets a barrier (etcd.Barrier), reads each such
// member's newest snapshot from its WAL, and when one is behind proposes
// no-op entries until every member has snapshotted past the barrier
// (etcd.ForceSnapshots). No key changes. Other hops need nothing.
func (a *EtcdApp) PrepareHop(ctx context.Context, h plan.Hop, reps []driver.Replica) (map[string]any, error) {
	if !crossesInto37(h) {
		return nil, nil
	}
	v37 := semver.MustParse("3.7.0")
	byURL := map[string]string{}
	var check []string
	for _, r := range reps {
		v, err := semver.NewVersion(r.Version)
		if err == nil && !v.LessThan(v37) {
			continue // started on 3.7 already
		}
		byURL[r.URL] = r.ID
		check = append(check, r.URL)
	}
	if len(check) == 0 {
		return map[string]any{"snapshots": "every member runs 3.7"}, nil
	}
	if a.DataDir == nil {
		return nil, fmt.Errorf("check snapshots before etcd 3.7: %w: ladder cannot read their data folders through this driver "+
			"(make every member snapshot on 3.6 first: restart each on 3.6 with --snapshot-count=100 and write a few keys, then run the upgrade again)",
			ErrCannotCheckSnapshots)
	}
	log := a.log()
	barrier, err := etcd.Barrier(ctx, endpointsOf(reps), a.TLS, log)
	if err != nil {
		return nil, err
	}
	index := func(_ context.Context, ep string) (uint64, error) {
		id := byURL[ep]
		dir, ok := a.DataDir(id)
		if !ok {
			return 0, fmt.Errorf("%w: no data folder of %s on this machine", ErrCannotCheckSnapshots, id)
		}
		return etcd.SnapshotIndex(dir)
	}
	before := map[string]uint64{}
	for _, ep := range check {
		i, err := index(ctx, ep)
		if err != nil {
			return nil, fmt.Errorf("check snapshots before etcd 3.7: %s: %w", byURL[ep], err)
		}
		before[byURL[ep]] = i
	}
	out := map[string]any{"barrier": barrier, "snapshots_before": before}
	if etcd.CheckSnapshots(barrier, before) == nil {
		out["forced_snapshots"] = false
		return out, nil
	}
	log.Info("members have not snapshotted past the entries etcd 3.5 wrote, which etcd 3.7 cannot read: forcing snapshots",
		"barrier", barrier, "snapshots", before)
	if err := etcd.ForceSnapshots(ctx, check, a.TLS, barrier, index, etcd.ForceSnapshotsOptions{}, log); err != nil {
		return nil, err
	}
	out["forced_snapshots"] = true
	return out, nil
}

// Record implements upgrade.Recorder: an etcd cluster keeps no upgrade
// record of ladder's; the journal on this machine is the record.
func (*EtcdApp) Record() upgrade.ClusterRecord { return nil }
