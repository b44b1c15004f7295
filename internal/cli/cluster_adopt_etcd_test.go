package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/service/etcd"
	"github.com/ladder-dev/ladder/upgrade"
)

// etcdReleases skips the test unless LADDER_ETCD_TESTS=1 and the releases
// are built; it returns the cache folder (LADDER_ETCD_CACHE, default
// ~/.ladder/cache).
func etcdReleases(t *testing.T, versions ...string) string {
	t.Helper()
	if os.Getenv("LADDER_ETCD_TESTS") != "1" {
		t.Skip("runs real etcd members (a minute): set LADDER_ETCD_TESTS=1, with the releases built (ladder releases fetch etcd 3.5.35 3.6.16 3.7.3)")
	}
	dir := os.Getenv("LADDER_ETCD_CACHE")
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(h, ".ladder", "cache")
	}
	for _, v := range versions {
		if _, err := etcd.Cached(dir, v); err != nil {
			t.Skipf("etcd %s is not built in %s: run ladder releases fetch etcd %s", v, dir, strings.Join(versions, " "))
		}
	}
	return dir
}

// handMember is an etcd member started the way an operator would, not by
// ladder.
type handMember struct {
	name             string
	scheme           string
	client, peer     int
	dataDir, logPath string
	cmd              *exec.Cmd
}

func (m handMember) clientURL() string { return m.scheme + "://127.0.0.1:" + strconv.Itoa(m.client) }
func (m handMember) peerURL() string   { return m.scheme + "://127.0.0.1:" + strconv.Itoa(m.peer) }

// startByHand starts a 3-member etcd cluster of release bin, each member
// in a session of its own (as from a shell), with a tuning flag of its
// own and extra flags (TLS files, with scheme https), and returns once a
// write through client succeeds.
func startByHand(t *testing.T, bin, scheme string, extra []string, client *tls.Config) []handMember {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range 6 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	base := t.TempDir()
	var ms []handMember
	var peers []string
	for i := range 3 {
		m := handMember{name: fmt.Sprintf("infra%d", i+1), scheme: scheme, client: ports[2*i], peer: ports[2*i+1]}
		m.dataDir = filepath.Join(base, m.name+".etcd")
		m.logPath = filepath.Join(base, m.name+".log")
		peers = append(peers, m.name+"="+m.peerURL())
		ms = append(ms, m)
	}
	for i := range ms {
		m := &ms[i]
		logf, err := os.Create(m.logPath)
		if err != nil {
			t.Fatal(err)
		}
		m.cmd = exec.Command(bin, append([]string{"--name", m.name, "--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL(), "--advertise-client-urls", m.clientURL(),
			"--listen-peer-urls", m.peerURL(), "--initial-advertise-peer-urls", m.peerURL(),
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "by-hand", "--heartbeat-interval", "100"}, extra...)...)
		m.cmd.Stdout, m.cmd.Stderr = logf, logf
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		logf.Close()
		go m.cmd.Wait() //nolint:errcheck // reaped when ladder stops it
		t.Cleanup(func() { _ = m.cmd.Process.Kill() })
	}
	c := etcdClient(t, ms, client)
	err := poll.For(context.Background(), time.Minute, 100*time.Millisecond, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Put(ctx, "up", "1")
		return err == nil, nil
	})
	if err != nil {
		log, _ := os.ReadFile(ms[0].logPath)
		t.Fatalf("the cluster started by hand takes no write: %v\n%s", err, lastLines(string(log), 10))
	}
	return ms
}

