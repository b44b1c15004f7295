package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
)

func newClusterConnectCmd(e *env) *cobra.Command {
	var (
		cf           clusterFlag
		endpoint     string
		passwordFile string
		clientCert   string
		clientKey    string
	)
	c := &cobra.Command{
		Use:   "connect",
		Short: "Register a cluster another ladder home created, to upgrade it from here",
		Long: `Connect registers in this ladder home a cluster that another one created
(another operator, another LADDER_HOME), from the URL of one of its
replicas: its local processes on this machine, or its containers on the
Docker engine DOCKER_HOST names. From then on every command works on it
from here too. The upgrade's lock and journal live in the cluster, so an
upgrade started elsewhere shows in 'ladder status' here, is refused while
it runs, and can be resumed from here once its holder is gone.

A docker cluster's admin password and certificates are not on this
machine: give its password with --admin-password-file, its CA with --ca
(the "ca" of 'ladder cluster status -o json' where it was created) and
ladder's client certificate there with --client-cert and --client-key (its
files client.crt and client.key); they are copied into this ladder home. A
local cluster's are read where the cluster lives.`,
		Example: `  ladder cluster connect --cluster prod --endpoint https://127.0.0.1:38211
  ladder cluster connect --cluster prod --endpoint https://127.0.0.1:38211 --admin-password-file ./prod-admin \
    --ca ./prod-ca.crt --client-cert ./prod-client.crt --client-key ./prod-client.key`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if endpoint == "" {
				return usageErr("--endpoint URL is required: the address of one of the cluster's replicas (see ladder cluster status where it was created)")
			}
			if err := home.ValidateName(cf.name); err != nil {
				return usageErr("%w", err)
			}
			root, err := home.Dir()
			if err != nil {
				return err
			}
			if err := home.CheckNew(root, cf.name); err != nil {
				return withCode(ExitUsage, err)
			}
			rec, where, err := e.connectRecord(e.ctx, cf.name, endpoint, passwordFile)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(home.ClusterDir(root, cf.name), 0o700); err != nil {
				return err
			}
			if rec.Secrets[service.AdminPasswordSecret] == "" && passwordFile != "" {
				pw, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageErr("read --admin-password-file: %v", err)
				}
				path := filepath.Join(home.ClusterDir(root, cf.name), service.AdminPasswordSecret)
				if err := os.WriteFile(path, pw, 0o600); err != nil {
					return err
				}
				rec.Secrets = map[string]string{service.AdminPasswordSecret: path}
				for secret, from := range map[string]string{service.CASecret: e.caFile,
					service.ClientCertSecret: clientCert, service.ClientKeySecret: clientKey} {
					if from == "" {
						continue
					}
					data, err := os.ReadFile(from)
					if err != nil {
						return usageErr("read %s: %v", from, err)
					}
					path := filepath.Join(home.ClusterDir(root, cf.name), secret)
					if err := os.WriteFile(path, data, 0o600); err != nil {
						return err
					}
					rec.Secrets[secret] = path
				}
			}
			if err := home.WriteRecord(root, rec); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "cluster %s connected: %s\n", cf.name, where)
			d, _, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			st, err := e.clusterStatus(e.ctx, d)
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, st)
			}
			printStatus(e.stdout, st)
			return nil
		},
	}
	cf.register(c)
	c.Flags().StringVar(&endpoint, "endpoint", "", "URL of one of the cluster's replicas, e.g. http://127.0.0.1:38211 (required)")
	c.Flags().StringVar(&passwordFile, "admin-password-file", "", "`FILE` holding the cluster's admin password (a docker cluster's)")
	c.Flags().StringVar(&clientCert, "client-cert", "", "a docker cluster's: ladder's client certificate where it was created (client.crt), for its store")
	c.Flags().StringVar(&clientKey, "client-key", "", "the key of --client-cert (client.key)")
	return c
}

// connectRecord finds the cluster whose replica answers at endpoint and
// returns the record this home keeps of it, and where it runs.
func (e *env) connectRecord(ctx context.Context, name, endpoint, passwordFile string) (home.Record, string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return home.Record{}, "", usageErr("invalid --endpoint %q: want a URL such as https://127.0.0.1:38211", endpoint)
	}
	tc, err := e.connectTLS(u, name)
	if err != nil {
		return home.Record{}, "", err
	}
	var st registry.StatusReport
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/api/v1/status", nil)
	resp, err := pki.HTTPClient(tc, 5*time.Second).Do(req)
	if err != nil {
		return home.Record{}, "", fmt.Errorf("connect to %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if err := jsonDecode(resp, &st); err != nil || st.Cluster == "" {
		return home.Record{}, "", fmt.Errorf("connect to %s: not a replica of a ladder cluster (%v)", endpoint, err)
	}
	if st.Cluster != name {
		return home.Record{}, "", withCode(ExitUsage, fmt.Errorf("the replica at %s belongs to cluster %q, not %q", endpoint, st.Cluster, name))
	}
	_, p, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(p)
	if dir, err := local.Find(port); err == nil {
		orig, err := home.ReadRecord(filepath.Dir(filepath.Dir(dir)), name)
		if err != nil {
			return home.Record{}, "", fmt.Errorf("connect to cluster %s: its folder %s: %w", name, dir, err)
		}
		orig.Dir = dir
		return orig, "local processes, their folder " + dir, nil
	}
	cli, err := docker.NewClient()
	if err == nil {
		defer cli.Close()
		build, err := docker.FindBuild(ctx, cli, name)
		if err == nil {
			if passwordFile == "" {
				return home.Record{}, "", usageErr("cluster %s runs on the Docker engine: give its admin password with --admin-password-file FILE", name)
			}
			return home.Record{Name: name, Driver: docker.Name, Service: service.RegistryName, Build: build,
				Created: time.Now().UTC()}, "docker containers, image build " + build, nil
		}
		if !errors.Is(err, home.ErrNoCluster) {
			return home.Record{}, "", err
		}
	}
	return home.Record{}, "", fmt.Errorf("connect to cluster %s: its replica answers at %s, but neither a process of this machine nor a container of the Docker engine runs it: connect from the machine it runs on", name, endpoint)
}

// connectTLS is how connect trusts the replica at u, of cluster name: a
// local cluster's own CA, found by the replica's port; else --ca, or
// --insecure-tls. nil for plain HTTP.
func (e *env) connectTLS(u *url.URL, name string) (*tls.Config, error) {
	if u.Scheme != "https" {
		return nil, nil
	}
	var extra []string
	if e.caFile != "" {
		extra = append(extra, e.caFile)
	}
	_, p, _ := net.SplitHostPort(u.Host)
	port, _ := strconv.Atoi(p)
	if dir, err := local.Find(port); err == nil {
		if orig, err := home.ReadRecord(filepath.Dir(filepath.Dir(dir)), name); err == nil {
			return service.ClientTLS(orig.Secrets, extra, e.insecureTLS)
		}
	}
	if len(extra) == 0 && !e.insecureTLS {
		return nil, usageErr("give the cluster's CA with --ca FILE (\"ca\" in ladder cluster status -o json where it was created), or --insecure-tls")
	}
	if e.insecureTLS {
		fmt.Fprintln(e.stderr, pki.InsecureWarning)
	}
	return pki.ClientConfig(pki.ClientOptions{CAFiles: extra, Insecure: e.insecureTLS})
}
