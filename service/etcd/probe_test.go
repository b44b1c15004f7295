package etcd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSettled(t *testing.T) {
	member := func(name string, id, applied uint64) Member {
		return Member{Endpoint: "http://" + name, Name: name, Reachable: true, Healthy: true, Ready: true,
			ID: id, LeaderID: 1, RaftAppliedIndex: applied, RaftIndex: applied}
	}
	healthy := func() []Member { return []Member{member("a", 1, 100), member("b", 2, 100), member("c", 3, 98)} }
	tests := []struct {
		name   string
		mutate func(ms []Member) []Member
		gap    uint64
		want   bool
		why    string // a part of the reason
	}{
		{name: "settled", gap: 5, want: true},
		{name: "within gap exactly", gap: 2, want: true},
		{name: "lagging", gap: 1, why: "c has applied index 98, 2 behind the leader's 100"},
		{name: "frozen member", gap: 5, mutate: func(ms []Member) []Member {
			ms[1] = Member{Endpoint: "http://b", Error: "does not answer within 1.5s (frozen or overloaded?)"}
			return ms
		}, why: "http://b does not answer within 1.5s"},
		{name: "learner", gap: 5, mutate: func(ms []Member) []Member { ms[2].Learner = true; return ms }, why: "c is a learner"},
		{name: "unhealthy", gap: 5, mutate: func(ms []Member) []Member {
			ms[0].Healthy, ms[0].Error = false, "is unhealthy: health: unhealthy: HTTP 503 NOSPACE"
			return ms
		}, why: "a is unhealthy: health"},
		{name: "no leader", gap: 5, mutate: func(ms []Member) []Member {
			for i := range ms {
				ms[i].LeaderID = 0
			}
			return ms
		}, why: "no leader"},
		{name: "disagree on leader", gap: 5, mutate: func(ms []Member) []Member { ms[2].LeaderID = 2; return ms },
			why: "members disagree on the leader"},
		{name: "leader not probed", gap: 5, mutate: func(ms []Member) []Member {
			for i := range ms {
				ms[i].LeaderID = 9
			}
			return ms
		}, why: "the leader 9 is not among the probed members"},
		{name: "no members", gap: 5, mutate: func([]Member) []Member { return nil }, why: "no members"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ms := healthy()
			if tc.mutate != nil {
				ms = tc.mutate(ms)
			}
			ok, why := Settled(Report{Members: ms}, tc.gap)
			if ok != tc.want || !strings.Contains(why, tc.why) {
				t.Errorf("Settled = %v, %q; want %v, containing %q", ok, why, tc.want, tc.why)
			}
		})
	}
}

func TestDiagnose(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	timeout := context.DeadlineExceeded
	tests := []struct {
		name string
		errs [nReq]error
		want string
	}{
		{name: "all answered"},
		{name: "frozen", errs: [nReq]error{timeout, timeout, timeout, timeout, timeout}, want: "does not answer within"},
		{name: "down", errs: [nReq]error{timeout, refused, refused, refused, timeout}, want: "refuses connections"},
		{name: "alarm", errs: [nReq]error{reqHealth: fmt.Errorf("%w: HTTP 503 NOSPACE", errUnhealthy)},
			want: "is unhealthy: health: unhealthy: HTTP 503 NOSPACE"},
		{name: "no client certificate", errs: [nReq]error{timeout,
			&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}, nil, nil, timeout},
			want: "fails the TLS handshake (check the CA and the client certificate): remote error: tls: certificate required"},
		{name: "status fails", errs: [nReq]error{reqStatus: errors.New("rpc error: permission denied")},
			want: "fails: status: rpc error: permission denied"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := diagnose(tc.errs); !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("diagnose = %q, want %q…", got, tc.want)
			}
		})
	}
}

func TestChecksumWriter(t *testing.T) {
	db := bytes.Repeat([]byte("bbolt page "), 10000)
	sum := sha256.Sum256(db)
	stream := append(append([]byte(nil), db...), sum[:]...)
	for _, tc := range []struct {
		name    string
		stream  []byte
		wantErr bool
	}{
		{name: "good", stream: stream},
		{name: "corrupt", stream: append([]byte("X"), stream[1:]...), wantErr: true},
		{name: "truncated", stream: stream[:len(stream)-40], wantErr: true},
		{name: "tiny", stream: []byte("short"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cw := &checksumWriter{w: &out, h: sha256.New()}
			// Odd chunk sizes, so the checksum straddles writes.
			for b := tc.stream; len(b) > 0; {
				n := min(len(b), 777)
				if _, err := cw.Write(b[:n]); err != nil {
					t.Fatal(err)
				}
				b = b[n:]
			}
			err := cw.check()
			if (err != nil) != tc.wantErr || (err != nil && !errors.Is(err, ErrBadSnapshot)) {
				t.Errorf("check = %v, wantErr %v", err, tc.wantErr)
			}
			if !bytes.Equal(out.Bytes(), tc.stream) {
				t.Error("the stream was not passed through unchanged")
			}
		})
	}
}

