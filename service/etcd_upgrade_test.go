package service_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/service/etcd"
	"github.com/ladder-dev/ladder/upgrade"
)

// These tests run real etcd releases under the local driver and the
// upgrade engine. They need LADDER_ETCD_TESTS=1 and the releases built in
// the cache (ladder releases fetch etcd 3.5.35 3.6.16 3.7.3; the cache is
// LADDER_ETCD_CACHE, default ~/.ladder/cache).

const (
	etcdFrom   = "3.5.35"
	etcdMiddle = "3.6.16"
	etcdTarget = "3.7.3"
	etcdKeys   = 5000
	writeEvery = 50 * time.Millisecond
)

func etcdCache(t *testing.T) string {
	t.Helper()
	if os.Getenv("LADDER_ETCD_TESTS") != "1" {
		t.Skip("runs real etcd clusters (minutes): set LADDER_ETCD_TESTS=1, with the releases built (ladder releases fetch etcd 3.5.35 3.6.16 3.7.3)")
	}
	dir := os.Getenv("LADDER_ETCD_CACHE")
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(h, ".ladder", "cache")
	}
	for _, v := range []string{etcdFrom, etcdMiddle, etcdTarget} {
		if _, err := etcd.Cached(dir, v); err != nil {
			t.Skipf("etcd %s is not built in %s: run ladder releases fetch etcd %s %s %s (LADDER_ETCD_CACHE names another cache)",
				v, dir, etcdFrom, etcdMiddle, etcdTarget)
		}
	}
	return dir
}

type etcdCluster struct {
	t   *testing.T
	d   *local.Driver
	app *service.EtcdApp
}

// newEtcdCluster creates 3 members at version with etcdKeys keys.
func newEtcdCluster(t *testing.T, cache, name, version string) *etcdCluster {
	t.Helper()
	root := t.TempDir()
	d, err := local.Create(t.Context(), driver.Spec{Cluster: name, Service: service.Etcd{CacheDir: cache}, Version: version,
		Replicas: 3, Timeout: time.Minute}, local.Options{Home: root})
	if err != nil {
		t.Fatalf("create cluster: %v", err)
	}
	t.Cleanup(func() { _ = d.Destroy(context.Background()) })
	c := &etcdCluster{t: t, d: d, app: &service.EtcdApp{Cluster: name,
		DataDir: func(id string) (string, bool) { return d.DataDir(id), true }}}
	t.Cleanup(func() { c.app.Close() })
	c.waitSettled()
	cl := c.client()
	for i := range etcdKeys {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := cl.Put(ctx, fmt.Sprintf("k/%05d", i), fmt.Sprintf("value-%05d-%s", i, strings.Repeat("x", 80)))
		cancel()
		if err != nil {
			t.Fatalf("load key %d: %v", i, err)
		}
	}
	return c
}

func (c *etcdCluster) replicas() []driver.Replica {
	c.t.Helper()
	reps, err := c.d.Replicas(c.t.Context())
	if err != nil {
		c.t.Fatal(err)
	}
	return reps
}

