package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/internal/home"
)

// DockerCertsDir is where the Docker daemon looks for the CA of a registry
// at HOST:PORT: DockerCertsDir/HOST:PORT/ca.crt.
const DockerCertsDir = "/etc/docker/certs.d"

// dockerTrustFile, in a cluster's folder in this ladder home, lists the
// files `cluster trust --docker` installed, so that --undo and destroy
// remove those and nothing else.
const dockerTrustFile = "docker-trust.json"

// dockerTrust is what dockerTrustFile holds.
type dockerTrust struct {
	Files []string `json:"files"`
}

// trustResult is `cluster trust`'s JSON.
type trustResult struct {
	Cluster   string   `json:"cluster"`
	Installed []string `json:"installed,omitempty"`
	Removed   []string `json:"removed,omitempty"`
}

func newClusterTrustCmd(e *env) *cobra.Command {
	var (
		cf       clusterFlag
		dockerOn bool
		undo     bool
		certsDir string
	)
	c := &cobra.Command{
		Use:   "trust",
		Short: "Make other programs trust the cluster's CA (the Docker daemon: --docker)",
		Long: `Trust --docker installs the cluster's CA certificate for the Docker daemon,
as ` + DockerCertsDir + `/HOST:PORT/ca.crt for every replica's address, so that
'docker login', 'docker push' and 'docker pull' verify the replicas' HTTPS
without any insecure-registries setting. --undo removes what it installed;
'ladder cluster destroy' does too. Files that ladder did not write are
never changed or removed.

Writing under ` + DockerCertsDir + ` needs root; --certs-dir writes elsewhere
(a rootless daemon's ~/.config/docker/certs.d, or a test's folder).

Note: the Docker daemon treats registries on 127.0.0.0/8 as insecure by
default and then skips verification whatever certs.d holds; the CA is used
for every other address a replica is reached at.`,
		Example: `  sudo ladder cluster trust --docker
  ladder cluster trust --docker --certs-dir ~/.config/docker/certs.d
  sudo ladder cluster trust --docker --undo`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if !dockerOn {
				return usageErr("say which program should trust the cluster: --docker (the only one so far)")
			}
			d, rec, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			if caPath(rec) == "" {
				return usageErr("cluster %s has no CA of ladder's to trust (a %s cluster; only registry clusters have one)", cf.name, rec.Service)
			}
			root, err := home.Dir()
			if err != nil {
				return err
			}
			res := trustResult{Cluster: cf.name}
			if undo {
				res.Removed, err = undoDockerTrust(home.ClusterDir(root, cf.name))
			} else {
				var addrs []string
				reps, rerr := d.Replicas(e.ctx)
				if rerr != nil {
					return rerr
				}
				for _, r := range reps {
					u, perr := url.Parse(r.URL)
					if perr != nil {
						return fmt.Errorf("trust cluster %s: replica %s: %w", cf.name, r.ID, perr)
					}
					addrs = append(addrs, u.Host)
				}
				res.Installed, err = installDockerTrust(home.ClusterDir(root, cf.name), certsDir, caPath(rec), addrs)
			}
			if err != nil {
				return fmt.Errorf("trust cluster %s: %w", cf.name, err)
			}
			if e.json() {
				return writeJSON(e.stdout, res)
			}
			for _, f := range res.Installed {
				fmt.Fprintf(e.stdout, "installed %s\n", f)
			}
			for _, f := range res.Removed {
				fmt.Fprintf(e.stdout, "removed %s\n", f)
			}
			if len(res.Installed)+len(res.Removed) == 0 {
				fmt.Fprintln(e.stdout, "nothing to do")
			}
			return nil
		},
	}
	cf.register(c)
	c.Flags().BoolVar(&dockerOn, "docker", false, "install the CA for the Docker daemon, under --certs-dir")
	c.Flags().BoolVar(&undo, "undo", false, "remove what an earlier trust installed")
	c.Flags().StringVar(&certsDir, "certs-dir", DockerCertsDir, "the Docker daemon's certs.d folder")
	return c
}

// installDockerTrust writes ca into certsDir/ADDR/ca.crt for every addr,
// and records each file it wrote in the cluster's folder dir. A file
// already there with other content is not overwritten.
func installDockerTrust(dir, certsDir, ca string, addrs []string) ([]string, error) {
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("read the cluster's CA: %w", err)
	}
	rec := readDockerTrust(dir)
	var installed []string
	for _, addr := range addrs {
		f := filepath.Join(certsDir, addr, "ca.crt")
		if old, err := os.ReadFile(f); err == nil {
			if !bytes.Equal(old, pem) {
				return installed, fmt.Errorf("%s exists and holds another CA: remove it first if it is stale", f)
			}
		} else {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				return installed, fmt.Errorf("install the CA: %w (root owns %s: run with sudo, or give --certs-dir)", err, certsDir)
			}
			if err := os.WriteFile(f, pem, 0o644); err != nil {
				return installed, fmt.Errorf("install the CA: %w", err)
			}
		}
		installed = append(installed, f)
		if !slices.Contains(rec.Files, f) {
			rec.Files = append(rec.Files, f)
		}
		if err := home.WriteFileAtomic(filepath.Join(dir, dockerTrustFile), rec); err != nil {
			return installed, err
		}
	}
	return installed, nil
}

// undoDockerTrust removes the files trust --docker recorded in the cluster
// folder dir, and their folders once empty.
func undoDockerTrust(dir string) ([]string, error) {
	rec := readDockerTrust(dir)
	var removed []string
	for _, f := range rec.Files {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return removed, fmt.Errorf("remove %s: %w", f, err)
		}
		_ = os.Remove(filepath.Dir(f)) // only if empty
		removed = append(removed, f)
	}
	if err := os.Remove(filepath.Join(dir, dockerTrustFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return removed, err
	}
	return removed, nil
}

func readDockerTrust(dir string) dockerTrust {
	var rec dockerTrust
	if data, err := os.ReadFile(filepath.Join(dir, dockerTrustFile)); err == nil {
		_ = json.Unmarshal(data, &rec)
	}
	return rec
}
