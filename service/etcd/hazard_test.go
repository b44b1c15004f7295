package etcd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckSnapshots(t *testing.T) {
	tests := []struct {
		name       string
		barrier    uint64
		indexes    map[string]uint64
		wantBehind []string
	}{
		{name: "all past", barrier: 100, indexes: map[string]uint64{"a": 100, "b": 250}},
		{name: "never snapshotted", barrier: 5030, indexes: map[string]uint64{"a": 0, "b": 0, "c": 5101},
			wantBehind: []string{"a", "b"}},
		{name: "one short", barrier: 5030, indexes: map[string]uint64{"a": 5029, "b": 5030}, wantBehind: []string{"a"}},
		{name: "no members", barrier: 5030},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSnapshots(tc.barrier, tc.indexes)
			if len(tc.wantBehind) == 0 {
				if err != nil {
					t.Fatalf("CheckSnapshots = %v, want nil", err)
				}
				return
			}
			var be *SnapshotBehindError
			if !errors.As(err, &be) || !errors.Is(err, ErrSnapshotBehind) {
				t.Fatalf("CheckSnapshots = %v, want a *SnapshotBehindError", err)
			}
			if got := sortedKeys(be.Behind); strings.Join(got, ",") != strings.Join(tc.wantBehind, ",") {
				t.Errorf("behind = %v, want %v", got, tc.wantBehind)
			}
			for _, m := range tc.wantBehind {
				if !strings.Contains(err.Error(), m+" at ") {
					t.Errorf("error %q does not name %s", err, m)
				}
			}
		})
	}
}

func TestSnapFileIndex(t *testing.T) {
	tests := []struct {
		name  string
		names []string
		want  uint64
		found bool
	}{
		{name: "none", names: []string{"db", "0000000000000002-00000000000013a5.snap.db.tmp"}},
		{name: "newest wins", names: []string{
			"0000000000000002-0000000000001389.snap",
			"member/snap/0000000000000003-00000000000013ee.snap",
			"db",
			"0000000000000002-00000000000013a5.snap.broken",
		}, want: 0x13ee, found: true},
		{name: "garbage", names: []string{"x-zz.snap", "nodash.snap"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, found := SnapFileIndex(tc.names)
			if got != tc.want || found != tc.found {
				t.Errorf("SnapFileIndex = %d, %v; want %d, %v", got, found, tc.want, tc.found)
			}
		})
	}
}