// TestProbeRealMembers probes a real 3.5.35 cluster: everything answered
// and settled; a frozen member (SIGSTOP) named as not answering, a stopped
// one as refusing connections; a backup of 5,000 keys that etcdctl reads.
func TestProbeRealMembers(t *testing.T) {
	requireEtcdTests(t)
	bins := fetchReleases(t, "3.5.35")
	c := newTestCluster(t, bins, "3.5.35", 3)
	c.load()
	r := c.waitSettled(10)
	leader, ok := r.Leader()
	if !ok {
		t.Fatal("settled without a leader")
	}
	for _, m := range r.Members {
		if !m.Ready || m.Version != "3.5.35" || m.ClusterVersion != "3.5.0" || m.Revision < testKeys || m.Name == "" || m.DBSize == 0 {
			t.Errorf("member %+v: want ready, version 3.5.35, cluster 3.5.0, revision ≥ %d, a name, a db size", m, testKeys)
		}
	}
	if r.ClusterVersion != "3.5.0" {
		t.Errorf("report cluster version %q, want 3.5.0", r.ClusterVersion)
	}

	// Backup from the leader; etcdctl 3.5 reads the file.
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	info, err := Backup(t.Context(), leader.Endpoint, nil, f, testLogger(t))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bins["3.5.35"].Etcdctl, "snapshot", "status", path, "-w", "json").Output()
	if err != nil {
		t.Fatalf("etcdctl snapshot status: %v", err)
	}
	var st struct {
		Revision int64 `json:"revision"`
		TotalKey int   `json:"totalKey"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatalf("etcdctl snapshot status: %v: %s", err, out)
	}
	if st.Revision < info.Revision || st.TotalKey < testKeys {
		t.Errorf("etcdctl reads revision %d with %d keys; Backup said at least revision %d, want ≥ %d keys", st.Revision, st.TotalKey, info.Revision, testKeys)
	}
	t.Logf("backup: %+v; etcdctl: %s", info, bytes.TrimSpace(out))

	// Freeze a follower: the probe names it within its timeout.
	var frozen *testMember
	for _, m := range c.members {
		if m.clientURL != leader.Endpoint {
			frozen = m
			break
		}
	}
	if err := frozen.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = frozen.cmd.Process.Signal(syscall.SIGCONT) })
	p, err := NewProber(c.endpoints(), c.clientTLS(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t0 := time.Now()
	r = p.Probe(t.Context())
	elapsed := time.Since(t0)
	m, _ := r.Member(frozen.clientURL)
	if m.Reachable || !strings.Contains(m.Error, "does not answer within") {
		t.Errorf("frozen %s: reachable %v, error %q; want named as not answering", frozen.name, m.Reachable, m.Error)
	}
	ok, why := Settled(r, 10)
	if ok || !strings.Contains(why, frozen.name) {
		t.Errorf("Settled with %s frozen = %v, %q; want false naming it", frozen.name, ok, why)
	}
	t.Logf("frozen member named in %.2fs: %s", elapsed.Seconds(), why)
	if err := frozen.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	c.waitSettled(10)

	// Stop it: the probe says it refuses connections.
	c.stop(frozen)
	waitFor(t, frozen.name+" named as refusing connections", func() (bool, string) {
		r := p.Probe(t.Context())
		m, _ := r.Member(frozen.clientURL)
		return strings.Contains(m.Error, "refuses connections"), m.Error
	})
}

// A member that is down when the prober is made is named as refusing
// connections; one that accepts connections and never answers (as a
// frozen process's listen queue does) as not answering in time.
func TestProbeUnreachable(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	down := "http://127.0.0.1:" + fmt.Sprint(freePorts(t, 1)[0])
	frozen := "http://" + silent.Addr().String()
	r, err := Probe(t.Context(), []string{down, frozen}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ endpoint, want string }{
		{down, "refuses connections"},
		{frozen, "does not answer within"},
	} {
		m, ok := r.Member(tc.endpoint)
		if !ok || m.Reachable || !strings.Contains(m.Error, tc.want) {
			t.Errorf("member %s: %+v; want unreachable, %q", tc.endpoint, m, tc.want)
		}
	}
	if ok, why := Settled(r, 10); ok || !strings.Contains(why, down) {
		t.Errorf("Settled = %v, %q; want false naming %s", ok, why, down)
	}
}
