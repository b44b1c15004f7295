package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// ErrUntrusted reports a client that has nothing to verify a cluster with.
var ErrUntrusted = errors.New("no CA to verify the cluster with")

// InsecureWarning is what a command says every time it talks to a cluster
// without verifying it.
const InsecureWarning = "warning: --insecure-tls: the cluster's certificates are not verified; anyone on the path can read and change this traffic, the admin password included"

// ClientOptions say how a client trusts a cluster and proves itself.
type ClientOptions struct {
	// CAFiles are PEM files of the CAs that servers are verified against:
	// the cluster's, and an operator's own (--ca).
	CAFiles []string
	// CertFile and KeyFile are the client certificate presented: ladder's,
	// which opens the store's ports and the API's store details. Optional
	// for the HTTP API.
	CertFile, KeyFile string
	// Insecure skips verifying the server (--insecure-tls).
	Insecure bool
}

// ClientConfig builds the TLS configuration of a client of a cluster. It
// verifies servers against CAFiles unless Insecure, and fails wrapping
// ErrUntrusted when it has neither.
func ClientConfig(o ClientOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.Insecure:
		cfg.InsecureSkipVerify = true
	case len(o.CAFiles) == 0:
		return nil, ErrUntrusted
	default:
		pool, err := Pool(o.CAFiles...)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if o.CertFile != "" || o.KeyFile != "" {
		pair, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate %s: %w", o.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Pool reads PEM CA certificates into a pool.
func Pool(files ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("read CA certificate %s: no PEM certificate in it", f)
		}
	}
	return pool, nil
}

// ServerConfig is the TLS configuration of a replica's HTTPS API: it
// serves certFile and, when caFile is given, accepts (without requiring) a
// client certificate the cluster's CA issued, which callers' handlers see
// in Request.TLS.VerifiedChains.
func ServerConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", certFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if caFile != "" {
		pool, err := Pool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

var (
	transportsMu sync.Mutex
	transports   = map[*tls.Config]*http.Transport{}
)

// Transport is the HTTP transport for cfg (nil: plain HTTP). Every caller
// with the same cfg shares one, so connections and TLS sessions are reused
// across the many short requests a wait makes.
func Transport(cfg *tls.Config) *http.Transport {
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if t, ok := transports[cfg]; ok {
		return t
	}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if cfg != nil {
		t.TLSClientConfig = cfg.Clone()
		t.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	transports[cfg] = t
	return t
}

// HTTPClient is a client over Transport(cfg) whose requests end after
// timeout (0: no limit).
func HTTPClient(cfg *tls.Config, timeout time.Duration) *http.Client {
	return &http.Client{Transport: Transport(cfg), Timeout: timeout}
}

// Scheme is the URL scheme of an API served with cfg: "https", or "http"
// without TLS.
func Scheme(cfg *tls.Config) string {
	if cfg == nil {
		return "http"
	}
	return "https"
}
