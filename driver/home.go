package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Home returns ladder's state folder: $LADDER_HOME, or ~/.ladder.
func Home() (string, error) {
	if h := os.Getenv("LADDER_HOME"); h != "" {
		return h, nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home folder (set LADDER_HOME): %w", err)
	}
	return filepath.Join(u, ".ladder"), nil
}

// ClusterDir returns the folder of cluster name under home.
func ClusterDir(home, name string) string { return filepath.Join(home, "clusters", name) }

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// ValidateName checks a cluster name: lower-case letters, digits and
// dashes, at most 31 characters, so it fits file, container and network
// names alike.
func ValidateName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("invalid cluster name %q: use 1-31 lower-case letters, digits and dashes, starting with a letter or digit", name)
	}
	return nil
}

// Record is what every cluster folder holds in cluster.json: enough to
// find the driver again, so that later commands need no --driver.
type Record struct {
	Name    string    `json:"name"`
	Driver  string    `json:"driver"`
	Created time.Time `json:"created"`
	// AdminPasswordFile is the 0600 file holding the admin password.
	AdminPasswordFile string `json:"admin_password_file"`
}

const recordFile = "cluster.json"

// ReadRecord reads the record of cluster name; ErrNoCluster if none.
func ReadRecord(home, name string) (Record, error) {
	var r Record
	data, err := os.ReadFile(filepath.Join(ClusterDir(home, name), recordFile))
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("%w %q (create it with: ladder cluster create --cluster %s --version VERSION)", ErrNoCluster, name, name)
	}
	if err != nil {
		return r, fmt.Errorf("read cluster record: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read cluster record %s: %w", filepath.Join(ClusterDir(home, name), recordFile), err)
	}
	return r, nil
}

// WriteRecord writes r atomically into its cluster folder.
func WriteRecord(home string, r Record) error {
	return WriteFileAtomic(filepath.Join(ClusterDir(home, r.Name), recordFile), r)
}

// WriteFileAtomic writes v as JSON to path through a synced temporary file
// and a rename, so a crash leaves the old or the new content, never half.
func WriteFileAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
