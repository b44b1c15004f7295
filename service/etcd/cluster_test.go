package etcd

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"
)

// testCluster is a real etcd cluster of processes on 127.0.0.1, for the
// end-to-end tests. Every process it starts is ended by t.Cleanup.
type testCluster struct {
	t       *testing.T
	bins    map[string]Binaries
	token   string
	members []*testMember
	// tls, when set, makes every URL https and every member require
	// client certificates from its clients and peers.
	tls *testTLS
	hc  *http.Client
	// args are extra flags for every start of a release.
	args map[string][]string
}

// clusterOption changes a test cluster before its members first start.
type clusterOption func(*testCluster)

// withTLS makes every URL https and every member require client
// certificates from its clients and peers.
func withTLS(s *testTLS) clusterOption { return func(c *testCluster) { c.tls = s } }

// withArgs adds flags to every start of version.
func withArgs(version string, args ...string) clusterOption {
	return func(c *testCluster) { c.args[version] = append(c.args[version], args...) }
}

type testMember struct {
	name      string
	dir       string // the member's --data-dir
	logPath   string
	clientURL string
	peerURL   string
	version   string // the release it runs or last ran
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has exited
	exitErr   error
	starts    int
}

// fetchReleases returns the cached builds of versions, building any that
// are missing (minutes each).
func fetchReleases(t *testing.T, versions ...string) map[string]Binaries {
	t.Helper()
	bins := map[string]Binaries{}
	for _, v := range versions {
		b, err := Fetch(t.Context(), testCacheDir(t), v, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		bins[v] = b
	}
	return bins
}

// newTestCluster starts n members of version as a new cluster and waits
// until every member is healthy.
func newTestCluster(t *testing.T, bins map[string]Binaries, version string, n int, opts ...clusterOption) *testCluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	c := &testCluster{t: t, bins: bins, token: fmt.Sprintf("ladder-test-%d", time.Now().UnixNano()),
		hc: &http.Client{Timeout: ProbeTimeout}, args: map[string][]string{}}
	for _, o := range opts {
		o(c)
	}
	scheme := "http"
	if c.tls != nil {
		scheme = "https"
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.tls.client
		c.hc.Transport = tr
	}
	t.Cleanup(c.hc.CloseIdleConnections)
	root := t.TempDir()
	for i := range n {
		m := &testMember{
			name:      fmt.Sprintf("m%d", i),
			clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i]),
			peerURL:   fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i+1]),
		}
		m.dir = filepath.Join(root, m.name, "data")
		m.logPath = filepath.Join(root, m.name, "etcd.log")
		if err := os.MkdirAll(filepath.Dir(m.dir), 0o755); err != nil {
			t.Fatal(err)
		}
		c.members = append(c.members, m)
	}
	t.Cleanup(c.killAll)
	for _, m := range c.members {
		c.start(m, version)
	}
	for _, m := range c.members {
		c.waitHealthy(m)
	}
	return c
}

func (c *testCluster) initialCluster() string {
	var parts []string
	for _, m := range c.members {
		parts = append(parts, m.name+"="+m.peerURL)
	}
	return strings.Join(parts, ",")
}

// start runs m on version with its data dir, and extra flags. The
// initial-cluster flags matter only the first time; later starts find the
// data dir and ignore them, as an operator's unit file would.
func (c *testCluster) start(m *testMember, version string, extra ...string) {
	c.t.Helper()
	b, ok := c.bins[version]
	if !ok {
		c.t.Fatalf("no build of etcd %s", version)
	}
	args := []string{
		"--name", m.name,
		"--data-dir", m.dir,
		"--listen-client-urls", m.clientURL,
		"--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerURL,
		"--initial-advertise-peer-urls", m.peerURL,
		"--initial-cluster", c.initialCluster(),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", c.token,
	}
	if c.tls != nil {
		args = append(args, c.tls.flags()...)
	}
	args = append(args, c.args[version]...)
	args = append(args, extra...)
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "\n==== start %d: etcd %s %s\n", m.starts+1, version, strings.Join(append(slices.Clone(c.args[version]), extra...), " "))
	cmd := exec.Command(b.Etcd, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("start %s on %s: %v", m.name, version, err)
	}
	m.cmd, m.version, m.exited, m.exitErr = cmd, version, make(chan struct{}), nil
	m.starts++
	exited := m.exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		m.exitErr = err
		close(exited)
	}()
}

