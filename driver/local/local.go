package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/poll"
)

// Name is the driver's name in cluster records.
const Name = "local"

// Options configure the driver.
type Options struct {
	// Home is ladder's state folder (home.Dir()).
	Home string
	// Dir is the cluster's folder; default: its folder under Home. A
	// cluster connected from another ladder home lives in that home's.
	Dir string
	// StopGrace is how long a replica gets to stop after SIGTERM before
	// SIGKILL; default 10s.
	StopGrace time.Duration
	// StartTimeout bounds the wait, when a cluster is created, for its
	// replicas to answer; default 60s.
	StartTimeout time.Duration
	Logger       *slog.Logger

	// pickPorts chooses free ports; tests replace it.
	pickPorts func(n int) ([]int, error)
}

// Driver is the local driver, bound to one cluster.
type Driver struct {
	name string
	dir  string
	svc  driver.Service
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
	// SharedDir is the folder every replica shares.
	SharedDir string `json:"shared_dir"`
	// Secrets maps the cluster's secrets to their files.
	Secrets  map[string]string `json:"secrets"`
	Replicas []replicaState    `json:"replicas"`
}

type replicaState struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	// Ports maps each of the service's ports to its loopback port number.
	Ports map[string]int `json:"ports"`
	PID   int            `json:"pid"`
	// Started is the process's start time, in clock ticks since boot
	// (/proc/PID/stat): with the pid it names one process, which a
	// recycled pid cannot imitate, and it is set at fork, so it reads the
	// same before and after the child's exec.
	Started uint64 `json:"started"`
	// Token is written here before the process starts and given to it in
	// its environment (see replicaEnv), so that a process whose pid was
	// never recorded (a crash or a failed write right after the start) or
	// that someone restarted by hand with the same environment is still
	// found, and never left running untracked.
	Token string `json:"token"`
	// DataDir is the replica's data folder when it is not the one the
	// driver chooses: a member of an adopted cluster.
	DataDir string `json:"data_dir,omitempty"`
	// Own is the command line a member of an adopted cluster was running
	// with, which the driver starts it with again (see Member.Own).
	Own *OwnCommand `json:"own,omitempty"`
}

var _ driver.Driver = (*Driver)(nil)
var _ driver.Freezer = (*Driver)(nil)
var _ driver.ArtifactChecker = (*Driver)(nil)
var _ driver.LogTailer = (*Driver)(nil)

func (o *Options) defaults() {
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
}

// Open binds the driver to an existing cluster of service svc.
func Open(name string, svc driver.Service, opts Options) (*Driver, error) {
	opts.defaults()
	dir := opts.Dir
	if dir == "" {
		dir = home.ClusterDir(opts.Home, name)
	}
	d := &Driver{name: name, dir: dir, svc: svc, opts: opts}
	data, err := os.ReadFile(d.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q", home.ErrNoCluster, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read cluster state: %w", err)
	}
	if err := json.Unmarshal(data, &d.st); err != nil {
		return nil, fmt.Errorf("read cluster state %s: %w", d.statePath(), err)
	}
	for _, r := range d.st.Replicas {
		if len(r.Ports) == 0 {
			return nil, fmt.Errorf("cluster %s was created by an older ladder and cannot be opened: recreate it (ladder cluster destroy --cluster %s, then ladder cluster create)", name, name)
		}
	}
	return d, nil
}

// Create makes the cluster folder and starts every replica. It returns once
// every replica answers HTTP; waiting for the store to settle is the
// caller's job. On failure nothing is left running and the folder is
// removed; the error carries the tail of the failing replica's log.
func Create(ctx context.Context, spec driver.Spec, opts Options) (*Driver, error) {
	opts.defaults()
	spec, err := spec.Validate()
	if err != nil {
		return nil, err
	}
	rec, err := home.Create(opts.Home, home.Record{Name: spec.Cluster, Driver: Name, Service: spec.Service.Name(),
		Created: time.Now().UTC()}, spec.Secrets)
	if err != nil {
		return nil, err
	}
	d := &Driver{name: spec.Cluster, dir: home.ClusterDir(opts.Home, spec.Cluster), svc: spec.Service, opts: opts}
	ok := false
	defer func() {
		if !ok {
			_ = d.Destroy(context.WithoutCancel(ctx))
		}
	}()
	shared := filepath.Join(d.dir, "shared")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		return nil, fmt.Errorf("create cluster folder: %w", err)
	}
	// Free ports are chosen, released, then bound by the replicas; another
	// program may take one in between. Only a new cluster can move to other
	// ports, so Create retries that case from scratch.
	for attempt := 1; ; attempt++ {
		err := d.startNew(ctx, spec, shared, rec.Secrets)
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
		if err := os.RemoveAll(filepath.Join(d.dir, "replicas")); err != nil {
			return nil, fmt.Errorf("create cluster: %w", err)
		}
	}
	ok = true
	return d, nil
}

