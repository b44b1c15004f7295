package service

import (
	"crypto/tls"
	"net/http"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/pki"
)

// The registry's TLS material among a cluster's secrets (see
// RegistrySecrets). The CA's key is not one of them: it stays in ladder's
// cluster folder and no replica ever holds it.
const (
	CASecret         = "ca.crt"
	ClientCertSecret = "client.crt"
	ClientKeySecret  = "client.key"
	// APICertSecret and APIKeySecret are an operator's own certificate
	// for the HTTPS API (cluster create --tls-cert/--tls-key), and
	// APICASecret the CA that issued it (--ca).
	APICertSecret = "api.crt"
	APIKeySecret  = "api.key"
	APICASecret   = "api-ca.crt"
)

// ReplicaCertSecret and ReplicaKeySecret name replica id's own certificate
// and key among the cluster's secrets.
func ReplicaCertSecret(id string) string { return id + ".crt" }

// ReplicaKeySecret: see ReplicaCertSecret.
func ReplicaKeySecret(id string) string { return id + ".key" }

// APIScheme implements driver.SecureService: HTTPS once the cluster has a CA.
func (Registry) APIScheme(secrets map[string]string) string {
	if _, ok := secrets[CASecret]; ok {
		return "https"
	}
	return "http"
}

var _ driver.SecureService = Registry{}

var _ driver.SecretScoper = Registry{}

// ReplicaSecret implements driver.SecretScoper: a replica gets the admin
// password, the CA's certificate, the operator's API certificate, and its
// own certificate and key; not its peers' keys, nor ladder's.
func (Registry) ReplicaSecret(id, name string) bool {
	switch name {
	case ClientCertSecret, ClientKeySecret:
		return false
	case ReplicaCertSecret(id), ReplicaKeySecret(id):
		return true
	}
	return !strings.HasPrefix(name, "replica-")
}

// JobSecret implements driver.SecretScoper: a job (a migration, a seed)
// opens the store with ladder's client certificate and needs nothing else.
func (Registry) JobSecret(name string) bool {
	return name == CASecret || name == ClientCertSecret || name == ClientKeySecret
}

// tlsArgs are `registry serve`'s certificate flags for placement p.
func tlsArgs(p driver.Placement) []string {
	ca, ok := p.Secrets[CASecret]
	if !ok {
		return nil
	}
	args := []string{"--tls-cert", p.Secrets[ReplicaCertSecret(p.ID)], "--tls-key", p.Secrets[ReplicaKeySecret(p.ID)], "--tls-ca", ca}
	if cert, ok := p.Secrets[APICertSecret]; ok {
		args = append(args, "--api-cert", cert, "--api-key", p.Secrets[APIKeySecret])
		if apiCA, ok := p.Secrets[APICASecret]; ok {
			args = append(args, "--api-ca", apiCA)
		}
	}
	return args
}

// jobTLSArgs are a store client job's certificate flags: ladder's client
// certificate, which the store's ports accept.
func jobTLSArgs(secrets map[string]string) []string {
	ca, ok := secrets[CASecret]
	if !ok {
		return nil
	}
	return []string{"--cert", secrets[ClientCertSecret], "--key", secrets[ClientKeySecret], "--cacert", ca}
}

// The timeouts of ladder's requests to replicas.
const (
	// probeTimeout: a frozen replica costs a second or two, not a minute.
	probeTimeout = 2 * time.Second
	// backupTimeout: a store snapshot may take a while.
	backupTimeout = 10 * time.Minute
)

// httpClient is ladder's client of the cluster's API, over the shared
// transport of a.TLS (nil: plain HTTP).
func (a RegistryApp) httpClient(timeout time.Duration) *http.Client {
	return pki.HTTPClient(a.TLS, timeout)
}

// ClientTLS is how ladder trusts a registry cluster whose secrets (name to
// file) are given, and proves itself to it: the cluster's CA, the CA of an
// operator's API certificate and extraCAs verify the replicas (unless
// insecure); ladder's client certificate opens the store. It is nil, with
// no error, for a cluster without a CA.
func ClientTLS(secrets map[string]string, extraCAs []string, insecure bool) (*tls.Config, error) {
	ca, ok := secrets[CASecret]
	if !ok {
		return nil, nil
	}
	o := pki.ClientOptions{CAFiles: []string{ca}, Insecure: insecure,
		CertFile: secrets[ClientCertSecret], KeyFile: secrets[ClientKeySecret]}
	if f, ok := secrets[APICASecret]; ok {
		o.CAFiles = append(o.CAFiles, f)
	}
	o.CAFiles = append(o.CAFiles, extraCAs...)
	return pki.ClientConfig(o)
}
