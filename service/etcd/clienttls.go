package etcd

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientTLS are the files ladder connects to TLS members with: a CA that
// signed their certificates and, for members that ask for one
// (--client-cert-auth), a client certificate and its key. Paths, never the
// keys themselves: the files stay where their owner keeps them.
type ClientTLS struct {
	CA   string `json:"ca,omitempty"`
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// Config loads the files into a client configuration. An empty CA means
// the system's roots; a certificate needs its key and the other way round.
func (c ClientTLS) Config() (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CA != "" {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			return nil, fmt.Errorf("read CA certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA certificates: no PEM certificate in %s", c.CA)
		}
		conf.RootCAs = pool
	}
	switch {
	case c.Cert == "" && c.Key == "":
	case c.Cert == "" || c.Key == "":
		return nil, errors.New("a client certificate needs its key: give both")
	default:
		pair, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			// The error names the files, never their content.
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}