// startNew chooses ports for every replica of a new cluster, starts them
// all, and waits until each answers.
func (d *Driver) startNew(ctx context.Context, spec driver.Spec, shared string, secrets map[string]string) error {
	names := d.svc.Ports()
	ports, err := d.opts.pickPorts(len(names) * spec.Replicas)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.st = state{SharedDir: shared, Secrets: secrets}
	for i := range spec.Replicas {
		r := replicaState{ID: fmt.Sprintf("replica-%d", i+1), Version: spec.Version, Ports: map[string]int{}}
		for j, n := range names {
			r.Ports[n] = ports[len(names)*i+j]
		}
		d.st.Replicas = append(d.st.Replicas, r)
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
		if err := d.waitAnswering(ctx, &d.st.Replicas[i]); err != nil {
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

// Replicas implements driver.Driver.
func (d *Driver) Replicas(ctx context.Context) ([]driver.Replica, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]driver.Replica, 0, len(d.st.Replicas))
	for i := range d.st.Replicas {
		r := &d.st.Replicas[i]
		running := d.locate(r)
		out = append(out, driver.Replica{
			ID: r.ID, Version: r.Version, URL: d.scheme(*r) + "://" + d.apiAddr(*r),
			PID: r.PID, Running: running, Paused: running && procState(r.PID) == 'T',
		})
	}
	return out, nil
}

// scheme is the URL scheme of r's API: an adopted member's own, else the
// one the service serves in this cluster.
func (d *Driver) scheme(r replicaState) string {
	if r.Own != nil && r.Own.Scheme != "" {
		return r.Own.Scheme
	}
	return driver.APIScheme(d.svc, d.st.Secrets)
}

// Replace implements driver.Driver.
func (d *Driver) Replace(ctx context.Context, id, version string) error {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return err
	}
	return d.cycle(ctx, id, a.Version)
}

// Restart implements driver.Driver.
func (d *Driver) Restart(ctx context.Context, id string) error { return d.cycle(ctx, id, "") }

// cycle stops replica id and starts it again, as version if given. It
// returns once the new process runs: waiting for it to serve is the
// caller's job.
func (d *Driver) cycle(ctx context.Context, id, version string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, err := d.find(id)
	if err != nil {
		return err
	}
	if err := d.stop(ctx, r); err != nil {
		return err
	}
	if err := d.stopStrays(ctx, r.ID, nil); err != nil {
		return err
	}
	if version != "" {
		r.Version = version
	}
	return d.start(r)
}

// RunJob implements driver.Driver: the release's program runs the
// service's job command line.
func (d *Driver) RunJob(ctx context.Context, version string, job driver.Job) ([]byte, error) {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	members := d.members()
	job.Secrets = d.st.Secrets
	d.mu.Unlock()
	cmd := exec.CommandContext(ctx, a.Binary, d.svc.JobCommand(a, job, members)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = d.opts.StopGrace
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run job %s of release %s: %w: %s", job.Name, a.Version, err, home.Tail(out, 10))
	}
	return out, nil
}

// Destroy implements driver.Driver.
func (d *Driver) Destroy(ctx context.Context) error {
	if err := d.stopAll(ctx); err != nil {
		return err
	}
	return d.remove(ctx)
}

// Remove destroys what is left of cluster name when it cannot be opened (a
// destroy or a create cut short): every process started for it, found by
// its environment, then its folder. Nothing left is not an error.
func Remove(ctx context.Context, name string, opts Options) error {
	opts.defaults()
	d := &Driver{name: name, dir: home.ClusterDir(opts.Home, name), opts: opts}
	return d.remove(ctx)
}

