package etcd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testTLS is a CA, one certificate every member uses for its client and
// peer ports (server and client usage, for 127.0.0.1), and the client
// side ladder would use.
type testTLS struct {
	dir    string // ca.crt, member.crt, member.key
	client *tls.Config
}

func newTestTLS(t *testing.T) *testTLS {
	t.Helper()
	dir := t.TempDir()
	caKey, caCert, caDER := newCert(t, "ladder test CA", nil, nil, true, nil)
	_, _, memberDER, memberKey := newLeaf(t, "member", caCert, caKey,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
	_, _, clientDER, clientKey := newLeaf(t, "ladder", caCert, caKey, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", caDER)
	writePEM(t, filepath.Join(dir, "member.crt"), "CERTIFICATE", memberDER)
	writePEM(t, filepath.Join(dir, "member.key"), "EC PRIVATE KEY", memberKey)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: clientKey})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &testTLS{dir: dir, client: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
}

// flags are the member's TLS flags: the same in 3.5, 3.6 and 3.7.
func (s *testTLS) flags() []string {
	f := func(n string) string { return filepath.Join(s.dir, n) }
	return []string{
		"--cert-file", f("member.crt"), "--key-file", f("member.key"),
		"--client-cert-auth=true", "--trusted-ca-file", f("ca.crt"),
		"--peer-cert-file", f("member.crt"), "--peer-key-file", f("member.key"),
		"--peer-client-cert-auth=true", "--peer-trusted-ca-file", f("ca.crt"),
	}
}

func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool, usage []x509.ExtKeyUsage) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usage,
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der
}

func newLeaf(t *testing.T, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage []x509.ExtKeyUsage) (*ecdsa.PrivateKey, *x509.Certificate, []byte, []byte) {
	t.Helper()
	key, cert, der := newCert(t, cn, ca, caKey, false, usage)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert, der, keyDER
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSCluster runs the whole path over TLS with client certificates
// on the client and peer ports: create on 3.5.35, probe, refuse a client
// without a certificate, roll to 3.6.16, fix the snapshots, roll to
// 3.7.3, back up. The TLS flags are the same in all three releases.
func TestTLSCluster(t *testing.T) {
	requireEtcdTests(t)
	bins := fetchReleases(t, "3.5.35", "3.6.16", "3.7.3")
	c := newTestCluster(t, bins, "3.5.35", 3, withTLS(newTestTLS(t)))
	c.load()
	r := c.waitSettled(50)
	if !strings.HasPrefix(r.Members[0].Endpoint, "https://") {
		t.Fatalf("endpoint %s is not https", r.Members[0].Endpoint)
	}

	// Without a client certificate every member refuses.
	noCert := c.tls.client.Clone()
	noCert.Certificates = nil
	r, err := Probe(t.Context(), c.endpoints(), noCert, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Members {
		if m.Reachable || m.Healthy || !strings.HasPrefix(m.Error, "fails the TLS handshake") {
			t.Errorf("member %s answered a client without a certificate: %+v", m.Endpoint, m)
		}
	}
	t.Logf("without a client certificate: %s", r.Members[0].Error)

	t.Logf("hop %s", c.rollByHand("3.6.16", "3.6.0"))
	barrier, err := Barrier(t.Context(), c.endpoints(), c.clientTLS(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := ForceSnapshots(t.Context(), c.endpoints(), c.clientTLS(), barrier, c.indexFunc(), ForceSnapshotsOptions{}, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	t.Logf("hop %s", c.rollByHand("3.7.3", "3.7.0"))
	c.checkKeys()

	var buf bytes.Buffer
	info, err := Backup(t.Context(), c.endpoints()[0], c.clientTLS(), &buf, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "3.7.0" || info.Revision < testKeys {
		t.Errorf("backup %+v: want storage version 3.7.0, revision ≥ %d", info, testKeys)
	}
}
