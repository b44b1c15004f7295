package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// The 3.6 → 3.7 hazard
//
// etcd 3.5 writes some raft log entries in the old etcd v2 request format
// (pb.Request): every 3.5 member publishes its attributes that way when it
// starts, and a 3.5 leader sets the cluster version that way. etcd 3.6
// still reads such entries ("backward compatible": it tries the v3 format
// and falls back to v2). etcd 3.7 does not: it decodes every entry it
// replays as a v3 request and panics on an old one, and the member exits:
//
//	panic: unmarshal should never fail (proto: cannot parse invalid wire-format data)
//	… etcdserver/apply.Apply
//
// A member replays, when it starts, every WAL entry after its newest raft
// snapshot (3.7 finds that snapshot from the snapshot records in the WAL,
// not from member/snap/*.snap). A member snapshots only after
// --snapshot-count entries since its last snapshot (100,000 by default in
// 3.5, 10,000 in 3.6), so a small or quiet cluster created on 3.5 and
// rolled to 3.6 can still hold 3.5 entries after its newest snapshot.
// Starting such a member on 3.7 crashes it, although the etcd upgrade
// guide's conditions (3.6.11 or later, healthy cluster) hold. The crashed
// member starts again on 3.6 with its data intact.
//
// A 3.6 member restarted after the cluster version reached 3.6 sometimes
// snapshots by itself: replaying the 3.5 leader's "cluster version 3.5.0"
// entry looks like a downgrade, and 3.6 forces a snapshot after one. That
// happens only while that entry is still in the replayed log, so it is no
// fix to count on.
//
// The fix: while every member runs 3.6, make every member take a snapshot
// past the last entry any 3.5 member could have written. Barrier finds a
// raft index past every such entry; ForceSnapshots proposes no-op entries
// until every member's newest snapshot reaches it (up to --snapshot-count
// of them; a member restarted on 3.6 with a low --snapshot-count snapshots
// as soon as it has replayed its log); CheckSnapshots is the precondition
// to check before starting any member on 3.7. Members that already run 3.7
// need no check: they started.

// noopKey is the key of the no-op entries Barrier and ForceSnapshots
// propose. It is never written (see noop).
const noopKey = "ladder/etcd-noop"

// requestTimeout bounds one request of Barrier and ForceSnapshots.
const requestTimeout = 5 * time.Second

// noop proposes a raft entry that changes nothing: a transaction whose
// condition never holds (no key has a negative create revision) and
// whose success branch writes, so etcd must order it through raft and
// apply it on every member, yet no key and no revision changes. It returns
// once the serving member has applied it.
func noop(ctx context.Context, c *clientv3.Client) error {
	resp, err := c.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(noopKey), "<", 0)).
		Then(clientv3.OpPut(noopKey, "")).
		Commit()
	if err == nil && resp.Succeeded {
		return fmt.Errorf("no-op transaction wrote %s", noopKey) // cannot happen
	}
	return err
}

// Barrier returns a raft index at or past every log entry an etcd 3.5
// member could have written. It checks that every member answers and runs
// etcd 3.6 or later (an error wrapping ErrNotAllOn36 otherwise), so no 3.5
// process is left to propose anything; then it proposes a no-op entry
// through the leader and returns the leader's applied index once that
// entry is applied. Any entry a 3.5 member proposed precedes it in the
// log. Call it at the start of the 3.6 → 3.7 hop (any time after the
// cluster version has reached 3.6); it changes no key.
func Barrier(ctx context.Context, endpoints []string, tlsConf *tls.Config, log *slog.Logger) (uint64, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r, err := Probe(ctx, endpoints, tlsConf, log)
	if err != nil {
		return 0, fmt.Errorf("set pre-3.6 barrier: %w", err)
	}
	var old []string
	for _, m := range r.Members {
		switch {
		case !m.Reachable:
			return 0, fmt.Errorf("set pre-3.6 barrier: %s %s: every member must answer", m.label(), orDefault(m.Error, "does not answer"))
		case !atLeastMinor(m.Version, 3, 6):
			old = append(old, m.label()+" runs "+m.Version)
		}
	}
	if len(old) > 0 {
		return 0, fmt.Errorf("set pre-3.6 barrier: %s: %w (finish the hop to 3.6 first)", strings.Join(old, ", "), ErrNotAllOn36)
	}
	leader, ok := r.Leader()
	if !ok {
		return 0, errors.New("set pre-3.6 barrier: no leader (wait until the cluster has one)")
	}
	c, err := newClient([]string{leader.Endpoint}, tlsConf)
	if err != nil {
		return 0, fmt.Errorf("set pre-3.6 barrier: %w", err)
	}
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := noop(wctx, c); err != nil {
		return 0, fmt.Errorf("set pre-3.6 barrier: propose a no-op entry through %s: %w", leader.label(), err)
	}
	st, err := c.Status(wctx, leader.Endpoint)
	if err != nil {
		return 0, fmt.Errorf("set pre-3.6 barrier: status of %s: %w", leader.label(), err)
	}
	log.Info("pre-3.6 barrier set", "index", st.RaftAppliedIndex, "leader", leader.label())
	return st.RaftAppliedIndex, nil
}

// SnapshotIndex returns the raft index of the newest snapshot recorded in
// the WAL of the member whose --data-dir is dataDir (its WAL is
// dataDir/member/wal; use SnapshotIndexWAL for a separate --wal-dir). That
// is where etcd 3.7 starts replaying the log. 0 means the member never
// snapshotted. It only reads, so the member may be running.
func SnapshotIndex(dataDir string) (uint64, error) {
	return SnapshotIndexWAL(filepath.Join(dataDir, "member", "wal"))
}

