package cli

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/service/etcd"
)

// clientTLSFile, in an etcd cluster's folder, names the files ladder
// connects to its TLS members with (etcd.ClientTLS): paths, not copies.
const clientTLSFile = "etcd-client-tls.json"

// writeClientTLS records, 0600, the TLS files of cluster name's clients.
func writeClientTLS(name string, c etcd.ClientTLS) error {
	root, err := home.Dir()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(home.ClusterDir(root, name), clientTLSFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("record the client TLS files of cluster %s: %w", name, err)
	}
	return nil
}

// clusterClientTLS returns the TLS configuration ladder reaches cluster
// name's members with: nil for plain http.
func clusterClientTLS(name string) (*tls.Config, error) {
	root, err := home.Dir()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(home.ClusterDir(root, name), clientTLSFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the client TLS files of cluster %s: %w", name, err)
	}
	var c etcd.ClientTLS
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("read %s of cluster %s: %w", clientTLSFile, name, err)
	}
	conf, err := c.Config()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w (the files given to ladder cluster adopt must stay in place)", name, err)
	}
	return conf, nil
}

// isTLSMismatch reports whether err is TLS spoken to a plain port, plain
// HTTP to a TLS port, or a handshake the member or ladder refused.
func isTLSMismatch(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, w := range []string{"tls:", "x509:", "HTTP response to HTTPS client", "certificate", "malformed HTTP response"} {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}
