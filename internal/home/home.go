// Package home is ladder's state folder on this machine: where clusters
// live ($LADDER_HOME/clusters/NAME), the record that says how to reach each
// one, the secrets a cluster keeps (files readable only by their owner),
// and atomic writes of small JSON files.
//
// A cluster folder always holds cluster.json, the Record. Drivers keep
// their own state beside it; the upgrade journal lives in journal/.
package home

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// ErrNoCluster means the named cluster has no record here.
var ErrNoCluster = errors.New("no such cluster")

// ErrClusterExists means a cluster of that name exists already.
var ErrClusterExists = errors.New("cluster exists")

// Dir returns ladder's state folder: $LADDER_HOME, or ~/.ladder.
func Dir() (string, error) {
	if h := os.Getenv("LADDER_HOME"); h != "" {
		return h, nil
	}
	u, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home folder (set LADDER_HOME): %w", err)
	}
	return filepath.Join(u, ".ladder"), nil
}

// ClusterDir returns the folder of cluster name under root.
func ClusterDir(root, name string) string { return filepath.Join(root, "clusters", name) }

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
// find the driver and the service again, so that later commands need
// neither --driver nor --service.
type Record struct {
	Name    string    `json:"name"`
	Driver  string    `json:"driver"`
	Service string    `json:"service"`
	Created time.Time `json:"created"`
	// Secrets maps each secret's name to its file (0600) in the folder.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Build names the artifacts the cluster runs, when the driver keeps
	// more than one set (the docker driver's image build).
	Build string `json:"build,omitempty"`
	// BlobStore is where the cluster keeps blobs when not in its shared
	// folder: s3://BUCKET?endpoint=...&region=... (no credentials).
	BlobStore string `json:"blob_store,omitempty"`
	// OwnsBucket records that ladder created the blob store's bucket, so
	// destroying the cluster removes it.
	OwnsBucket bool `json:"owns_bucket,omitempty"`
	// Dir is the cluster's folder when it is not this one: a cluster
	// connected from the ladder home that created it.
	Dir string `json:"dir,omitempty"`
	// Adopted: ladder did not create the cluster, it took over members
	// that were running (ladder cluster adopt); their data stays where it
	// was.
	Adopted bool `json:"adopted,omitempty"`
}

// Secret reads the secret name of the cluster, without its trailing newline.
func (r Record) Secret(name string) (string, error) {
	path, ok := r.Secrets[name]
	if !ok {
		return "", fmt.Errorf("cluster %s keeps no %s", r.Name, name)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, err)
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// RecordFile is the record's file name in a cluster folder.
const RecordFile = "cluster.json"

// ReadRecord reads the record of cluster name; an error wrapping
// ErrNoCluster, naming the clusters there are, if it has none.
func ReadRecord(root, name string) (Record, error) {
	var r Record
	data, err := os.ReadFile(filepath.Join(ClusterDir(root, name), RecordFile))
	if errors.Is(err, os.ErrNotExist) {
		there := "there are none here"
		if names := Clusters(root); len(names) > 0 {
			there = "clusters here: " + strings.Join(names, ", ")
		}
		return r, fmt.Errorf("%w %q (%s; create one with: ladder cluster create --cluster %s --version VERSION)", ErrNoCluster, name, there, name)
	}
	if err != nil {
		return r, fmt.Errorf("read cluster record: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read cluster record %s: %w", filepath.Join(ClusterDir(root, name), RecordFile), err)
	}
	return r, nil
}

// Clusters lists the names of the clusters that have a record under root.
func Clusters(root string) []string {
	entries, _ := os.ReadDir(filepath.Join(root, "clusters"))
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, "clusters", e.Name(), RecordFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names
}

// WriteRecord writes r atomically into its cluster folder.
func WriteRecord(root string, r Record) error {
	return WriteFileAtomic(filepath.Join(ClusterDir(root, r.Name), RecordFile), r)
}

// CheckNew fails, wrapping ErrClusterExists, if cluster name has a folder.
func CheckNew(root, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	dir := ClusterDir(root, name)
	if _, err := os.Stat(dir); err == nil {
		return fmt.Errorf("%w: %q is at %s (remove it with: ladder cluster destroy --cluster %s)",
			ErrClusterExists, name, dir, name)
	}
	return nil
}

// Create makes the folder of a new cluster, writes its secrets (0600) and
// its record, and returns the record as written. It fails, wrapping
// ErrClusterExists, if the folder exists.
func Create(root string, rec Record, secrets map[string][]byte) (Record, error) {
	if err := CheckNew(root, rec.Name); err != nil {
		return rec, err
	}
	dir := ClusterDir(root, rec.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rec, fmt.Errorf("create cluster folder: %w", err)
	}
	rec.Secrets = map[string]string{}
	for name, data := range secrets {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return rec, fmt.Errorf("write %s: %w", name, err)
		}
		rec.Secrets[name] = path
	}
	if err := WriteRecord(root, rec); err != nil {
		return rec, err
	}
	return rec, nil
}

// GeneratePassword returns a random password of 24 letters and digits.
func GeneratePassword() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))
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

// Tail returns the last n lines of data, for errors that quote a log.
func Tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
