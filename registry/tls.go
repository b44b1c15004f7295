package registry

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/internal/pki"
)

// serverConfig is the HTTPS API's: the operator's certificate if given,
// else the replica's; a client certificate of the cluster's CA is accepted
// (not required) and shows the caller store details anonymous callers do
// not see.
func (t TLSConfig) serverConfig() (*tls.Config, error) {
	cert, key := t.CertFile, t.KeyFile
	if t.APICertFile != "" {
		cert, key = t.APICertFile, t.APIKeyFile
	}
	cfg, err := pki.ServerConfig(cert, key, t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("https api: %w", err)
	}
	return cfg, nil
}

// storeClientConfig is the replica's own store client's: it presents the
// replica's certificate and verifies its member against the cluster's CA.
// nil without TLS.
func (t TLSConfig) storeClientConfig() (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	return pki.ClientConfig(pki.ClientOptions{CAFiles: []string{t.CAFile}, CertFile: t.CertFile, KeyFile: t.KeyFile})
}

// peerClient asks the other replicas' APIs, trusting the cluster's CA and
// the operator's.
func (t TLSConfig) peerClient() (*http.Client, error) {
	if !t.Enabled() {
		return &http.Client{Timeout: 2 * time.Second}, nil
	}
	cas := []string{t.CAFile}
	if t.APICAFile != "" {
		cas = append(cas, t.APICAFile)
	}
	cfg, err := pki.ClientConfig(pki.ClientOptions{CAFiles: cas, CertFile: t.CertFile, KeyFile: t.KeyFile})
	if err != nil {
		return nil, fmt.Errorf("peer client: %w", err)
	}
	return pki.HTTPClient(cfg, 2*time.Second), nil
}

// trustedCaller says whether the request came with a client certificate
// the cluster's CA issued: ladder, or another replica.
func trustedCaller(req *http.Request) bool {
	return req.TLS != nil && len(req.TLS.VerifiedChains) > 0
}

// memberHosts maps every member of the store, by name, to the host of its
// peer URLs, as the raft membership (not a table anyone could write) has it.
func (r *Replica) memberHosts() map[string]string {
	out := map[string]string{}
	for _, m := range r.etcd.Server.Cluster().Members() {
		for _, pu := range m.PeerURLs {
			if u, err := url.Parse(pu); err == nil {
				out[m.Name] = u.Hostname()
			}
		}
	}
	return out
}

// checkRow refuses a replicas row that the cluster's own record does not
// back: its id must be a member of the store, and its URL this replica's
// scheme on that member's host. Without this check, whoever could write a
// row would make every replica fetch a URL of their choice.
func (r *Replica) checkRow(row replicaRow, hosts map[string]string) error {
	if len(r.cfg.APIMembers) > 0 {
		addr, ok := r.cfg.APIMembers[row.ID]
		if want := r.cfg.TLS.scheme() + addr; !ok || strings.TrimRight(row.HTTPURL, "/") != want {
			return fmt.Errorf("url %q is not %s, the replica's API in the cluster's record", row.HTTPURL, want)
		}
		return nil
	}
	host, ok := hosts[row.ID]
	if !ok {
		return fmt.Errorf("%q is not a member of the store", row.ID)
	}
	u, err := url.Parse(row.HTTPURL)
	if err != nil || u.Scheme+"://" != r.cfg.TLS.scheme() || u.Hostname() != host || u.Path != "" && u.Path != "/" || u.User != nil {
		return fmt.Errorf("url %q is not %s on the member's host %s", row.HTTPURL, r.cfg.TLS.scheme(), host)
	}
	return nil
}
