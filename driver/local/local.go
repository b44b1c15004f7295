package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ladder-dev/ladder/driver"
)

// Name is the driver's name in cluster records.
const Name = "local"

// Options configure the driver.
type Options struct {
	// Home is ladder's state folder (driver.Home()).
	Home string
	// Binary is the ladder binary replicas run; default: this executable.
	Binary string
	// StopGrace is how long a replica gets to stop after SIGTERM before
	// SIGKILL; default 10s.
	StopGrace time.Duration
	// StartTimeout bounds the wait for a started replica to listen;
	// default 60s.
	StartTimeout time.Duration
	Logger       *slog.Logger

	// pickPorts chooses free ports; tests replace it.
	pickPorts func(n int) ([]int, error)
}

// Driver is the local driver, bound to one cluster.
type Driver struct {
	name string
	dir  string
	opts Options
	mu   sync.Mutex
	st   state
	// exits maps the pid of a replica this process started and reaped to
	// its exit status.
	exits sync.Map
}

// errAddrInUse means a replica exited because a listen address was taken.
var errAddrInUse = errors.New("listen address in use")

type state struct {
	BlobDir           string         `json:"blob_dir"`
	AdminPasswordFile string         `json:"admin_password_file"`
	Replicas          []replicaState `json:"replicas"`
}

type replicaState struct {
	ID         string `json:"id"`
	Version    string `json:"version"`
	HTTPPort   int    `json:"http_port"`
	PeerPort   int    `json:"peer_port"`
	ClientPort int    `json:"client_port"`
	PID        int    `json:"pid"`
}

var _ driver.Driver = (*Driver)(nil)
var _ driver.Freezer = (*Driver)(nil)
var _ driver.ArtifactChecker = (*Driver)(nil)

func (o *Options) defaults() error {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the ladder binary: %w", err)
		}
		o.Binary = exe
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.pickPorts == nil {
		o.pickPorts = freePorts
	}
	return nil
}

// Open binds the driver to an existing cluster.
func Open(name string, opts Options) (*Driver, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	d := &Driver{name: name, dir: driver.ClusterDir(opts.Home, name), opts: opts}
	data, err := os.ReadFile(d.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q", driver.ErrNoCluster, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	if err := json.Unmarshal(data, &d.st); err != nil {
		return nil, fmt.Errorf("read cluster state %s: %w", d.statePath(), err)
	}
	return d, nil
}

// Create makes the cluster folder and starts every replica. It returns once
// every replica process listens; waiting for the store to settle is the
// caller's job. On failure nothing is left running and the folder is
// removed; the error carries the tail of the failing replica's log.
func Create(ctx context.Context, spec driver.Spec, opts Options) (*Driver, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if err := driver.ValidateName(spec.Cluster); err != nil {
		return nil, err
	}
	if spec.Replicas < 1 || spec.Replicas > 9 {
		return nil, fmt.Errorf("invalid replica count %d: use 1 to 9 (3 or 5 tolerate a failed replica)", spec.Replicas)
	}
	if _, err := driver.CheckRelease(spec.Version); err != nil {
		return nil, err
	}
	dir := driver.ClusterDir(opts.Home, spec.Cluster)
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%w: %q is at %s (remove it with: ladder cluster destroy --cluster %s)",
			driver.ErrClusterExists, spec.Cluster, dir, spec.Cluster)
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o755); err != nil {
		return nil, fmt.Errorf("create cluster folder: %w", err)
	}
	d := &Driver{name: spec.Cluster, dir: dir, opts: opts}
	ok := false
	defer func() {
		if !ok {
			_ = d.Destroy(context.WithoutCancel(ctx))
		}
	}()
	pw := spec.AdminPassword
	if pw == "" {
		pw = driver.GeneratePassword()
	}
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write admin password: %w", err)
	}
	if err := driver.WriteRecord(opts.Home, driver.Record{Name: spec.Cluster, Driver: Name,
		Created: time.Now().UTC(), AdminPasswordFile: pwFile}); err != nil {
		return nil, err
	}
	// Free ports are chosen, released, then bound by the replicas; another
	// program may take one in between. Only a new cluster can move to other
	// ports, so Create retries that case from scratch.
	for attempt := 1; ; attempt++ {
		err := d.startNew(ctx, spec, pwFile)
		if err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) || attempt == 3 {
			return nil, err
		}
		d.opts.Logger.Warn("a chosen port was taken before the replica bound it; starting over with other ports", "attempt", attempt, "err", err)
		if err := d.stopAll(ctx); err != nil {
			return nil, err
		}
		if err := os.RemoveAll(filepath.Join(dir, "replicas")); err != nil {
			return nil, fmt.Errorf("create cluster: %w", err)
		}
	}
	ok = true
	return d, nil
}