// SnapshotIndexWAL is SnapshotIndex for a WAL folder.
func SnapshotIndexWAL(walDir string) (uint64, error) {
	snaps, err := wal.ValidSnapshotEntries(zap.NewNop(), walDir)
	if err != nil {
		return 0, fmt.Errorf("read snapshot records in %s: %w", walDir, err)
	}
	var idx uint64
	for _, s := range snaps {
		idx = max(idx, s.GetIndex())
	}
	return idx, nil
}

// SnapFileIndex returns the index of the newest snapshot file among names
// (the entries of a member's member/snap folder, as a driver that can only
// list a container's files sees them), and false if there is none. Files
// are named %016x-%016x.snap (term, index). etcd writes the file just
// before the WAL record, so after a crash the newest file can be one
// snapshot ahead of the WAL: SnapshotIndex is authoritative when the data
// directory can be read.
func SnapFileIndex(names []string) (uint64, bool) {
	var idx uint64
	found := false
	for _, n := range names {
		n = filepath.Base(n)
		base, ok := strings.CutSuffix(n, ".snap")
		if !ok {
			continue
		}
		_, hexIdx, ok := strings.Cut(base, "-")
		if !ok {
			continue
		}
		i, err := strconv.ParseUint(hexIdx, 16, 64)
		if err != nil {
			continue
		}
		idx, found = max(idx, i), true
	}
	return idx, found
}

// CheckSnapshots is the precondition for starting members on etcd 3.7:
// every member's newest snapshot index (indexes, keyed by member) is at or
// past barrier (from Barrier). Otherwise it returns a *SnapshotBehindError
// (errors.Is ErrSnapshotBehind) naming the members behind. Pure.
func CheckSnapshots(barrier uint64, indexes map[string]uint64) error {
	behind := map[string]uint64{}
	for m, idx := range indexes {
		if idx < barrier {
			behind[m] = idx
		}
	}
	if len(behind) > 0 {
		return &SnapshotBehindError{Barrier: barrier, Behind: behind}
	}
	return nil
}

// SnapshotIndexFunc reads the newest snapshot index of the member at a
// client endpoint: SnapshotIndex of its data directory for a local
// process, a listing of member/snap for a container (SnapFileIndex).
type SnapshotIndexFunc func(ctx context.Context, endpoint string) (uint64, error)

// ForceSnapshotsOptions tune ForceSnapshots.
type ForceSnapshotsOptions struct {
	// MaxEntries bounds the entries proposed before giving up (default
	// 12,000: past 3.6's default --snapshot-count of 10,000).
	MaxEntries int
	// Parallel is how many entries are proposed at once (default 16).
	Parallel int
}

// ForceSnapshots makes every member at endpoints snapshot at or past
// barrier: it proposes no-op entries (see noop; no key changes) in growing
// batches until index reports every member at or past barrier. A member
// snapshots once it has applied --snapshot-count entries since its last
// snapshot, so with 3.6's default it may take up to 10,000 entries
// (seconds on a healthy cluster); a member restarted on 3.6 with a low
// --snapshot-count snapshots as soon as it has replayed its log. It gives
// up after opts.MaxEntries entries with a *SnapshotBehindError naming the
// members still behind, and --snapshot-count as the likely cause. Run it
// while every member runs 3.6, after Barrier.
func ForceSnapshots(ctx context.Context, endpoints []string, tlsConf *tls.Config, barrier uint64, index SnapshotIndexFunc, opts ForceSnapshotsOptions, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 12000
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	c, err := newClient(endpoints, tlsConf)
	if err != nil {
		return fmt.Errorf("force snapshots: %w", err)
	}
	defer c.Close()

	read := func() (map[string]uint64, error) {
		idx := map[string]uint64{}
		for _, ep := range endpoints {
			i, err := index(ctx, ep)
			if err != nil {
				return nil, fmt.Errorf("force snapshots: snapshot index of %s: %w", ep, err)
			}
			idx[ep] = i
		}
		return idx, nil
	}
	start := time.Now()
	written, batch := 0, 32
	for {
		idx, err := read()
		if err != nil {
			return err
		}
		err = CheckSnapshots(barrier, idx)
		if err == nil {
			log.Info("every member snapshotted past the pre-3.6 barrier", "barrier", barrier, "entries", written,
				"snapshot_indexes", idx, "seconds", time.Since(start).Round(10*time.Millisecond).Seconds())
			return nil
		}
		if written >= opts.MaxEntries {
			// Snapshots are saved just after the entries are applied: give
			// the members a moment to finish the last one before giving up.
			if ok, _ := pollUntil(ctx, 2*time.Second, func() bool {
				idx, err := read()
				return err == nil && CheckSnapshots(barrier, idx) == nil
			}); ok {
				continue
			}
			return fmt.Errorf("force snapshots: %d no-op entries did not make every member snapshot (is --snapshot-count above %d? "+
				"restart the members on 3.6 with --snapshot-count=100 and retry): %w", written, opts.MaxEntries, err)
		}
		n := min(batch, opts.MaxEntries-written)
		if err := noops(ctx, c, n, opts.Parallel); err != nil {
			return fmt.Errorf("force snapshots: after %d entries: %w", written, err)
		}
		written += n
		batch = min(batch*2, 1024)
		log.Debug("proposed no-op entries to force snapshots", "entries", written, "barrier", barrier, "snapshot_indexes", idx)
	}
}

// noops proposes n no-op entries, parallel at once.
func noops(ctx context.Context, c *clientv3.Client, n, parallel int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for range n {
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(gctx, requestTimeout)
			defer cancel()
			return noop(pctx, c)
		})
	}
	return g.Wait()
}

// pollUntil calls cond every 50 ms until it is true or limit has passed;
// it reports whether cond became true.
func pollUntil(ctx context.Context, limit time.Duration, cond func() bool) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
