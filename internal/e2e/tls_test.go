package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
)

// TestTLS checks a new cluster's trust from the outside: the store's
// client and peer ports refuse a client without a certificate of the
// cluster's CA (and plain HTTP); the store cannot be read or written
// without ladder's certificate; the HTTPS API fails verification without
// the cluster's CA and passes with it; `ladder status` needs no flag; and
// --insecure-tls reaches a cluster whose CA ladder does not have, warning.
func TestTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const name = "tls"
	e.createCluster(name, "3.1.2")
	var st struct {
		CA       string `json:"ca"`
		Replicas []struct{ URL string }
	}
	if err := json.Unmarshal([]byte(e.must("cluster", "status", "--cluster", name, "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	rec, err := home.ReadRecord(e.home, name)
	if err != nil {
		t.Fatal(err)
	}
	if st.CA != rec.Secrets[service.CASecret] || st.CA == "" {
		t.Fatalf("status says ca %q, want %q", st.CA, rec.Secrets[service.CASecret])
	}
	if fi, err := os.Stat(filepath.Join(home.ClusterDir(e.home, name), "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the CA's key: %v, mode %v (want 0600)", err, fi.Mode().Perm())
	}
	api := st.Replicas[0].URL
	if !strings.HasPrefix(api, "https://") {
		t.Fatalf("replica URL %s is not https", api)
	}
	ladder := e.tls(name)
	anon, err := pki.ClientConfig(pki.ClientOptions{CAFiles: []string{st.CA}})
	if err != nil {
		t.Fatal(err)
	}
	var rep registry.StatusReport
	resp, err := pki.HTTPClient(ladder, 5*time.Second).Get(api + "/api/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&rep)
	resp.Body.Close()
	if err != nil || rep.ClientURL == "" || rep.PeerURL == "" {
		t.Fatalf("ladder's status of %s: %v; store at %q and %q", api, err, rep.ClientURL, rep.PeerURL)
	}

	t.Run("api", func(t *testing.T) {
		for _, c := range []struct {
			name string
			hc   *http.Client
			ok   bool
		}{
			{"system roots only", &http.Client{Timeout: 5 * time.Second}, false},
			{"the cluster's CA", pki.HTTPClient(anon, 5*time.Second), true},
		} {
			resp, err := c.hc.Get(api + "/health")
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != c.ok {
				t.Errorf("%s: GET %s/health: %v, want ok=%v", c.name, api, err, c.ok)
			}
		}
		resp, err := pki.HTTPClient(anon, 5*time.Second).Get(api + "/api/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		var st registry.StatusReport
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.ClientURL != "" || st.PeerURL != "" {
			t.Errorf("an anonymous status: %v; shows the store at %q and %q", err, st.ClientURL, st.PeerURL)
		}
	})

	t.Run("store ports", func(t *testing.T) {
		for _, u := range []string{rep.ClientURL, rep.PeerURL} {
			hc := pki.HTTPClient(anon, 5*time.Second)
			if resp, err := hc.Get(u + "/version"); err == nil {
				resp.Body.Close()
				t.Errorf("GET %s/version without a client certificate: %s, want a failed handshake", u, resp.Status)
			}
			plain := "http://" + strings.TrimPrefix(u, "https://")
			if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(plain + "/version"); err == nil {
				resp.Body.Close()
				t.Errorf("GET %s/version: %s, want no answer", plain, resp.Status)
			}
		}
		hc := pki.HTTPClient(ladder, 5*time.Second)
		resp, err := hc.Get(rep.ClientURL + "/version")
		if err != nil {
			t.Fatalf("GET %s/version with ladder's certificate: %v", rep.ClientURL, err)
		}
		resp.Body.Close()
	})

	t.Run("store data", func(t *testing.T) {
		other, err := pki.NewCA("other")
		if err != nil {
			t.Fatal(err)
		}
		pair, err := other.Issue("intruder", nil)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cert, key := filepath.Join(dir, "i.crt"), filepath.Join(dir, "i.key")
		_ = os.WriteFile(cert, pair.CertPEM, 0o600)
		_ = os.WriteFile(key, pair.KeyPEM, 0o600)
		intruder, err := pki.ClientConfig(pki.ClientOptions{CAFiles: []string{st.CA}, CertFile: cert, KeyFile: key})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			tls  *tls.Config
			ok   bool
		}{
			{"no certificate", anon, false},
			{"another CA's certificate", intruder, false},
			{"ladder's certificate", ladder, true},
		} {
			err := storeReadWrite(rep.ClientURL, c.tls)
			if (err == nil) != c.ok {
				t.Errorf("%s: read and write the store: %v, want ok=%v", c.name, err, c.ok)
			}
		}
	})

	t.Run("ladder", func(t *testing.T) {
		if code, _, errOut := e.run("status", "--cluster", name); code != 0 {
			t.Fatalf("ladder status: exit %d: %s", code, errOut)
		}
		// A cluster whose CA this ladder does not have: its record
		// names another CA.
		other, err := pki.NewCA("other")
		if err != nil {
			t.Fatal(err)
		}
		wrong := filepath.Join(t.TempDir(), "ca.crt")
		if err := os.WriteFile(wrong, other.CertPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		moved := rec
		moved.Secrets = map[string]string{}
		for k, v := range rec.Secrets {
			moved.Secrets[k] = v
		}
		moved.Secrets[service.CASecret] = wrong
		if err := home.WriteRecord(e.home, moved); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := home.WriteRecord(e.home, rec); err != nil {
				t.Error(err)
			}
		}()
		_, out, errOut := e.run("cluster", "status", "--cluster", name)
		if strings.Contains(out, "store settled") || !strings.Contains(out+errOut, "certificate") {
			t.Errorf("status against an unknown CA: %s%s; want every replica unreachable, naming the certificate", out, errOut)
		}
		code, out, errOut := e.run("cluster", "status", "--cluster", name, "--insecure-tls")
		if code != 0 || !strings.Contains(out, "store settled") {
			t.Errorf("status --insecure-tls: exit %d: %s%s", code, out, errOut)
		}
		if !strings.Contains(errOut, pki.InsecureWarning) {
			t.Errorf("status --insecure-tls did not warn: %s", errOut)
		}
	})
}

// storeReadWrite reads and writes a key of the store at endpoint with tc.
func storeReadWrite(endpoint string, tc *tls.Config) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tc, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := cli.Get(ctx, "/registry/properties/schema.version"); err != nil {
		return err
	}
	if _, err := cli.Put(ctx, "/tls-test/probe", "x"); err != nil {
		return err
	}
	if _, err := cli.Delete(ctx, "/tls-test/probe"); err != nil {
		return errors.Join(errors.New("delete"), err)
	}
	return nil
}
