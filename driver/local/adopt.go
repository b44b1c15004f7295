package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
)

// Process is a process of this machine as /proc shows it.
type Process struct {
	PID int
	// Args is its command line, the program first.
	Args []string
	Env  []string
	// Cwd is its working folder, which relative paths in Args are from.
	Cwd string
}

// ErrNoProcess: no process of this user listens on the port asked about.
var ErrNoProcess = errors.New("no process of this user listens there")

// ProcessOn returns the process of this user that listens on TCP port of
// this machine, or an error wrapping ErrNoProcess.
func ProcessOn(port int) (Process, error) {
	pids := listeners(port)
	if len(pids) == 0 {
		return Process{}, fmt.Errorf("port %d: %w", port, ErrNoProcess)
	}
	pid := pids[0]
	p := Process{PID: pid}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return p, fmt.Errorf("read command line of pid %d: %w", pid, err)
	}
	p.Args = strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err == nil {
		p.Env = strings.Split(string(bytes.TrimRight(env, "\x00")), "\x00")
	}
	if p.Cwd, err = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil {
		return p, fmt.Errorf("read working folder of pid %d: %w", pid, err)
	}
	return p, nil
}

// Member is a running member of a cluster ladder did not create, to adopt.
type Member struct {
	// ID is the replica's id: the name its peers know it by.
	ID string
	// Version is the release it runs.
	Version string
	// Ports maps each of the service's ports to its loopback port.
	Ports map[string]int
	// DataDir is its data folder, which stays where it is.
	DataDir string
	// PID is its process, which the driver takes over as it runs: the
	// first restart or replacement starts it again under the driver.
	PID int
	// Own, if not nil, is the command line the driver starts the member
	// with from then on, on the release's program, instead of the
	// service's: the member keeps its own configuration (a quota, TLS
	// files, tuning) whatever ladder would have chosen.
	Own *OwnCommand
}

// OwnCommand is an adopted member's own command line.
type OwnCommand struct {
	// Args follow the program.
	Args []string `json:"args"`
	// Env is added to the driver's environment: the member's own
	// configuration variables, not all of its environment.
	Env []string `json:"env,omitempty"`
	// Dir is the working folder, which relative paths in Args are from.
	Dir string `json:"dir"`
	// Scheme is its API's URL scheme, "http" or "https".
	Scheme string `json:"scheme"`
}

// Adopt records a cluster of running processes that the driver did not
// start, and takes them over as they run: nothing is restarted. From then
// on the cluster is like one Create made, except that each replica's data
// stays in its own folder (Member.DataDir), which Destroy leaves in place.
// A replica's first restart (Restart, Replace) stops the adopted process
// and starts the release's program with the member's own command line
// (Member.Own) or, without one, the service's with the same name, data
// folder and ports; its output then goes to the replica's log in the
// cluster folder.
func Adopt(ctx context.Context, cluster string, svc driver.Service, members []Member, opts Options) (*Driver, error) {
	opts.defaults()
	if len(members) == 0 || len(members) > driver.MaxReplicas {
		return nil, fmt.Errorf("%w: adopt %d members: use 1 to %d", driver.ErrInvalidSpec, len(members), driver.MaxReplicas)
	}
	st := state{Secrets: map[string]string{}}
	seen := map[string]bool{}
	for _, m := range members {
		if err := validReplicaID(m.ID); err != nil {
			return nil, err
		}
		if seen[m.ID] {
			return nil, fmt.Errorf("%w: member %s given twice", driver.ErrInvalidSpec, m.ID)
		}
		seen[m.ID] = true
		if _, err := svc.Artifact(m.Version); err != nil {
			return nil, fmt.Errorf("adopt %s: %w", m.ID, err)
		}
		for _, n := range svc.Ports() {
			if m.Ports[n] <= 0 {
				return nil, fmt.Errorf("%w: member %s: no %s port", driver.ErrInvalidSpec, m.ID, n)
			}
		}
		if !filepath.IsAbs(m.DataDir) {
			return nil, fmt.Errorf("%w: member %s: data folder %q is not an absolute path", driver.ErrInvalidSpec, m.ID, m.DataDir)
		}
		r := replicaState{ID: m.ID, Version: m.Version, Ports: m.Ports, PID: m.PID, DataDir: m.DataDir, Own: m.Own}
		started, err := procStart(m.PID)
		if err != nil {
			return nil, fmt.Errorf("adopt %s: pid %d: %w", m.ID, m.PID, err)
		}
		r.Started = started
		st.Replicas = append(st.Replicas, r)
	}
	if _, err := home.Create(opts.Home, home.Record{Name: cluster, Driver: Name, Service: svc.Name(),
		Created: time.Now().UTC(), Adopted: true}, nil); err != nil {
		return nil, err
	}
	d := &Driver{name: cluster, dir: home.ClusterDir(opts.Home, cluster), svc: svc, opts: opts, st: st}
	d.st.SharedDir = filepath.Join(d.dir, "shared")
	if err := os.MkdirAll(d.st.SharedDir, 0o755); err != nil {
		return nil, fmt.Errorf("adopt cluster %s: %w", cluster, err)
	}
	for _, r := range d.st.Replicas {
		if err := os.MkdirAll(d.replicaDir(r.ID), 0o700); err != nil {
			return nil, fmt.Errorf("adopt cluster %s: %w", cluster, err)
		}
		note := fmt.Sprintf("--- ladder: adopted %s (pid %d, release %s, data %s) at %s; its output goes where it went before, until ladder restarts it\n",
			r.ID, r.PID, r.Version, r.DataDir, time.Now().UTC().Format(time.RFC3339))
		if err := os.WriteFile(d.logPath(r.ID), []byte(note), 0o600); err != nil {
			return nil, fmt.Errorf("adopt cluster %s: %w", cluster, err)
		}
	}
	if err := d.save(); err != nil {
		_ = os.RemoveAll(d.dir)
		return nil, err
	}
	d.opts.Logger.Info("cluster adopted", "cluster", cluster, "members", len(members))
	return d, nil
}

// validReplicaID checks an adopted member's name, which becomes a folder
// name of the cluster.
func validReplicaID(id string) error {
	ok := id != "" && len(id) <= 63 && id != "." && id != ".."
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("%w: member name %q: ladder adopts members named with 1-63 letters, digits, '-', '_' and '.'", driver.ErrInvalidSpec, id)
	}
	return nil
}

// ErrOwnsData: the cluster's data lives in its folder, so forgetting it
// would delete the data of members that keep running.
var ErrOwnsData = errors.New("the cluster's data is in its folder")

// Forget removes the cluster's folder, its record included, and leaves
// every member running, its data in place. Only a cluster whose replicas
// all keep their data outside the folder (an adopted one) can be
// forgotten: the data of a cluster Create made lives in the folder.
func (d *Driver) Forget() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var inside []string
	for _, r := range d.st.Replicas {
		if r.DataDir == "" {
			inside = append(inside, r.ID)
		}
	}
	if len(inside) > 0 {
		return fmt.Errorf("forget cluster %s: %w (replicas %s): stop it and delete it with ladder cluster destroy instead",
			d.name, ErrOwnsData, strings.Join(inside, ", "))
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("forget cluster %s: %w", d.name, err)
	}
	return nil
}

// Adopted reports whether replica id keeps its data outside the cluster's
// folder: a member of an adopted cluster.
func (d *Driver) Adopted(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.find(id)
	return err == nil && r.DataDir != ""
}