// remove stops any process of the cluster that the state does not know,
// then removes the folder, its record last, so that a removal cut short
// still has a record to be found by and run again.
func (d *Driver) remove(ctx context.Context) error {
	if err := d.stopStrays(ctx, "", nil); err != nil {
		return err
	}
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cluster folder: %w", err)
	}
	for _, e := range entries {
		if e.Name() == home.RecordFile {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.dir, e.Name())); err != nil {
			return fmt.Errorf("remove cluster folder: %w", err)
		}
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

// CheckArtifact implements driver.ArtifactChecker: the service must have
// the release, and its program must be on this machine.
func (d *Driver) CheckArtifact(ctx context.Context, version string) error {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return err
	}
	if _, err := os.Stat(a.Binary); err != nil {
		return fmt.Errorf("%w: program of release %s: %v", driver.ErrNoArtifact, a.Version, err)
	}
	return nil
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

// LogTail implements driver.LogTailer: the last n lines of replica id's log.
func (d *Driver) LogTail(_ context.Context, id string, n int) string {
	data, err := os.ReadFile(d.logPath(id))
	if err != nil {
		return ""
	}
	return home.Tail(data, n)
}

// LogPath returns the path of replica id's log.
func (d *Driver) LogPath(id string) string { return d.logPath(id) }

// signal sends sig to replica id and waits, up to 5s, until its process
// state satisfies reached.
func (d *Driver) signal(ctx context.Context, id string, sig syscall.Signal, reached func(state byte) bool) error {
	d.mu.Lock()
	r, err := d.find(id)
	running := err == nil && d.locate(r)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if !running {
		return fmt.Errorf("signal %s: not running", id)
	}
	if err := syscall.Kill(r.PID, sig); err != nil {
		return fmt.Errorf("signal %s (pid %d): %w", id, r.PID, err)
	}
	err = poll.For(ctx, 5*time.Second, 5*time.Millisecond, func() (bool, error) { return reached(procState(r.PID)), nil })
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("signal %s (pid %d): %s not taken after 5s (state %q)", id, r.PID, sig, procState(r.PID))
	}
	return err
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

func (d *Driver) save() error { return home.WriteFileAtomic(d.statePath(), d.st) }

// apiAddr is the address of r's first port, its API.
func (d *Driver) apiAddr(r replicaState) string { return addr(r.Ports[d.svc.Ports()[0]]) }

// members lists every replica's addresses; d.mu is held.
func (d *Driver) members() []driver.Member {
	out := make([]driver.Member, len(d.st.Replicas))
	for i, r := range d.st.Replicas {
		out[i] = driver.Member{ID: r.ID, Addr: map[string]string{}}
		for n, p := range r.Ports {
			out[i].Addr[n] = addr(p)
		}
	}
	return out
}

// placement is where replica r runs; d.mu is held.
func (d *Driver) placement(r *replicaState) driver.Placement {
	p := driver.Placement{Cluster: d.name, ID: r.ID, Listen: map[string]string{}, Members: d.members(),
		DataDir: filepath.Join(d.replicaDir(r.ID), "data"), SharedDir: d.st.SharedDir, Secrets: d.st.Secrets}
	if r.DataDir != "" {
		p.DataDir = r.DataDir
	}
	for n, port := range r.Ports {
		p.Listen[n] = addr(port)
	}
	return p
}