func (c *etcdCluster) client() *clientv3.Client {
	c.t.Helper()
	var eps []string
	for _, r := range c.replicas() {
		eps = append(eps, r.URL)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// waitSettled waits for the settled rule, as a script would.
func (c *etcdCluster) waitSettled() upgrade.Status {
	c.t.Helper()
	var st upgrade.Status
	err := poll.For(c.t.Context(), 2*time.Minute, 50*time.Millisecond, func() (bool, error) {
		var err error
		st, err = c.app.Status(c.t.Context(), c.replicas())
		return err == nil && st.Store.Settled, nil
	})
	if err != nil {
		c.t.Fatalf("cluster did not settle: %v; last: %v", err, st.Unsettled())
	}
	return st
}

func (c *etcdCluster) waitClusterVersion(want string) {
	c.t.Helper()
	err := poll.For(c.t.Context(), 2*time.Minute, 50*time.Millisecond, func() (bool, error) {
		st, err := c.app.Status(c.t.Context(), c.replicas())
		return err == nil && st.ClusterVersion == want, nil
	})
	if err != nil {
		c.t.Fatalf("cluster version did not reach %s: %v", want, err)
	}
}

func (c *etcdCluster) checkKeys() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	resp, err := c.client().Get(ctx, "k/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		c.t.Fatalf("count keys: %v", err)
	}
	if resp.Count != etcdKeys {
		c.t.Errorf("%d keys after the upgrade, want %d", resp.Count, etcdKeys)
	}
}

type writer struct {
	done, exited chan struct{}
	mu           sync.Mutex
	acked        []string
	failed       int
	maxGap       time.Duration
}

// startWriter writes and acknowledges a key every writeEvery.
func (c *etcdCluster) startWriter() *writer {
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
			w.mu.Lock()
			if err != nil {
				w.failed++
			} else {
				now := time.Now()
				w.maxGap = max(w.maxGap, now.Sub(last))
				last = now
				w.acked = append(w.acked, key)
			}
			w.mu.Unlock()
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

func (c *etcdCluster) checkWrites(w *writer) {
	c.t.Helper()
	w.stop()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	resp, err := c.client().Get(ctx, "w/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		c.t.Fatalf("read the writer's keys: %v", err)
	}
	have := map[string]bool{}
	for _, kv := range resp.Kvs {
		have[string(kv.Key)] = true
	}
	missing := 0
	for _, k := range w.acked {
		if !have[k] {
			missing++
		}
	}
	if missing > 0 {
		c.t.Errorf("%d of %d acknowledged writes are missing", missing, len(w.acked))
	}
	c.t.Logf("FIGURE writer: %d writes acknowledged, %d failed, longest time without an acknowledged write %.2fs",
		len(w.acked), w.failed, w.maxGap.Seconds())
}

// upgrade runs the engine to target and returns each hop's wall time.
func (c *etcdCluster) upgrade(target string, onEvent func(upgrade.Event)) (map[string]time.Duration, []upgrade.Event, error) {
	c.t.Helper()
	j, err := journal.Open(filepath.Join(c.t.TempDir(), "journal"))
	if err != nil {
		c.t.Fatal(err)
	}
	p, err := plan.Make(service.EtcdCatalog(), policy.MustParse(etcdFrom), policy.MustParse(target), plan.Options{MinPatch: service.EtcdRules()})
	if err != nil {
		c.t.Fatal(err)
	}
	hops := map[string]time.Duration{}
	var events []upgrade.Event
	var mu sync.Mutex
	opts := upgrade.DefaultOptions()
	e := &upgrade.Engine{Driver: c.d, App: c.app, Journal: j, Options: opts,
		OnEvent: func(ev upgrade.Event) {
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
			if ev.Type != upgrade.EventWaitProgress {
				c.t.Logf("event %s %s %s", ev.Type, ev.Step, ev.Message)
			}
			if ev.Type == upgrade.EventHopDone {
				if d, ok := ev.Fields["duration"].(time.Duration); ok {
					hops[ev.Hop] = d
				}
			}
			if onEvent != nil {
				onEvent(ev)
			}
		}}
	err = e.Run(c.t.Context(), p)
	mu.Lock()
	defer mu.Unlock()
	return hops, events, err
}

// rollByHand is what an operator's script does for one hop: before 3.7
// force the snapshots (the same library calls), then replace each member,
// followers first, waiting for the settled rule after each, then for the
// cluster version.
func (c *etcdCluster) rollByHand(to, clusterVersion string) time.Duration {
	c.t.Helper()
	start := time.Now()
	st := c.waitSettled()
	if strings.HasPrefix(to, "3.7.") {
		var eps []string
		for _, r := range c.replicas() {
			eps = append(eps, r.URL)
		}
		barrier, err := etcd.Barrier(c.t.Context(), eps, nil, nil)
		if err != nil {
			c.t.Fatal(err)
		}
		byURL := map[string]string{}
		for _, r := range c.replicas() {
			byURL[r.URL] = r.ID
		}
		index := func(_ context.Context, ep string) (uint64, error) { return etcd.SnapshotIndex(c.d.DataDir(byURL[ep])) }
		if err := etcd.ForceSnapshots(c.t.Context(), eps, nil, barrier, index, etcd.ForceSnapshotsOptions{}, nil); err != nil {
			c.t.Fatal(err)
		}
	}
	var ids []string
	for _, r := range st.Replicas {
		ids = append(ids, r.ID)
	}
	for _, id := range upgrade.RollOrder(st, ids) {
		if err := c.d.Replace(c.t.Context(), id, to); err != nil {
			c.t.Fatalf("replace %s: %v", id, err)
		}
		c.waitSettled()
	}
	c.waitClusterVersion(clusterVersion)
	return time.Since(start)
}

// TestEtcdUpgradeDoneWhen is issue 15's run: 3 members at 3.5.35 with
// 5,000 keys and a writer acknowledging a key every 50 ms; ladder's
// engine upgrades to 3.7.3 through 3.6.16, forcing the snapshots 3.7
// needs; every key and acknowledged write is there and the cluster
// version is 3.7.0. A second cluster rolled by a script in the same run
// gives the per-hop ratio.
func TestEtcdUpgradeDoneWhen(t *testing.T) {
	cache := etcdCache(t)
	c := newEtcdCluster(t, cache, "ladder", etcdFrom)
	w := c.startWriter()
	hops, events, err := c.upgrade(etcdTarget, nil)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	c.checkWrites(w)
	c.checkKeys()
	c.waitClusterVersion("3.7.0")
	forced := false
	for _, ev := range events {
		if ev.Type == upgrade.EventStepDone && strings.HasSuffix(ev.Step, "/preflight") && strings.Contains(ev.Step, "3.6.16->3.7.3") {
			t.Logf("preflight of the 3.7 hop: %v", ev.Fields)
			forced = true
		}
	}
	if !forced {
		t.Errorf("no preflight of hop 3.6.16->3.7.3 seen")
	}

	byHand := newEtcdCluster(t, cache, "script", etcdFrom)
	bw := byHand.startWriter()
	h1 := byHand.rollByHand(etcdMiddle, "3.6.0")
	h2 := byHand.rollByHand(etcdTarget, "3.7.0")
	byHand.checkWrites(bw)
	byHand.checkKeys()
	for _, r := range []struct {
		hop  string
		hand time.Duration
	}{{etcdFrom + "->" + etcdMiddle, h1}, {etcdMiddle + "->" + etcdTarget, h2}} {
		t.Logf("FIGURE hop %s: ladder %.1fs, script %.1fs, ratio %.2f", r.hop, hops[r.hop].Seconds(), r.hand.Seconds(),
			hops[r.hop].Seconds()/r.hand.Seconds())
	}
}

// TestEtcdFrozenMemberMidHop freezes a member that was already rolled
// while the hop goes on: the engine names it and restarts it, and the hop
// finishes.
func TestEtcdFrozenMemberMidHop(t *testing.T) {
	cache := etcdCache(t)
	c := newEtcdCluster(t, cache, "frozen", etcdFrom)
	w := c.startWriter()
	var once sync.Once
	var frozen string
	_, events, err := c.upgrade(etcdMiddle, func(ev upgrade.Event) {
		// When the second member's replace starts, freeze the first.
		if ev.Type == upgrade.EventStepDone && strings.HasSuffix(ev.Step, "/wait") {
			once.Do(func() {
				ref, err := upgrade.ParseStep(ev.Step)
				if err != nil {
					t.Errorf("parse step %s: %v", ev.Step, err)
					return
				}
				frozen = ref.Replica
				go func() {
					if err := c.d.Freeze(context.Background(), frozen); err != nil {
						t.Errorf("freeze %s: %v", frozen, err)
					}
				}()
			})
		}
	})
	if err != nil {
		t.Fatalf("upgrade with %s frozen: %v", frozen, err)
	}
	named, repaired := false, false
	for _, ev := range events {
		switch {
		case (ev.Type == upgrade.EventFault || ev.Type == upgrade.EventStall) && strings.Contains(ev.Message, frozen):
			named = true
			t.Logf("FIGURE named: %s", ev.Message)
		case ev.Type == upgrade.EventRemediation && strings.Contains(ev.Message, frozen):
			repaired = true
			t.Logf("FIGURE repaired: %s", ev.Message)
		}
	}
	if !named || !repaired {
		t.Errorf("frozen member %s: named %v, repaired %v", frozen, named, repaired)
	}
	c.checkWrites(w)
	c.checkKeys()
	c.waitClusterVersion("3.6.0")
}
