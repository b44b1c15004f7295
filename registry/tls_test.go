package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/internal/pki"
)

// tlsReplica starts a one-replica cluster with certificates of a new CA,
// and returns it with a client that trusts the CA and presents ladder's
// certificate.
func tlsReplica(t *testing.T) (*Replica, *http.Client, TLSConfig) {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("tls-test")
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srv, err := ca.Issue("replica-1", pki.LocalHosts())
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ca.Issue("ladder", nil)
	if err != nil {
		t.Fatal(err)
	}
	tc := TLSConfig{CertFile: write("r.crt", srv.CertPEM), KeyFile: write("r.key", srv.KeyPEM), CAFile: write("ca.crt", ca.CertPEM)}
	ladder := TLSConfig{CertFile: write("c.crt", cli.CertPEM), KeyFile: write("c.key", cli.KeyPEM), CAFile: tc.CAFile}
	cfg := testCluster(t, "tls", "3.1.2", 1)[0]
	cfg.TLS = tc
	cfg.APIMembers = map[string]string{cfg.ID: cfg.Listen}
	cfg.InitialCluster = "" // this replica alone, at its https peer URL
	r, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	lc, err := ladder.storeClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	return r, pki.HTTPClient(lc, 5*time.Second), ladder
}

// TestStatusHidesStoreFromAnonymous: the store's URLs are in the status
// only for a caller with a certificate of the cluster's CA.
func TestStatusHidesStoreFromAnonymous(t *testing.T) {
	t.Parallel()
	r, ladder, tc := tlsReplica(t)
	anonTLS, err := pki.ClientConfig(pki.ClientOptions{CAFiles: []string{tc.CAFile}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		hc        *http.Client
		wantStore bool
	}{
		{"anonymous", pki.HTTPClient(anonTLS, 5*time.Second), false},
		{"ladder", ladder, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var st StatusReport
			if _, err := getJSON(context.Background(), c.hc, r.URL()+"/api/v1/status", &st); err != nil {
				t.Fatal(err)
			}
			if got := st.ClientURL != "" && st.PeerURL != ""; got != c.wantStore {
				t.Errorf("store URLs shown: %v (client %q, peer %q), want %v", got, st.ClientURL, st.PeerURL, c.wantStore)
			}
		})
	}
}

// TestPlantedReplicaRowIsNotFetched: a row in the replicas table that the
// cluster's record does not back (an unknown id, or a known id with
// another URL) makes no replica fetch its URL.
func TestPlantedReplicaRowIsNotFetched(t *testing.T) {
	t.Parallel()
	r, ladder, _ := tlsReplica(t)
	var hits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer evil.Close()
	cli := r.cli.Load()
	ctx := context.Background()
	// An unknown replica, and a second row claiming to be replica-1.
	for key, row := range map[string]replicaRow{
		"replica-9":       {ID: "replica-9", Release: "3.1.2", HTTPURL: evil.URL},
		"replica-1-again": {ID: "replica-1", Release: "3.1.2", HTTPURL: evil.URL},
	} {
		data, _ := json.Marshal(row)
		if _, err := cli.Put(ctx, replicaKey(key), string(data)); err != nil {
			t.Fatal(err)
		}
	}
	var rep ClusterReport
	if _, err := getJSON(ctx, ladder, r.URL()+"/api/v1/cluster", &rep); err != nil {
		t.Fatal(err)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the planted URL was fetched %d times", n)
	}
	if len(rep.Replicas) != 1 || rep.Replicas[0].URL != r.URL() {
		t.Errorf("cluster report lists %+v, want replica-1 at %s alone", rep.Replicas, r.URL())
	}
}
