package e2e

import (
	"context"
	"crypto/tls"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/internal/traffic"
)

// TestRotateCerts renews the certificates of a live 3-replica cluster
// while a client pushes and pulls through every replica: not one request
// fails, every replica then serves a new certificate, and everything
// written is still readable on every replica.
func TestRotateCerts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "rotate"
	e.createCluster(name, "3.1.2")
	st := e.status(name)
	tc := e.tls(name)
	before := map[string]string{}
	var urls []string
	for _, r := range st.Replicas {
		urls = append(urls, r.URL)
		before[r.ID] = servedSerial(t, tc, r.URL)
	}
	client := &traffic.Client{URLs: urls, Repo: "rotate/traffic", Password: e.password(name), Interval: 100 * time.Millisecond, TLS: tc}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { client.Run(ctx) })
	out := e.must("cluster", "rotate-certs", "--cluster", name)
	stop()
	wg.Wait()
	s := client.Stats()
	t.Logf("%s; client: %d writes, %d reads, %d failovers", out, s.Writes, s.Reads, s.Failovers)
	if s.FailedWrites+s.FailedReads != 0 {
		t.Errorf("%d writes and %d reads failed during the rotation (last: %s)", s.FailedWrites, s.FailedReads, s.LastError)
	}
	if s.Writes == 0 {
		t.Errorf("the client wrote nothing during the rotation")
	}
	for _, r := range e.status(name).Replicas {
		if got := servedSerial(t, tc, r.URL); got == before[r.ID] {
			t.Errorf("%s still serves certificate %s", r.ID, got)
		}
	}
	if v := client.Verify(context.Background()); len(v.Missing) > 0 {
		t.Errorf("after the rotation, missing: %v", v.Missing)
	}
}

// servedSerial is the serial number of the certificate the replica at
// base serves, verified with tc.
func servedSerial(t *testing.T, tc *tls.Config, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, tc)
	if err != nil {
		t.Fatalf("dial %s: %v", base, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
