package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// CAKeyFile is the file, in a cluster's folder, of its CA's private key
// (0600). It is not one of the cluster's secrets: no replica gets it.
const CAKeyFile = "ca.key"

// plainHTTPEnv, set to 1 when a cluster is created, makes a cluster
// without TLS: for measuring what TLS costs, never for use.
const plainHTTPEnv = "LADDER_PLAIN_HTTP"

// plainMarker marks, in its folder, a cluster made with plainHTTPEnv.
const plainMarker = "PLAIN-HTTP"

// registerTrust adds --ca and --insecure-tls to every command.
func registerTrust(root *cobra.Command, e *env) {
	root.PersistentFlags().StringVar(&e.caFile, "ca", "", "a CA certificate (PEM) to trust besides the cluster's own, e.g. the one that issued the API's certificate")
	root.PersistentFlags().BoolVar(&e.insecureTLS, "insecure-tls", false, "do not verify the cluster's certificates (warns every time; for a cluster whose CA you do not have)")
}

// errNoTLS reports a cluster made before clusters had TLS.
var errNoTLS = errors.New("it has no TLS")

// clusterTLS is how this command trusts cluster rec's replicas and proves
// itself to them: the cluster's CA (and --ca), ladder's client
// certificate; nil for a plain-HTTP measurement cluster. A cluster created
// before TLS is refused with what to do.
func (e *env) clusterTLS(rec home.Record) (*tls.Config, error) {
	if tc, ok := e.tlsCache[rec.Name]; ok {
		return tc, nil
	}
	if _, ok := rec.Secrets[service.CASecret]; !ok {
		if _, err := os.Stat(filepath.Join(clusterFolder(rec), plainMarker)); err == nil {
			return nil, nil
		}
		return nil, withHint(ExitFailed, fmt.Errorf("cluster %s was created by an older ladder: %w (its store's ports are open to anyone who can reach them)", rec.Name, errNoTLS),
			fmt.Sprintf("recreate it: ladder cluster destroy --cluster %s, then ladder cluster create --cluster %s --version VERSION", rec.Name, rec.Name))
	}
	var extra []string
	if e.caFile != "" {
		extra = append(extra, e.caFile)
	}
	tc, err := service.ClientTLS(rec.Secrets, extra, e.insecureTLS)
	if err != nil {
		return nil, fmt.Errorf("trust cluster %s: %w", rec.Name, err)
	}
	if e.insecureTLS {
		fmt.Fprintln(e.stderr, pki.InsecureWarning)
	}
	if e.tlsCache == nil {
		e.tlsCache = map[string]*tls.Config{}
	}
	e.tlsCache[rec.Name] = tc
	return tc, nil
}

// clusterFolder is where rec's files are.
func clusterFolder(rec home.Record) string {
	if rec.Dir != "" {
		return rec.Dir
	}
	root, _ := home.Dir()
	return home.ClusterDir(root, rec.Name)
}

// caPath is the CA certificate that verifies the cluster's API: the
// operator's, when the API serves their certificate.
func caPath(rec home.Record) string {
	if f, ok := rec.Secrets[service.APICASecret]; ok {
		return f
	}
	return rec.Secrets[service.CASecret]
}

// replicaHosts are the names a replica's certificate holds: this machine's
// loopback names (the local driver; a container reaching itself; a
// published port) and its container's name on the cluster's network.
func replicaHosts(cluster, id string) []string {
	return append(pki.LocalHosts(), docker.ContainerName(cluster, id))
}

// replicaIDs are the ids drivers give a cluster's n replicas.
func replicaIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("replica-%d", i+1)
	}
	return ids
}

// issueReplicas adds to secrets a certificate for every replica of
// cluster, issued by ca.
func issueReplicas(ca *pki.CA, cluster string, ids []string, secrets map[string][]byte) error {
	for _, id := range ids {
		pair, err := ca.Issue("ladder "+cluster+" "+id, replicaHosts(cluster, id))
		if err != nil {
			return err
		}
		secrets[service.ReplicaCertSecret(id)] = pair.CertPEM
		secrets[service.ReplicaKeySecret(id)] = pair.KeyPEM
	}
	return nil
}

// newTrust makes a new cluster's CA and the certificates of its replicas
// and of ladder, into secrets.
func newTrust(cluster string, replicas int, secrets map[string][]byte) (*pki.CA, error) {
	ca, err := pki.NewCA(cluster)
	if err != nil {
		return nil, err
	}
	secrets[service.CASecret] = ca.CertPEM
	if err := issueReplicas(ca, cluster, replicaIDs(replicas), secrets); err != nil {
		return nil, err
	}
	client, err := ca.Issue("ladder "+cluster+" client", nil)
	if err != nil {
		return nil, err
	}
	secrets[service.ClientCertSecret], secrets[service.ClientKeySecret] = client.CertPEM, client.KeyPEM
	return ca, nil
}

// writeCAKey keeps the CA's key in the cluster's folder, readable only by
// its owner, for rotate-certs.
func writeCAKey(dir string, ca *pki.CA) error {
	key, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, CAKeyFile), key, 0o600); err != nil {
		return fmt.Errorf("write the CA's key: %w", err)
	}
	return nil
}

// apiCert is an operator's own certificate for the HTTPS API: cluster
// create --tls-cert, --tls-key, and --ca, the CA that issued it.
type apiCert struct{ cert, key, ca string }

func (a apiCert) with(ca string) apiCert {
	a.ca = ca
	return a
}

// add puts the certificate, its key and its CA among a new cluster's
// secrets, after checking that they belong together.
func (a apiCert) add(secrets map[string][]byte) error {
	if a.cert == "" && a.key == "" {
		return nil
	}
	if a.cert == "" || a.key == "" || a.ca == "" {
		return usageErr("--tls-cert, --tls-key and --ca go together: the certificate, its key, and the CA that issued it")
	}
	if _, err := pki.ServerConfig(a.cert, a.key, ""); err != nil {
		return usageErr("--tls-cert and --tls-key: %v", err)
	}
	for name, f := range map[string]string{service.APICertSecret: a.cert, service.APIKeySecret: a.key, service.APICASecret: a.ca} {
		data, err := os.ReadFile(f)
		if err != nil {
			return usageErr("read %s: %v", f, err)
		}
		secrets[name] = data
	}
	return nil
}

// clusterStatusJSON is a cluster's status with the CA that verifies its
// URLs.
type clusterStatusJSON struct {
	upgrade.Status
	CA string `json:"ca,omitempty"`
}
