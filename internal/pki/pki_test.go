package pki

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestIssue(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	other, err := NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		issuer  *CA
		hosts   []string
		verify  string // host to verify for; "" verifies client use
		usage   x509.ExtKeyUsage
		wantErr bool
	}{
		{"replica by loopback IP", ca, append(LocalHosts(), "ladder-c-replica-1"), "127.0.0.1", x509.ExtKeyUsageServerAuth, false},
		{"replica by container name", ca, append(LocalHosts(), "ladder-c-replica-1"), "ladder-c-replica-1", x509.ExtKeyUsageServerAuth, false},
		{"replica as a peer's client", ca, LocalHosts(), "", x509.ExtKeyUsageClientAuth, false},
		{"replica by a name it lacks", ca, LocalHosts(), "example.com", x509.ExtKeyUsageServerAuth, true},
		{"client certificate", ca, nil, "", x509.ExtKeyUsageClientAuth, false},
		{"client certificate as a server", ca, nil, "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"another CA's", other, LocalHosts(), "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			pair, err := c.issuer.Issue(c.name, c.hosts)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cf, kf := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
			_ = os.WriteFile(cf, pair.CertPEM, 0o600)
			_ = os.WriteFile(kf, pair.KeyPEM, 0o600)
			cfg, err := ClientConfig(ClientOptions{CAFiles: []string{writeCA(t, ca)}, CertFile: cf, KeyFile: kf})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: c.verify, KeyUsages: []x509.ExtKeyUsage{c.usage}})
			if (err != nil) != c.wantErr {
				t.Errorf("verify: %v, want error %v", err, c.wantErr)
			}
		})
	}
}

func writeCA(t *testing.T, ca *CA) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(f, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLoadCA(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	key, err := ca.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	kf := filepath.Join(t.TempDir(), "ca.key")
	_ = os.WriteFile(kf, key, 0o600)
	got, err := LoadCA(writeCA(t, ca), kf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.Issue("x", LocalHosts()); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(writeCA(t, ca), filepath.Join(t.TempDir(), "missing")); !errors.Is(err, ErrNoCA) {
		t.Errorf("a missing key: %v, want ErrNoCA", err)
	}
}

func TestClientConfigNeedsTrust(t *testing.T) {
	if _, err := ClientConfig(ClientOptions{}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("no CA, verifying: %v, want ErrUntrusted", err)
	}
	cfg, err := ClientConfig(ClientOptions{Insecure: true})
	if err != nil || !cfg.InsecureSkipVerify {
		t.Errorf("--insecure-tls: %v, %+v", err, cfg)
	}
}