// startNew chooses ports for every replica of a new cluster, starts them
// all, and waits until each listens.
func (d *Driver) startNew(ctx context.Context, spec driver.Spec, pwFile string) error {
	ports, err := d.opts.pickPorts(3 * spec.Replicas)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.st = state{BlobDir: filepath.Join(d.dir, "blobs"), AdminPasswordFile: pwFile}
	for i := range spec.Replicas {
		d.st.Replicas = append(d.st.Replicas, replicaState{
			ID: fmt.Sprintf("replica-%d", i+1), Version: spec.Version,
			HTTPPort: ports[3*i], PeerPort: ports[3*i+1], ClientPort: ports[3*i+2],
		})
	}
	for i := range d.st.Replicas {
		if err := d.start(&d.st.Replicas[i]); err != nil {
			d.mu.Unlock()
			return err
		}
	}
	err = d.save()
	d.mu.Unlock()
	if err != nil {
		return err
	}
	for i := range d.st.Replicas {
		if err := d.waitListening(ctx, &d.st.Replicas[i]); err != nil {
			return err
		}
	}
	return nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return Name }

// Cluster implements driver.Driver.
func (d *Driver) Cluster() string { return d.name }

// Dir is the cluster's folder.
func (d *Driver) Dir() string { return d.dir }

// AdminPasswordFile is the file holding the admin password.
func (d *Driver) AdminPasswordFile() string { return d.st.AdminPasswordFile }

// Replicas implements driver.Driver.
func (d *Driver) Replicas(ctx context.Context) ([]driver.Replica, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]driver.Replica, 0, len(d.st.Replicas))
	for _, r := range d.st.Replicas {
		out = append(out, driver.Replica{
			ID: r.ID, Version: r.Version, URL: "http://" + addr(r.HTTPPort),
			PID: r.PID, Running: d.alive(r),
		})
	}
	return out, nil
}

// Replace implements driver.Driver.
func (d *Driver) Replace(ctx context.Context, id, version string) error {
	if _, err := driver.CheckRelease(version); err != nil {
		return err
	}
	return d.cycle(ctx, id, version)
}

// Restart implements driver.Driver.
func (d *Driver) Restart(ctx context.Context, id string) error { return d.cycle(ctx, id, "") }

