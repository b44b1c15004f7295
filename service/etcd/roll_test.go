package etcd

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// hopTiming is one hop of a by-hand roll.
type hopTiming struct {
	from, to string
	// members: per member, in roll order, how long SIGTERM took to stop
	// it and how long the new release took to answer /health.
	members []memberTiming
	// versionAfter: from the last member healthy to the cluster version
	// reporting the new minor.
	versionAfter time.Duration
	// total: from the first stop to the cluster version reporting the new
	// minor.
	total time.Duration
}

type memberTiming struct {
	name         string
	leader       bool
	stop, health time.Duration
}

// rollByHand replaces every member with version to, the way an operator's
// script does: find the leader (it goes last); for each member, wait until
// every member answers /health, stop it with SIGTERM, start the new
// binary on the same data dir, wait until it answers /health; then wait
// for the cluster version to move to the new minor.
func (c *testCluster) rollByHand(to, clusterVersion string) hopTiming {
	c.t.Helper()
	h := hopTiming{from: c.members[0].version, to: to}
	order := c.rollOrder()
	start := time.Now()
	for i, m := range order {
		c.waitAllHealthy()
		t0 := time.Now()
		c.stop(m)
		t1 := time.Now()
		c.start(m, to)
		c.waitHealthy(m)
		h.members = append(h.members, memberTiming{name: m.name, leader: i == len(order)-1, stop: t1.Sub(t0), health: time.Since(t1)})
	}
	lastHealthy := time.Now()
	c.waitClusterVersion(clusterVersion)
	h.versionAfter = time.Since(lastHealthy)
	h.total = time.Since(start)
	return h
}

func (h hopTiming) String() string {
	var parts []string
	for _, m := range h.members {
		role := ""
		if m.leader {
			role = " (leader)"
		}
		parts = append(parts, fmt.Sprintf("%s%s stop %.1fs health %.1fs", m.name, role, m.stop.Seconds(), m.health.Seconds()))
	}
	return fmt.Sprintf("%s→%s %.1fs [%s; cluster version %.1fs after the last member]",
		h.from, h.to, h.total.Seconds(), strings.Join(parts, ", "), h.versionAfter.Seconds())
}

// TestRollByHand measures the baseline ladder is compared against: a
// scripted roll of a 3-member cluster with 5,000 keys from 3.5.35 to 3.6.16
// to 3.7.3, member by member, leader last, with the snapshot fix between
// the hops (timed apart), while a writer puts a key every 50 ms (the
// longest time without an acknowledged write is logged; every
// acknowledged write must be there at the end). LADDER_ETCD_RUNS sets how many runs (default 1);
// the figures are logged, medians last. It asserts only the outcome (keys,
// cluster version), never a duration.
func TestRollByHand(t *testing.T) {
	requireEtcdTests(t)
	runs := 1
	if s := os.Getenv("LADDER_ETCD_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("LADDER_ETCD_RUNS=%q: want a positive number", s)
		}
		runs = n
	}
	bins := fetchReleases(t, "3.5.35", "3.6.16", "3.7.3")
	var hop1, fix, hop2, gap []time.Duration
	for run := range runs {
		t.Run(fmt.Sprintf("run%d", run+1), func(t *testing.T) {
			c := newTestCluster(t, bins, "3.5.35", 3)
			c.load()
			c.waitSettled(50)
			w := c.startWriter()

			h1 := c.rollByHand("3.6.16", "3.6.0")
			t.Logf("hop %s", h1)

			t0 := time.Now()
			barrier, err := Barrier(t.Context(), c.endpoints(), c.clientTLS(), testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			if err := ForceSnapshots(t.Context(), c.endpoints(), c.clientTLS(), barrier, c.indexFunc(), ForceSnapshotsOptions{}, testLogger(t)); err != nil {
				t.Fatal(err)
			}
			f := time.Since(t0)
			t.Logf("snapshot fix (barrier, then no-op entries until every member snapshotted past it): %.1fs", f.Seconds())

			h2 := c.rollByHand("3.7.3", "3.7.0")
			t.Logf("hop %s", h2)
			w.stop()
			c.checkKeys()
			c.checkWrites(w)
			hop1, fix, hop2, gap = append(hop1, h1.total), append(fix, f), append(hop2, h2.total), append(gap, w.maxGap)
		})
	}
	if len(hop1) > 0 {
		t.Logf("median of %d runs: 3.5.35→3.6.16 %.1fs, snapshot fix %.1fs, 3.6.16→3.7.3 %.1fs, longest write gap %.2fs",
			len(hop1), median(hop1).Seconds(), median(fix).Seconds(), median(hop2).Seconds(), median(gap).Seconds())
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestFrom3520 starts below the minimum patch some guides set for 3.6
// (3.5.26) and takes the path a planner should: the latest 3.5 first, then
// 3.6. The 3.5.20 build has no etcdctl here (its etcdutl module is not
// served), which the roll does not need.
func TestFrom3520(t *testing.T) {
	requireEtcdTests(t)
	bins := fetchReleases(t, "3.5.20", "3.5.35", "3.6.16")
	c := newTestCluster(t, bins, "3.5.20", 3)
	c.load()
	c.waitSettled(50)
	t.Logf("hop %s", c.rollByHand("3.5.35", "3.5.0"))
	t.Logf("hop %s", c.rollByHand("3.6.16", "3.6.0"))
	c.checkKeys()
}

// writer puts a new key every writeEvery through a client of every
// member, and records what was acknowledged and the longest time between
// two acknowledgements.
type writer struct {
	done   chan struct{}
	exited chan struct{}
	acked  []string
	failed int
	maxGap time.Duration
}

const writeEvery = 50 * time.Millisecond

func (c *testCluster) startWriter() *writer {
	c.t.Helper()
	cl := c.client()
	w := &writer{done: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(w.exited)
		last := time.Now()
		tick := time.NewTicker(writeEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
			key := fmt.Sprintf("w/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := cl.Put(ctx, key, "x")
			cancel()
			if err != nil {
				w.failed++
				continue
			}
			now := time.Now()
			w.maxGap = max(w.maxGap, now.Sub(last))
			last = now
			w.acked = append(w.acked, key)
		}
	}()
	c.t.Cleanup(w.stop)
	return w
}

func (w *writer) stop() {
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	<-w.exited
}

// checkWrites asserts every write w saw acknowledged is there, and logs
// the writer's figures.
func (c *testCluster) checkWrites(w *writer) {
	c.t.Helper()
	cl := c.client()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	resp, err := cl.Get(ctx, "w/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		c.t.Fatalf("read the writer's keys: %v", err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	for _, k := range w.acked {
		if !have[k] {
			c.t.Errorf("acknowledged write %s is missing", k)
		}
	}
	c.t.Logf("writer: %d writes acknowledged, %d failed, longest time without an acknowledged write %.2fs",
		len(w.acked), w.failed, w.maxGap.Seconds())
}