// TestHazard36to37 reproduces the 3.6 → 3.7 hazard on real releases and
// proves the fix: a cluster created on 3.5.35 with 5,000 keys, rolled to
// 3.6.16, has never snapshotted, and its first member started on 3.7.3
// panics replaying 3.5 entries. After Barrier and ForceSnapshots every
// member's snapshot is past the barrier, CheckSnapshots passes, and the
// roll to 3.7.3 finishes with every key and cluster version 3.7.0.
//
// Two fixes: restarting the members on 3.6 with a low --snapshot-count,
// or only proposing entries (up to 3.6's default --snapshot-count of
// 10,000). A third case snapshots on 3.5 and restarts its members there
// (as a patch upgrade does) before the hop to 3.6: the only 3.5 entries
// left are the members' attribute updates, and a plain restart on 3.6
// does not snapshot past them.
func TestHazard36to37(t *testing.T) {
	requireEtcdTests(t)
	bins := fetchReleases(t, "3.5.35", "3.6.16", "3.7.3")
	for _, fix := range []struct {
		name string
		// create35 are flags of every start on 3.5.35.
		create35 []string
		// restart35 restarts every member on 3.5.35 once after the load.
		restart35 bool
		// lowCount restarts every member on 3.6 with this
		// --snapshot-count before forcing snapshots ("": no restart).
		lowCount string
		// plainRestartBehind: after the failed 3.7 start, a plain
		// restart on 3.6 leaves the member's snapshot behind the barrier.
		plainRestartBehind bool
	}{
		{name: "never snapshotted, restart with low snapshot-count", lowCount: "100"},
		{name: "never snapshotted, entries only"},
		{name: "snapshotted on 3.5, restarted there, entries only",
			create35: []string{"--snapshot-count", "1000"}, restart35: true, plainRestartBehind: true},
	} {
		t.Run(fix.name, func(t *testing.T) {
			c := newTestCluster(t, bins, "3.5.35", 3, withArgs("3.5.35", fix.create35...))
			c.load()
			c.waitSettled(50)
			if fix.restart35 {
				for _, m := range c.rollOrder() {
					c.stop(m)
					c.start(m, "3.5.35")
					c.waitHealthy(m)
					c.waitSettled(50)
				}
			}

			for _, m := range c.rollOrder() {
				c.stop(m)
				c.start(m, "3.6.16")
				c.waitHealthy(m)
				c.waitSettled(50)
			}
			c.waitClusterVersion("3.6.0")
			revBefore := c.waitSettled(50).Members[0].Revision

			barrier, err := Barrier(t.Context(), c.endpoints(), c.clientTLS(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			before := c.snapshotIndexes()
			t.Logf("barrier %d; snapshot indexes on 3.6 before the fix: %v", barrier, before)
			if err := CheckSnapshots(barrier, before); !errors.Is(err, ErrSnapshotBehind) {
				t.Fatalf("CheckSnapshots before the fix = %v, want ErrSnapshotBehind (the hazard is not present)", err)
			} else {
				t.Logf("precondition refuses, as it should: %v", err)
			}

			// The hazard: the first member started on 3.7.3 panics.
			order := c.rollOrder()
			victim := order[0]
			c.stop(victim)
			c.start(victim, "3.7.3")
			waitFor(t, victim.name+" on 3.7.3 to panic or become healthy", func() (bool, string) {
				if !victim.running() {
					return true, ""
				}
				ok, why := c.healthy(victim)
				return ok, why
			})
			if victim.running() {
				t.Fatalf("%s started on 3.7.3 without the fix and is healthy: the hazard did not reproduce", victim.name)
			}
			const panicText = "unmarshal should never fail"
			if line := lastLineWith(victim.logPath, panicText); line == "" {
				t.Fatalf("%s exited (%v) without %q in its log:\n%s", victim.name, victim.exitErr, panicText, victim.logTail(30))
			} else {
				t.Logf("%s on 3.7.3 without the fix: %v; log:\n%s\n%s\n%s", victim.name, victim.exitErr,
					strings.Join(victim.linesSinceStart("constructed a snapshot from WAL record"), "\n"),
					line, lastLineWith(victim.logPath, "etcdserver/apply.Apply("))
			}

			// The member still starts on 3.6 after the failed start.
			var extra []string
			if fix.lowCount != "" {
				extra = []string{"--snapshot-count", fix.lowCount}
			}
			c.start(victim, "3.6.16", extra...)
			c.waitHealthy(victim)
			c.waitSettled(50)
			t.Logf("%s back on 3.6.16:\n%s\n%s", victim.name, strings.Join(victim.linesSinceStart("forcing snapshot"), "\n"),
				strings.Join(victim.linesSinceStart("saved snapshot"), "\n"))
			if fix.plainRestartBehind {
				idx, err := SnapshotIndex(victim.dir)
				if err != nil {
					t.Fatal(err)
				}
				if idx >= barrier {
					t.Fatalf("%s snapshotted at %d on a plain restart on 3.6, past the barrier %d", victim.name, idx, barrier)
				}
				t.Logf("%s after a plain restart on 3.6: snapshot index %d, still behind the barrier %d", victim.name, idx, barrier)
			}
			if fix.lowCount != "" {
				for _, m := range c.rollOrder() {
					if m == victim {
						continue
					}
					c.stop(m)
					c.start(m, "3.6.16", extra...)
					c.waitHealthy(m)
					c.waitSettled(50)
				}
			}

			if err := ForceSnapshots(t.Context(), c.endpoints(), c.clientTLS(), barrier, c.indexFunc(), ForceSnapshotsOptions{}, testLogger(t)); err != nil {
				t.Fatal(err)
			}
			if rev := c.waitSettled(50).Members[0].Revision; rev != revBefore {
				t.Errorf("revision moved from %d to %d: Barrier and ForceSnapshots must change no key", revBefore, rev)
			}
			after := c.snapshotIndexes()
			if err := CheckSnapshots(barrier, after); err != nil {
				t.Fatalf("after ForceSnapshots: %v", err)
			}
			for _, m := range c.members {
				names, err := os.ReadDir(filepath.Join(m.dir, "member", "snap"))
				if err != nil {
					t.Fatal(err)
				}
				var ns []string
				for _, n := range names {
					ns = append(ns, n.Name())
				}
				if fi, ok := SnapFileIndex(ns); !ok || fi < after[m.name] {
					t.Errorf("%s: newest .snap file index %d (found %v), WAL snapshot index %d", m.name, fi, ok, after[m.name])
				}
			}
			t.Logf("snapshot indexes after the fix: %v (barrier %d)", after, barrier)

			for _, m := range c.rollOrder() {
				c.stop(m)
				c.start(m, "3.7.3")
				c.waitHealthy(m)
				c.waitSettled(50)
			}
			c.waitClusterVersion("3.7.0")
			c.checkKeys()
			for _, m := range c.members {
				if line := lastLineWith(m.logPath, "panic"); line != "" && m != victim {
					t.Errorf("%s logged a panic: %s", m.name, line)
				}
			}
		})
	}
}

// lastLineWith returns the last line of the file at path that contains s.
func lastLineWith(path, s string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