func etcdClient(t *testing.T, ms []handMember, conf *tls.Config) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, m := range ms {
		eps = append(eps, m.clientURL())
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, TLS: conf, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestEtcdAdoptUpgrade: three etcd 3.5.35 members started by hand, with
// keys, are adopted as they run (nothing restarted), upgraded by ladder to
// 3.7.3 through 3.6.16 (the 3.7 snapshot precondition checked in their own
// data folders), and every key is there; the members run on their own
// data folders, names and ports; forget leaves them running.
func TestEtcdAdoptUpgrade(t *testing.T) {
	adoptUpgrade(t, "http", nil, nil, nil)
}

// TestEtcdAdoptUpgradeTLS: the same with members that serve TLS to their
// clients and peers and ask clients for certificates: adopted with --ca,
// --cert and --key (refused without the certificate, saying why), and
// restarted with their own TLS files.
func TestEtcdAdoptUpgradeTLS(t *testing.T) {
	files, conf := newAdoptTLS(t)
	f := func(n string) string { return filepath.Join(files, n) }
	flags := []string{"--cert-file", f("member.crt"), "--key-file", f("member.key"),
		"--client-cert-auth=true", "--trusted-ca-file", f("ca.crt"),
		"--peer-cert-file", f("member.crt"), "--peer-key-file", f("member.key"),
		"--peer-client-cert-auth=true", "--peer-trusted-ca-file", f("ca.crt")}
	adoptUpgrade(t, "https", flags, conf, []string{"--ca", f("ca.crt"), "--cert", f("ladder.crt"), "--key", f("ladder.key")})
}

// adoptUpgrade starts three members by hand with scheme and extra flags,
// writes keys through client, adopts them with adoptFlags and upgrades
// them to 3.7.3, checking every key, each member's own command line, and
// that forget leaves them running.
func adoptUpgrade(t *testing.T, scheme string, extra []string, client *tls.Config, adoptFlags []string) {
	cache := etcdReleases(t, "3.5.35", "3.6.16", "3.7.3")
	t.Setenv("LADDER_HOME", t.TempDir())
	h, _ := os.LookupEnv("LADDER_HOME")
	if err := os.Symlink(cache, filepath.Join(h, "cache")); err != nil {
		t.Fatal(err)
	}
	b, _ := etcd.Cached(cache, "3.5.35")
	ms := startByHand(t, b.Etcd, scheme, extra, client)
	c := etcdClient(t, ms, client)
	const keys = 1000
	ctx := context.Background()
	for i := range keys {
		if _, err := c.Put(ctx, fmt.Sprintf("adopt/%04d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	var members []string
	for _, m := range ms {
		members = append(members, m.name+"="+m.clientURL())
	}
	args := []string{"cluster", "adopt", "--cluster", "kv", "--service", "etcd", "--members", strings.Join(members, ",")}
	if len(adoptFlags) > 0 {
		// Without the client certificate the members refuse ladder.
		code, out, errOut := run(t, append(args, adoptFlags[:2]...)...)
		if code == ExitOK || !strings.Contains(errOut, "--cert, --key") {
			t.Errorf("adopt without a client certificate: exit %d\n%s\n%s", code, out, errOut)
		}
	}
	args = append(append(args, adoptFlags...), "-o", "json")
	code, out, errOut := run(t, args...)
	if code != ExitOK {
		t.Fatalf("adopt: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Cleanup(func() { run(t, "cluster", "destroy", "--cluster", "kv") })
	var adopted struct {
		Members []adoptedMember `json:"members"`
		Status  upgrade.Status  `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &adopted); err != nil {
		t.Fatalf("adopt -o json: %v\n%s", err, out)
	}
	for i, m := range adopted.Members {
		if m.PID != ms[i].cmd.Process.Pid || m.DataDir != ms[i].dataDir || m.Version != "3.5.35" {
			t.Errorf("adopted %+v, want pid %d, data %s, 3.5.35", m, ms[i].cmd.Process.Pid, ms[i].dataDir)
		}
		if m.Config != "command line" {
			t.Errorf("%s: configuration read from %q, want its command line", m.Name, m.Config)
		}
	}
	if !adopted.Status.Store.Settled {
		t.Errorf("adopted cluster not settled: %+v", adopted.Status)
	}
	if code, out, _ := run(t, args...); code != ExitUsage || !strings.Contains(out, "cluster exists") {
		t.Errorf("second adopt of the same name: exit %d\n%s", code, out)
	}

	start := time.Now()
	code, out, errOut = run(t, "upgrade", "--cluster", "kv", "--to", "3.7.3", "--yes")
	if code != ExitOK {
		t.Fatalf("upgrade: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("FIGURE adopted 3-member %s cluster, %d keys, 3.5.35 -> 3.6.16 -> 3.7.3: %.1fs", scheme, keys, time.Since(start).Seconds())

	code, out, _ = run(t, "cluster", "status", "--cluster", "kv", "-o", "json")
	var st upgrade.Status
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if st.Version != "3.7.3" || st.ClusterVersion != "3.7.0" || !st.Store.Settled {
		t.Errorf("after the upgrade: version %s, cluster version %s, settled %v; want 3.7.3, 3.7.0, settled", st.Version, st.ClusterVersion, st.Store.Settled)
	}
	for i, r := range st.Replicas {
		m := ms[i]
		if r.ID != m.name || r.URL != m.clientURL() || r.PID == m.cmd.Process.Pid {
			t.Errorf("replica %+v, want %s at %s in a process ladder started", r, m.name, m.clientURL())
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID))
		if !strings.Contains(string(cmdline), "\x00"+m.dataDir+"\x00") || !strings.Contains(string(cmdline), "\x00--heartbeat-interval\x00100\x00") {
			t.Errorf("%s runs %q, not its own command line on its data folder %s", r.ID, strings.ReplaceAll(string(cmdline), "\x00", " "), m.dataDir)
		}
	}
	resp, err := c.Get(ctx, "adopt/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != keys {
		t.Errorf("%d keys after the upgrade, want %d", len(resp.Kvs), keys)
	}
	for _, kv := range resp.Kvs {
		var i int
		fmt.Sscanf(strings.TrimPrefix(string(kv.Key), "adopt/"), "%d", &i)
		if string(kv.Value) != fmt.Sprintf("v%d", i) {
			t.Errorf("%s = %s, want v%d", kv.Key, kv.Value, i)
		}
	}

	if code, _, errOut := run(t, "cluster", "forget", "--cluster", "kv"); code != ExitOK {
		t.Fatalf("forget: exit %d\n%s", code, errOut)
	}
	for _, r := range st.Replicas {
		defer syscall.Kill(r.PID, syscall.SIGKILL)
	}
	if _, err := c.Put(ctx, "after-forget", "1"); err != nil {
		t.Errorf("the cluster takes no write after forget: %v", err)
	}
	if code, out, _ := run(t, "cluster", "list"); code != ExitOK || strings.Contains(out, "kv") {
		t.Errorf("cluster list after forget:\n%s", out)
	}
}

// newAdoptTLS writes a CA, a certificate the members use for clients and
// peers (127.0.0.1), and ladder's client certificate into a folder, and
// returns it with a client configuration for the test's own writes.
func newAdoptTLS(t *testing.T) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "adopt test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", "CERTIFICATE", caDER, 0o644)
	leaf := func(name string, serial int64, usage ...x509.ExtKeyUsage) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		write(name+".crt", "CERTIFICATE", der, 0o644)
		write(name+".key", "EC PRIVATE KEY", kder, 0o600)
	}
	leaf("member", 2, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	leaf("ladder", 3, x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "ladder.crt"), filepath.Join(dir, "ladder.key"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}