// cycle stops replica id and starts it again, as version if given.
func (d *Driver) cycle(ctx context.Context, id, version string) error {
	d.mu.Lock()
	r, err := d.find(id)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	d.mu.Unlock()
	if err := d.stop(ctx, r); err != nil {
		return err
	}
	d.mu.Lock()
	if version != "" {
		r.Version = version
	}
	err = d.start(r)
	if err == nil {
		err = d.save()
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.waitListening(ctx, r)
}

// RunJob implements driver.Driver: the ladder binary runs the job's
// arguments with --release and --endpoints appended.
func (d *Driver) RunJob(ctx context.Context, version string, job driver.Job) ([]byte, error) {
	if _, err := driver.CheckRelease(version); err != nil {
		return nil, err
	}
	d.mu.Lock()
	var eps []string
	for _, r := range d.st.Replicas {
		eps = append(eps, "http://"+addr(r.ClientPort))
	}
	d.mu.Unlock()
	args := append(slices.Clone(job.Args), "--release", version, "--endpoints", strings.Join(eps, ","))
	cmd := exec.CommandContext(ctx, d.opts.Binary, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = d.opts.StopGrace
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run job %s of release %s: %w: %s", job.Name, version, err, driver.Tail(out, 10))
	}
	return out, nil
}

// Destroy implements driver.Driver.
func (d *Driver) Destroy(ctx context.Context) error {
	if err := d.stopAll(ctx); err != nil {
		return err
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("remove cluster folder: %w", err)
	}
	return nil
}

// stopAll stops every replica at once.
func (d *Driver) stopAll(ctx context.Context) error {
	d.mu.Lock()
	reps := slices.Clone(d.st.Replicas)
	d.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(reps))
	for i := range reps {
		wg.Go(func() { errs[i] = d.stop(ctx, &reps[i]) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// CheckArtifact implements driver.ArtifactChecker: the binary must exist
// and the release must be one it can run.
func (d *Driver) CheckArtifact(ctx context.Context, version string) error {
	if _, err := os.Stat(d.opts.Binary); err != nil {
		return fmt.Errorf("%w: ladder binary: %v", driver.ErrNoArtifact, err)
	}
	_, err := driver.CheckRelease(version)
	return err
}

// Freeze implements driver.Freezer with SIGSTOP. It returns once the
// process is stopped: kill(2) returns before a process running on another
// CPU has taken the signal.
func (d *Driver) Freeze(ctx context.Context, id string) error {
	return d.signal(ctx, id, syscall.SIGSTOP, func(state byte) bool { return state == 'T' })
}

// Thaw implements driver.Freezer with SIGCONT. It returns once the process
// runs again.
func (d *Driver) Thaw(ctx context.Context, id string) error {
	return d.signal(ctx, id, syscall.SIGCONT, func(state byte) bool { return state != 'T' })
}

// LogTail returns the last n lines of replica id's log.
func (d *Driver) LogTail(id string, n int) string {
	data, err := os.ReadFile(d.logPath(id))
	if err != nil {
		return ""
	}
	return driver.Tail(data, n)
}

// LogPath returns the path of replica id's log.
func (d *Driver) LogPath(id string) string { return d.logPath(id) }

// signal sends sig to replica id and waits, up to 5s, until its process
// state satisfies reached.
func (d *Driver) signal(ctx context.Context, id string, sig syscall.Signal, reached func(state byte) bool) error {
	d.mu.Lock()
	r, err := d.find(id)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if !d.alive(*r) {
		return fmt.Errorf("signal %s: not running", id)
	}
	if err := syscall.Kill(r.PID, sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", id, r.PID, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !reached(procState(r.PID)) {
		if time.Now().After(deadline) {
			return fmt.Errorf("signal %s (pid %d): %s not taken after 5s (state %q)", id, r.PID, sig, procState(r.PID))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// procState returns the state letter of process pid from /proc (R, S, T,
// Z, ...), or 0 if it cannot be read.
func procState(pid int) byte {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2]
	}
	return 0
}

func (d *Driver) find(id string) (*replicaState, error) {
	for i := range d.st.Replicas {
		if d.st.Replicas[i].ID == id {
			return &d.st.Replicas[i], nil
		}
	}
	var ids []string
	for _, r := range d.st.Replicas {
		ids = append(ids, r.ID)
	}
	return nil, fmt.Errorf("%w %q in cluster %s (replicas: %s)", driver.ErrNoReplica, id, d.name, strings.Join(ids, ", "))
}

func (d *Driver) statePath() string           { return filepath.Join(d.dir, "local.json") }
func (d *Driver) replicaDir(id string) string { return filepath.Join(d.dir, "replicas", id) }
func (d *Driver) logPath(id string) string    { return filepath.Join(d.replicaDir(id), "replica.log") }

func (d *Driver) save() error { return driver.WriteFileAtomic(d.statePath(), d.st) }

func (d *Driver) initialCluster() string {
	var parts []string
	for _, r := range d.st.Replicas {
		parts = append(parts, r.ID+"=http://"+addr(r.PeerPort))
	}
	return strings.Join(parts, ",")
}

// start launches replica r in a session of its own; d.mu is held.
func (d *Driver) start(r *replicaState) error {
	rdir := d.replicaDir(r.ID)
	if err := os.MkdirAll(filepath.Join(rdir, "data"), 0o755); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	logf, err := os.OpenFile(d.logPath(r.ID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "--- ladder: starting %s as release %s at %s\n", r.ID, r.Version, time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(d.opts.Binary, "registry", "serve",
		"--id", r.ID,
		"--cluster", d.name,
		"--release", r.Version,
		"--data", filepath.Join(rdir, "data"),
		"--blobs", d.st.BlobDir,
		"--listen", addr(r.HTTPPort),
		"--peer-listen", addr(r.PeerPort),
		"--client-listen", addr(r.ClientPort),
		"--initial-cluster", d.initialCluster(),
		"--admin-password-file", d.st.AdminPasswordFile,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	// Reap the child if it exits while this process lives, keeping its
	// exit status; a replica that outlives us is adopted by init.
	pid := cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		d.exits.Store(pid, cmd.ProcessState.ExitCode())
	}()
	r.PID = pid
	if err := os.WriteFile(filepath.Join(rdir, "pid"), []byte(strconv.Itoa(r.PID)+"\n"), 0o644); err != nil {
		return fmt.Errorf("start %s: write pid file: %w", r.ID, err)
	}
	d.opts.Logger.Info("replica started", "replica", r.ID, "release", r.Version, "pid", r.PID)
	return nil
}

// waitListening waits until replica r accepts connections on its HTTP
// port, and fails at once, with its log, if the process ends first.
func (d *Driver) waitListening(ctx context.Context, r *replicaState) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if !d.alive(*r) {
			err := errors.New("the replica exited")
			if d.exitedWith(r.PID, driver.ExitAddrInUse) {
				err = errAddrInUse
			}
			return fmt.Errorf("start %s: %w; last lines of %s:\n%s", r.ID, err, d.logPath(r.ID), d.LogTail(r.ID, 15))
		}
		if c, err := net.DialTimeout("tcp", addr(r.HTTPPort), time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start %s: not listening on %s after %s; last lines of %s:\n%s",
				r.ID, addr(r.HTTPPort), d.opts.StartTimeout, d.logPath(r.ID), d.LogTail(r.ID, 15))
		case <-tick.C:
		}
	}
}

// exitedWith reports whether process pid, started and reaped by this
// process, exited with status code. It waits briefly for the reaper, since
// /proc can show the process gone before Wait has returned.
func (d *Driver) exitedWith(pid, code int) bool {
	for range 20 {
		if v, ok := d.exits.Load(pid); ok {
			return v.(int) == code
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// stop ends replica r: SIGCONT (it may be frozen), SIGTERM, and SIGKILL
// after the grace period.
func (d *Driver) stop(ctx context.Context, r *replicaState) error {
	if !d.alive(*r) {
		return nil
	}
	_ = syscall.Kill(r.PID, syscall.SIGCONT)
	_ = syscall.Kill(r.PID, syscall.SIGTERM)
	if d.waitGone(ctx, *r, d.opts.StopGrace) {
		return nil
	}
	d.opts.Logger.Warn("replica did not stop in time; killing it", "replica", r.ID, "pid", r.PID, "grace", d.opts.StopGrace)
	_ = syscall.Kill(r.PID, syscall.SIGKILL)
	if d.waitGone(ctx, *r, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("stop %s: pid %d is still running after SIGKILL", r.ID, r.PID)
}

func (d *Driver) waitGone(ctx context.Context, r replicaState, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if !d.alive(r) {
			return true
		}
		select {
		case <-ctx.Done():
			return !d.alive(r)
		case <-time.After(25 * time.Millisecond):
		}
	}
	return !d.alive(r)
}

// alive reports whether r's pid is a live (not zombie) process that is
// still this replica of this cluster.
func (d *Driver) alive(r replicaState) bool {
	if r.PID <= 0 {
		return false
	}
	if st := procState(r.PID); st == 0 || st == 'Z' || st == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", r.PID))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte("\x00--id\x00"+r.ID+"\x00")) &&
		bytes.Contains(cmdline, []byte("\x00--data\x00"+filepath.Join(d.replicaDir(r.ID), "data")+"\x00"))
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts reserves n distinct free loopback ports. The listeners are
// held until all are chosen so that no port is picked twice.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free loopback port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