// running reports whether m's process has been started and not exited.
func (m *testMember) running() bool {
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

// stop ends m with SIGTERM and waits for it to exit (SIGKILL after 30 s).
func (c *testCluster) stop(m *testMember) {
	c.t.Helper()
	if !m.running() {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(30 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
		c.t.Errorf("%s did not stop within 30 s of SIGTERM; killed", m.name)
	}
}

// killAll ends every member still running: SIGCONT (it may be frozen),
// then SIGKILL, by pid.
func (c *testCluster) killAll() {
	for _, m := range c.members {
		if m.running() {
			_ = m.cmd.Process.Signal(syscall.SIGCONT)
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
}

// clientTLS is the client side of the cluster's TLS (nil without).
func (c *testCluster) clientTLS() *tls.Config {
	if c.tls == nil {
		return nil
	}
	return c.tls.client
}

func (c *testCluster) endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL)
	}
	return eps
}

func (c *testCluster) member(endpoint string) *testMember {
	for _, m := range c.members {
		if m.clientURL == endpoint {
			return m
		}
	}
	c.t.Fatalf("no member at %s", endpoint)
	return nil
}

// linesSinceStart returns the lines of m's log since its last start that
// contain s.
func (m *testMember) linesSinceStart(s string) []string {
	b, _ := os.ReadFile(m.logPath)
	text := string(b)
	if i := strings.LastIndex(text, "\n==== start "); i >= 0 {
		text = text[i:]
	}
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// logTail returns the last n lines of m's log.
func (m *testMember) logTail(n int) string {
	b, _ := os.ReadFile(m.logPath)
	return tail(string(b), n)
}

// waitTimeout bounds every wait of the end-to-end tests. It is a guard
// against hangs, not a measure: the waits end when their condition holds.
const waitTimeout = 3 * time.Minute

// waitFor polls cond until it holds; it fails the test with cond's last
// reason if waitTimeout passes first.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		select {
		case <-ctx.Done():
			t.Fatalf("wait for %s: %v; last: %s", what, context.Cause(ctx), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// healthy reports whether m answers GET /health (linearizable: it sees a
// leader and can read through raft) with health "true", as
// `etcdctl endpoint health` would.
func (c *testCluster) healthy(m *testMember) (bool, string) {
	if m.cmd != nil && !m.running() {
		return false, fmt.Sprintf("%s exited: %v\n%s", m.name, m.exitErr, m.logTail(20))
	}
	resp, err := c.hc.Get(m.clientURL + "/health")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var h struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&h)
	if resp.StatusCode != http.StatusOK || h.Health != "true" {
		return false, fmt.Sprintf("%s: HTTP %d health=%q %s", m.name, resp.StatusCode, h.Health, h.Reason)
	}
	return true, ""
}

func (c *testCluster) waitHealthy(m *testMember) {
	c.t.Helper()
	waitFor(c.t, m.name+" healthy", func() (bool, string) { return c.healthy(m) })
}

func (c *testCluster) waitAllHealthy() {
	c.t.Helper()
	for _, m := range c.members {
		c.waitHealthy(m)
	}
}

// waitSettled waits until Settled holds for the whole cluster.
func (c *testCluster) waitSettled(maxGap uint64) Report {
	c.t.Helper()
	p, err := NewProber(c.endpoints(), c.clientTLS(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer p.Close()
	var r Report
	waitFor(c.t, "cluster settled", func() (bool, string) {
		r = p.Probe(c.t.Context())
		return Settled(r, maxGap)
	})
	return r
}

// waitClusterVersion waits until every member reports cluster version want.
func (c *testCluster) waitClusterVersion(want string) {
	c.t.Helper()
	p, err := NewProber(c.endpoints(), c.clientTLS(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	defer p.Close()
	waitFor(c.t, "cluster version "+want, func() (bool, string) {
		r := p.Probe(c.t.Context())
		for _, m := range r.Members {
			if m.ClusterVersion != want {
				return false, fmt.Sprintf("%s reports cluster version %q", m.label(), m.ClusterVersion)
			}
		}
		return true, ""
	})
}

// rollOrder returns the members followers first, the leader last.
func (c *testCluster) rollOrder() []*testMember {
	c.t.Helper()
	r := c.waitSettled(50)
	leader, _ := r.Leader()
	var order []*testMember
	var last *testMember
	for _, m := range c.members {
		if m.clientURL == leader.Endpoint {
			last = m
			continue
		}
		order = append(order, m)
	}
	return append(order, last)
}

func (c *testCluster) client() *clientv3.Client {
	c.t.Helper()
	cl, err := newClient(c.endpoints(), c.clientTLS())
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

const testKeys = 5000

func testKey(i int) string   { return fmt.Sprintf("k/%05d", i) }
func testValue(i int) string { return fmt.Sprintf("value-%05d-%s", i, strings.Repeat("x", 80)) }

// load writes testKeys keys, 16 at a time.
func (c *testCluster) load() {
	c.t.Helper()
	cl := c.client()
	g, ctx := errgroup.WithContext(c.t.Context())
	g.SetLimit(16)
	for i := range testKeys {
		g.Go(func() error {
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := cl.Put(pctx, testKey(i), testValue(i))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		c.t.Fatalf("load %d keys: %v", testKeys, err)
	}
}

// checkKeys asserts every key load wrote is there with its value.
func (c *testCluster) checkKeys() {
	c.t.Helper()
	cl := c.client()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	resp, err := cl.Get(ctx, "k/", clientv3.WithPrefix())
	if err != nil {
		c.t.Fatalf("read keys: %v", err)
	}
	if len(resp.Kvs) != testKeys {
		c.t.Fatalf("read %d keys, want %d", len(resp.Kvs), testKeys)
	}
	for i, kv := range resp.Kvs {
		if string(kv.Key) != testKey(i) || string(kv.Value) != testValue(i) {
			c.t.Fatalf("key %d: %s=%q, want %s=%q", i, kv.Key, kv.Value, testKey(i), testValue(i))
		}
	}
}

// snapshotIndexes reads every member's newest WAL snapshot index, keyed
// by name.
func (c *testCluster) snapshotIndexes() map[string]uint64 {
	c.t.Helper()
	idx := map[string]uint64{}
	for _, m := range c.members {
		i, err := SnapshotIndex(m.dir)
		if err != nil {
			c.t.Fatal(err)
		}
		idx[m.name] = i
	}
	return idx
}

// indexFunc is a SnapshotIndexFunc over the members' data dirs.
func (c *testCluster) indexFunc() SnapshotIndexFunc {
	return func(_ context.Context, endpoint string) (uint64, error) {
		return SnapshotIndex(c.member(endpoint).dir)
	}
}

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		port, _ := strconv.Atoi(p)
		ports = append(ports, port)
	}
	return ports
}