// start launches replica r in a session of its own, and records it: first
// its token (the intent: whatever happens next, the process can be found),
// then its pid. d.mu is held.
func (d *Driver) start(r *replicaState) error {
	a, err := d.svc.Artifact(r.Version)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	p := d.placement(r)
	if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	logf, err := os.OpenFile(d.logPath(r.ID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	defer logf.Close()
	r.PID, r.Started, r.Token = 0, 0, newToken()
	if err := d.save(); err != nil {
		return fmt.Errorf("start %s: record it before it starts: %w", r.ID, err)
	}
	fmt.Fprintf(logf, "--- ladder: starting %s as release %s at %s\n", r.ID, r.Version, time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(a.Binary, d.svc.Command(a, p)...)
	cmd.Env = append(os.Environ(), d.replicaEnv(r))
	if r.Own != nil {
		cmd = exec.Command(a.Binary, r.Own.Args...)
		cmd.Dir = r.Own.Dir
		cmd.Env = append(append(os.Environ(), r.Own.Env...), d.replicaEnv(r))
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	// Reap the child if it exits while this process lives, keeping its
	// exit status; a replica that outlives us is adopted by init.
	pid := cmd.Process.Pid
	started, _ := procStart(pid)
	go func() {
		_ = cmd.Wait()
		d.exits.Store(pid, cmd.ProcessState.ExitCode())
	}()
	r.PID, r.Started = pid, started
	d.opts.Logger.Info("replica started", "replica", r.ID, "release", r.Version, "pid", r.PID)
	if err := os.WriteFile(filepath.Join(d.replicaDir(r.ID), "pid"), []byte(strconv.Itoa(r.PID)+"\n"), 0o644); err != nil {
		return fmt.Errorf("start %s: write pid file: %w", r.ID, err)
	}
	if err := d.save(); err != nil {
		return fmt.Errorf("start %s: record its pid (it runs, and is found again by its token): %w", r.ID, err)
	}
	return nil
}

// waitAnswering waits until replica r answers HTTP on its health path (any
// status), and fails at once, with its log, if the process ends first. A
// connection alone proves nothing: a process accepts connections on a
// socket it has bound before it serves, and may still fail to bind another.
func (d *Driver) waitAnswering(ctx context.Context, r *replicaState) error {
	hc := &http.Client{Timeout: time.Second}
	url := "http://" + d.apiAddr(*r) + d.svc.HealthPath()
	err := poll.For(ctx, d.opts.StartTimeout, 50*time.Millisecond, func() (bool, error) {
		if !alive(*r) {
			err := errors.New("the replica exited")
			tail := d.LogTail(ctx, r.ID, 15)
			if code, ok := d.exitCode(r.PID); ok && d.svc.PortConflict(code, tail) {
				err = errAddrInUse
			}
			return false, fmt.Errorf("start %s: %w; last lines of %s:\n%s", r.ID, err, d.logPath(r.ID), tail)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return true, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("start %s: no HTTP answer at %s after %s; last lines of %s:\n%s",
			r.ID, d.apiAddr(*r), d.opts.StartTimeout, d.logPath(r.ID), d.LogTail(ctx, r.ID, 15))
	}
	return err
}

// exitCode returns the exit status of process pid, started and reaped by
// this process. It waits briefly for the reaper, since /proc can show the
// process gone before Wait has returned.
func (d *Driver) exitCode(pid int) (int, bool) {
	var code int
	found := false
	_ = poll.For(context.Background(), 100*time.Millisecond, 5*time.Millisecond, func() (bool, error) {
		if v, ok := d.exits.Load(pid); ok {
			code, found = v.(int), true
		}
		return found, nil
	})
	return code, found
}

// stop ends replica r: SIGCONT (it may be frozen), SIGTERM, and SIGKILL
// after the grace period.
func (d *Driver) stop(ctx context.Context, r *replicaState) error {
	if !d.locate(r) {
		return nil
	}
	_ = syscall.Kill(r.PID, syscall.SIGCONT)
	_ = syscall.Kill(r.PID, syscall.SIGTERM)
	if waitGone(ctx, *r, d.opts.StopGrace) {
		return nil
	}
	d.opts.Logger.Warn("replica did not stop in time; killing it", "replica", r.ID, "pid", r.PID, "grace", d.opts.StopGrace)
	_ = syscall.Kill(r.PID, syscall.SIGKILL)
	if waitGone(ctx, *r, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("stop %s: pid %d is still running after SIGKILL", r.ID, r.PID)
}

func waitGone(ctx context.Context, r replicaState, limit time.Duration) bool {
	_ = poll.For(ctx, limit, 25*time.Millisecond, func() (bool, error) { return !alive(r), nil })
	return !alive(r)
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

// DataDir returns the data folder of replica id.
func (d *Driver) DataDir(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, err := d.find(id); err == nil && r.DataDir != "" {
		return r.DataDir
	}
	return filepath.Join(d.replicaDir(id), "data")
}
