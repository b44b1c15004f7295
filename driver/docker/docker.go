package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
)

// Name is the driver's name in cluster records.
const Name = "docker"

// Labels on every object the driver creates.
const (
	LabelCluster  = "ladder.cluster"
	LabelReplica  = "ladder.replica"
	LabelRelease  = labelRelease
	LabelHTTPPort = "ladder.http-port"
	LabelJob      = "ladder.job"
)

// Ports inside a replica container.
const (
	httpPort   = 8080
	peerPort   = 2380
	clientPort = 2379
)

// Paths inside a replica container.
const (
	dataPath     = "/data"
	blobsPath    = "/blobs"
	passwordPath = "/run/ladder/admin-password"
)

// replacedSuffix names a replaced replica's old container while its
// successor starts; it is removed once the successor runs.
const replacedSuffix = "-replaced"

// Options configure the driver.
type Options struct {
	// Home is ladder's state folder (driver.Home()).
	Home string
	// Client talks to the engine; default: one configured from the
	// environment (DOCKER_HOST, ...), with API version negotiation.
	Client *client.Client
	// StopGrace is how long a replica gets to stop after SIGTERM before
	// SIGKILL; default 10s.
	StopGrace time.Duration
	// StartTimeout bounds the wait for a started replica to answer HTTP;
	// default 60s.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

// Driver is the docker driver, bound to one cluster.
type Driver struct {
	name string
	dir  string
	cli  *client.Client
	own  bool // cli was made here and is closed by Close
	opts Options
	// mu serialises changes to one cluster made through this Driver.
	mu sync.Mutex
}

var _ driver.Driver = (*Driver)(nil)
var _ driver.Freezer = (*Driver)(nil)
var _ driver.ArtifactChecker = (*Driver)(nil)

// NewClient returns an engine client configured from the environment
// (DOCKER_HOST, DOCKER_API_VERSION, ...) that negotiates the API version.
func NewClient() (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("connect to docker: %w", err)
	}
	return cli, nil
}

// Ping checks that an engine answers at cli's host, negotiating the API
// version on the way.
func Ping(ctx context.Context, cli *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("no docker engine answered at %s: %w", cli.DaemonHost(), err)
	}
	return nil
}

func (o *Options) defaults() (own bool, err error) {
	if o.Client == nil {
		if o.Client, err = NewClient(); err != nil {
			return false, err
		}
		own = true
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
	return own, nil
}

// Open binds the driver to an existing cluster.
func Open(name string, opts Options) (*Driver, error) {
	if err := driver.ValidateName(name); err != nil {
		return nil, err
	}
	if _, err := driver.ReadRecord(opts.Home, name); err != nil {
		return nil, err
	}
	own, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	return &Driver{name: name, dir: driver.ClusterDir(opts.Home, name), cli: opts.Client, own: own, opts: opts}, nil
}

// Create makes the cluster's network, volumes and containers and starts
// every replica. It returns once every replica answers HTTP; waiting for the
// store to settle is the caller's job. On failure everything created is
// removed; the error carries the tail of the failing replica's log.
func Create(ctx context.Context, spec driver.Spec, opts Options) (*Driver, error) {
	if err := driver.ValidateName(spec.Cluster); err != nil {
		return nil, err
	}
	if spec.Replicas < 1 || spec.Replicas > 9 {
		return nil, fmt.Errorf("invalid replica count %d: use 1 to 9 (3 or 5 tolerate a failed replica)", spec.Replicas)
	}
	version, err := driver.CheckRelease(spec.Version)
	if err != nil {
		return nil, err
	}
	own, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	dir := driver.ClusterDir(opts.Home, spec.Cluster)
	d := &Driver{name: spec.Cluster, dir: dir, cli: opts.Client, own: own, opts: opts}
	if err := Ping(ctx, d.cli); err != nil {
		return nil, err
	}
	if err := checkImage(ctx, d.cli, version); err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%w: %q is at %s (remove it with: ladder cluster destroy --cluster %s)",
			driver.ErrClusterExists, spec.Cluster, dir, spec.Cluster)
	}
	if left, err := d.leftovers(ctx); err != nil {
		return nil, err
	} else if left != "" {
		return nil, fmt.Errorf("%w: the engine still holds %s of cluster %q (remove with: docker rm -f $(docker ps -aq --filter label=%s=%s); docker volume prune --filter label=%s=%s; docker network rm %s)",
			driver.ErrClusterExists, left, spec.Cluster, LabelCluster, spec.Cluster, LabelCluster, spec.Cluster, d.network())
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create cluster folder: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			if err := d.Destroy(context.WithoutCancel(ctx)); err != nil {
				opts.Logger.Warn("clean up after a failed create", "cluster", spec.Cluster, "err", err)
			}
		}
	}()
	pw := spec.AdminPassword
	if pw == "" {
		pw = driver.GeneratePassword()
	}
	if err := os.WriteFile(d.AdminPasswordFile(), []byte(pw+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write admin password: %w", err)
	}
	if err := driver.WriteRecord(opts.Home, driver.Record{Name: spec.Cluster, Driver: Name,
		Created: time.Now().UTC(), AdminPasswordFile: d.AdminPasswordFile()}); err != nil {
		return nil, err
	}
	if _, err := d.cli.NetworkCreate(ctx, d.network(), client.NetworkCreateOptions{
		Driver: "bridge", Labels: d.labels(nil)}); err != nil {
		return nil, fmt.Errorf("create network %s: %w", d.network(), err)
	}
	if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: d.blobVolume(), Labels: d.labels(nil)}); err != nil {
		return nil, fmt.Errorf("create volume %s: %w", d.blobVolume(), err)
	}
	ids := make([]string, spec.Replicas)
	for i := range ids {
		ids[i] = fmt.Sprintf("replica-%d", i+1)
	}
	for _, id := range ids {
		if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: d.dataVolume(id),
			Labels: d.labels(map[string]string{LabelReplica: id})}); err != nil {
			return nil, fmt.Errorf("create volume %s: %w", d.dataVolume(id), err)
		}
	}
	// Start every member before waiting on any: a member of a new store
	// waits for a quorum of its peers.
	for _, id := range ids {
		if err := d.startNew(ctx, replica{ID: id, Version: version}, ids); err != nil {
			return nil, err
		}
	}
	for _, id := range ids {
		if err := d.waitAnswering(ctx, id); err != nil {
			return nil, err
		}
	}
	ok = true
	return d, nil
}

// Name implements driver.Driver.
func (d *Driver) Name() string { return Name }

// Cluster implements driver.Driver.
func (d *Driver) Cluster() string { return d.name }

// Dir is the cluster's folder on this machine.
func (d *Driver) Dir() string { return d.dir }

// AdminPasswordFile is the file holding the admin password.
func (d *Driver) AdminPasswordFile() string { return filepath.Join(d.dir, "admin-password") }

// Client is the engine client the driver uses.
func (d *Driver) Client() *client.Client { return d.cli }

// Network is the name of the cluster's private network.
func (d *Driver) Network() string { return d.network() }

// ContainerName is the name of replica id's container.
func (d *Driver) ContainerName(id string) string { return "ladder-" + d.name + "-" + id }

// Close releases the engine client if the driver made it.
func (d *Driver) Close() error {
	if d.own {
		return d.cli.Close()
	}
	return nil
}

// replica is what the driver knows of one replica, from its labels.
type replica struct {
	ID        string
	Version   string
	Port      int
	Container string // container id
	State     container.ContainerState
}

func (r replica) running() bool {
	return r.State == container.StateRunning || r.State == container.StatePaused || r.State == container.StateRestarting
}

// Replicas implements driver.Driver.
func (d *Driver) Replicas(ctx context.Context) ([]driver.Replica, error) {
	reps, err := d.replicas(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Replica, 0, len(reps))
	for _, r := range reps {
		out = append(out, driver.Replica{ID: r.ID, Version: r.Version, URL: httpURL(r.Port),
			Container: r.Container, Running: r.running()})
	}
	return out, nil
}

// replicas lists the cluster's replica containers by their labels, ordered
// by id. A replaced replica's old container, if a Replace was cut short, is
// not listed.
func (d *Driver) replicas(ctx context.Context) ([]replica, error) {
	res, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelCluster+"="+d.name).Add("label", LabelReplica)})
	if err != nil {
		return nil, fmt.Errorf("list containers of cluster %s: %w", d.name, err)
	}
	var out []replica
	for _, c := range res.Items {
		id := c.Labels[LabelReplica]
		if !slices.Contains(c.Names, "/"+d.ContainerName(id)) {
			continue
		}
		port, _ := strconv.Atoi(c.Labels[LabelHTTPPort])
		out = append(out, replica{ID: id, Version: c.Labels[LabelRelease], Port: port, Container: c.ID, State: c.State})
	}
	slices.SortFunc(out, func(a, b replica) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (d *Driver) find(ctx context.Context, id string) (replica, []replica, error) {
	reps, err := d.replicas(ctx)
	if err != nil {
		return replica{}, nil, err
	}
	var ids []string
	for _, r := range reps {
		if r.ID == id {
			return r, reps, nil
		}
		ids = append(ids, r.ID)
	}
	return replica{}, reps, fmt.Errorf("%w %q in cluster %s (replicas: %s)", driver.ErrNoReplica, id, d.name, strings.Join(ids, ", "))
}

// Replace implements driver.Driver.
//
// A replica's data volume can be used by only one store member at a time,
// so the new container cannot start before the old one has stopped: the
// replacement is stop, then start a new container of the new image with
// the same name, volume, port and identity. The old container is not
// removed at once but renamed aside (NAME-replaced), stopped, with its
// configuration intact: if the new container fails to start, it is
// removed and the old one is renamed back and started again, so a failed
// Replace leaves the replica as it was. Only once the new container runs
// is the old one removed. (Updating a container's image in place is not
// something the engine can do; a container is immutable but for its name.)
func (d *Driver) Replace(ctx context.Context, id, version string) error {
	v, err := driver.CheckRelease(version)
	if err != nil {
		return err
	}
	if err := checkImage(ctx, d.cli, v); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.recoverReplaced(ctx, id); err != nil {
		return err
	}
	old, reps, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	var ids []string
	for _, r := range reps {
		ids = append(ids, r.ID)
	}
	if err := d.stop(ctx, old); err != nil {
		return err
	}
	aside := d.ContainerName(id) + replacedSuffix
	if _, err := d.cli.ContainerRename(ctx, old.Container, client.ContainerRenameOptions{NewName: aside}); err != nil {
		return d.rollback(ctx, old, "", fmt.Errorf("replace %s: rename the old container: %w", id, err))
	}
	startErr := d.start(ctx, replica{ID: id, Version: v, Port: old.Port}, ids)
	if startErr == nil {
		startErr = d.waitAnswering(ctx, id)
	}
	if startErr != nil {
		return d.rollback(ctx, old, aside, startErr)
	}
	if _, err := d.cli.ContainerRemove(ctx, old.Container, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		d.opts.Logger.Warn("remove the replaced container", "replica", id, "container", aside, "err", err)
	}
	d.opts.Logger.Info("replica replaced", "replica", id, "from", old.Version, "to", v)
	return nil
}

// rollback puts the old container of a failed Replace back: the new one
// (if any) is removed, the old one renamed back (if it was renamed) and
// started. It returns cause, with what the rollback could not do.
func (d *Driver) rollback(ctx context.Context, old replica, renamedTo string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	name := d.ContainerName(old.ID)
	if renamedTo != "" {
		if err := d.removeNamed(ctx, name); err != nil {
			return fmt.Errorf("%w (rollback: %v)", cause, err)
		}
		if _, err := d.cli.ContainerRename(ctx, old.Container, client.ContainerRenameOptions{NewName: name}); err != nil {
			return fmt.Errorf("%w (rollback: rename %s back: %v)", cause, renamedTo, err)
		}
	}
	if _, err := d.cli.ContainerStart(ctx, old.Container, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("%w (rollback: start the old container of %s as release %s: %v)", cause, old.ID, old.Version, err)
	}
	d.opts.Logger.Warn("replace failed; old container restarted", "replica", old.ID, "release", old.Version, "err", cause)
	return fmt.Errorf("%w (the replica runs release %s again)", cause, old.Version)
}

// recoverReplaced finishes a Replace that was cut short: an old container
// set aside while no new one exists is renamed back; one set aside next
// to a new container is removed.
func (d *Driver) recoverReplaced(ctx context.Context, id string) error {
	aside := d.ContainerName(id) + replacedSuffix
	old, err := d.cli.ContainerInspect(ctx, aside, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", aside, err)
	}
	_, err = d.cli.ContainerInspect(ctx, d.ContainerName(id), client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		if _, err := d.cli.ContainerRename(ctx, old.Container.ID, client.ContainerRenameOptions{NewName: d.ContainerName(id)}); err != nil {
			return fmt.Errorf("rename %s back: %w", aside, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("inspect %s: %w", d.ContainerName(id), err)
	}
	return d.removeNamed(ctx, aside)
}

// Restart implements driver.Driver with a container restart: same
// container, image, volume and port.
func (d *Driver) Restart(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.recoverReplaced(ctx, id); err != nil {
		return err
	}
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if r.State == container.StatePaused {
		if _, err := d.cli.ContainerUnpause(ctx, r.Container, client.ContainerUnpauseOptions{}); err != nil {
			return fmt.Errorf("restart %s: unpause: %w", id, err)
		}
	}
	grace := d.graceSeconds()
	if _, err := d.cli.ContainerRestart(ctx, r.Container, client.ContainerRestartOptions{Timeout: &grace}); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	d.opts.Logger.Info("replica restarted", "replica", id, "release", r.Version)
	return d.waitAnswering(ctx, id)
}

// RunJob implements driver.Driver: a one-off container of version's image
// on the cluster's network runs `ladder` with the job's arguments and
// --release and --endpoints appended. The container is removed once its
// output is collected.
func (d *Driver) RunJob(ctx context.Context, version string, job driver.Job) ([]byte, error) {
	v, err := driver.CheckRelease(version)
	if err != nil {
		return nil, err
	}
	if err := checkImage(ctx, d.cli, v); err != nil {
		return nil, err
	}
	reps, err := d.replicas(ctx)
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, r := range reps {
		eps = append(eps, fmt.Sprintf("http://%s:%d", d.ContainerName(r.ID), clientPort))
	}
	args := append(slices.Clone(job.Args), "--release", v, "--endpoints", strings.Join(eps, ","))
	name := fmt.Sprintf("ladder-%s-job-%s-%s", d.name, jobSlug(job.Name), randomHex(3))
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:      ImageRef(v),
			Entrypoint: []string{"/ladder"},
			Cmd:        args,
			Labels:     d.labels(map[string]string{LabelJob: job.Name, LabelRelease: v}),
		},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(d.network())},
	})
	if err != nil {
		return nil, fmt.Errorf("run job %s of release %s: create container: %w", job.Name, v, err)
	}
	defer func() {
		if _, err := d.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			d.opts.Logger.Warn("remove job container", "job", job.Name, "container", name, "err", err)
		}
	}()
	wait := d.cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("run job %s of release %s: start: %w", job.Name, v, err)
	}
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
		if res.Error != nil && res.Error.Message != "" {
			return nil, fmt.Errorf("run job %s of release %s: %s", job.Name, v, res.Error.Message)
		}
	case err := <-wait.Error:
		if ctx.Err() != nil {
			grace := d.graceSeconds()
			_, _ = d.cli.ContainerStop(context.WithoutCancel(ctx), created.ID, client.ContainerStopOptions{Timeout: &grace})
			out, _ := d.logs(context.WithoutCancel(ctx), created.ID, "all")
			return out, fmt.Errorf("run job %s of release %s: %w", job.Name, v, ctx.Err())
		}
		return nil, fmt.Errorf("run job %s of release %s: wait: %w", job.Name, v, err)
	}
	out, err := d.logs(ctx, created.ID, "all")
	if err != nil {
		return nil, fmt.Errorf("run job %s of release %s: %w", job.Name, v, err)
	}
	if code != 0 {
		return out, fmt.Errorf("run job %s of release %s: exit status %d: %s", job.Name, v, code, driver.Tail(out, 10))
	}
	return out, nil
}

// Destroy implements driver.Driver: it removes every container, volume
// and the network labelled with the cluster, then the cluster folder.
// Objects already gone are not an error.
func (d *Driver) Destroy(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := make(client.Filters).Add("label", LabelCluster+"="+d.name)
	cs, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("list containers of cluster %s: %w", d.name, err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cs.Items))
	for i, c := range cs.Items {
		wg.Go(func() {
			// The data goes with the volumes: no need for a graceful stop.
			_, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !cerrdefs.IsNotFound(err) {
				errs[i] = fmt.Errorf("remove container %s: %w", strings.TrimPrefix(firstName(c.Names), "/"), err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	vs, err := d.cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list volumes of cluster %s: %w", d.name, err)
	}
	for _, v := range vs.Items {
		if _, err := d.cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove volume %s: %w", v.Name, err)
		}
	}
	ns, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list networks of cluster %s: %w", d.name, err)
	}
	for _, n := range ns.Items {
		if _, err := d.cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove network %s: %w", n.Name, err)
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("remove cluster folder: %w", err)
	}
	d.opts.Logger.Info("cluster destroyed", "cluster", d.name)
	return nil
}

// CheckArtifact implements driver.ArtifactChecker: the release must be one
// the ladder binary can run, and its image must be present.
func (d *Driver) CheckArtifact(ctx context.Context, version string) error {
	v, err := driver.CheckRelease(version)
	if err != nil {
		return err
	}
	return checkImage(ctx, d.cli, v)
}

// Freeze implements driver.Freezer with docker pause.
func (d *Driver) Freeze(ctx context.Context, id string) error {
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if _, err := d.cli.ContainerPause(ctx, r.Container, client.ContainerPauseOptions{}); err != nil {
		return fmt.Errorf("freeze %s: %w", id, err)
	}
	return nil
}

// Thaw implements driver.Freezer with docker unpause.
func (d *Driver) Thaw(ctx context.Context, id string) error {
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if _, err := d.cli.ContainerUnpause(ctx, r.Container, client.ContainerUnpauseOptions{}); err != nil {
		return fmt.Errorf("thaw %s: %w", id, err)
	}
	return nil
}

// Kill ends replica id's container at once with SIGKILL, leaving it
// stopped (a crash, for fault tests); Restart brings it back.
func (d *Driver) Kill(ctx context.Context, id string) error {
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if _, err := d.cli.ContainerKill(ctx, r.Container, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
		return fmt.Errorf("kill %s: %w", id, err)
	}
	return nil
}

// Disconnect takes replica id off the cluster's network, a partition: its
// peers cannot reach it, nor it them. Its HTTP port is published through
// that network, so from this machine it looks down too. The container
// keeps running; Reconnect undoes it (a Restart does not).
func (d *Driver) Disconnect(ctx context.Context, id string) error {
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if _, err := d.cli.NetworkDisconnect(ctx, d.network(), client.NetworkDisconnectOptions{Container: r.Container, Force: true}); err != nil {
		return fmt.Errorf("disconnect %s: %w", id, err)
	}
	return nil
}

// Reconnect puts replica id back on the cluster's network.
func (d *Driver) Reconnect(ctx context.Context, id string) error {
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if _, err := d.cli.NetworkConnect(ctx, d.network(), client.NetworkConnectOptions{Container: r.Container,
		EndpointConfig: &network.EndpointSettings{Aliases: []string{d.ContainerName(id)}}}); err != nil {
		return fmt.Errorf("reconnect %s: %w", id, err)
	}
	return nil
}

// LogTail returns the last n lines of replica id's container log.
func (d *Driver) LogTail(ctx context.Context, id string, n int) string {
	out, err := d.logs(ctx, d.ContainerName(id), strconv.Itoa(n))
	if err != nil {
		return ""
	}
	return driver.Tail(out, n)
}

// logs returns a container's combined stdout and stderr.
func (d *Driver) logs(ctx context.Context, ref, tailLines string) ([]byte, error) {
	rc, err := d.cli.ContainerLogs(ctx, ref, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: tailLines})
	if err != nil {
		return nil, fmt.Errorf("read logs: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.Bytes(), fmt.Errorf("read logs: %w", err)
	}
	return buf.Bytes(), nil
}

// startNew starts a replica of a new cluster on a fresh free port; if
// another process takes the port between the choice and the start, it
// tries again with another.
func (d *Driver) startNew(ctx context.Context, r replica, ids []string) error {
	var err error
	for range 3 {
		if r.Port, err = freePort(); err != nil {
			return err
		}
		err = d.start(ctx, r, ids)
		if err == nil || !portTaken(err) {
			return err
		}
		if rmErr := d.removeNamed(ctx, d.ContainerName(r.ID)); rmErr != nil {
			return errors.Join(err, rmErr)
		}
	}
	return err
}

// start creates and starts replica r's container; ids are every replica
// of the cluster (the store's initial membership).
func (d *Driver) start(ctx context.Context, r replica, ids []string) error {
	name := d.ContainerName(r.ID)
	var peers []string
	for _, id := range ids {
		peers = append(peers, fmt.Sprintf("%s=http://%s:%d", id, d.ContainerName(id), peerPort))
	}
	hp, err := network.ParsePort(fmt.Sprintf("%d/tcp", httpPort))
	if err != nil {
		return err
	}
	grace := d.graceSeconds()
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:      ImageRef(r.Version),
			Hostname:   name,
			Entrypoint: []string{"/ladder", "registry", "serve"},
			Cmd: []string{
				"--id", r.ID,
				"--cluster", d.name,
				"--release", r.Version,
				"--data", dataPath,
				"--blobs", blobsPath,
				"--listen", fmt.Sprintf("0.0.0.0:%d", httpPort),
				"--peer-listen", fmt.Sprintf("0.0.0.0:%d", peerPort),
				"--client-listen", fmt.Sprintf("0.0.0.0:%d", clientPort),
				"--advertise-host", name,
				"--initial-cluster", strings.Join(peers, ","),
				"--admin-password-file", passwordPath,
			},
			ExposedPorts: network.PortSet{hp: {}},
			Labels: d.labels(map[string]string{LabelReplica: r.ID, LabelRelease: r.Version,
				LabelHTTPPort: strconv.Itoa(r.Port)}),
			StopTimeout: &grace,
		},
		HostConfig: &container.HostConfig{
			NetworkMode: container.NetworkMode(d.network()),
			PortBindings: network.PortMap{hp: {{HostIP: netip.MustParseAddr("127.0.0.1"),
				HostPort: strconv.Itoa(r.Port)}}},
			Mounts: []mount.Mount{
				{Type: mount.TypeVolume, Source: d.dataVolume(r.ID), Target: dataPath},
				{Type: mount.TypeVolume, Source: d.blobVolume(), Target: blobsPath},
			},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			d.network(): {Aliases: []string{name}},
		}},
	})
	if err != nil {
		return fmt.Errorf("start %s: create container: %w", r.ID, err)
	}
	if err := d.copyPassword(ctx, created.ID); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	d.opts.Logger.Info("replica started", "replica", r.ID, "release", r.Version, "container", name, "url", httpURL(r.Port))
	return nil
}

// copyPassword puts the admin password file into a created container.
func (d *Driver) copyPassword(ctx context.Context, containerID string) error {
	pw, err := os.ReadFile(d.AdminPasswordFile())
	if err != nil {
		return fmt.Errorf("read admin password: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := strings.TrimPrefix(filepath.Dir(passwordPath), "/")
	for _, h := range []*tar.Header{
		{Name: filepath.Dir(dir) + "/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o700},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("copy admin password: %w", err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(passwordPath, "/"), Typeflag: tar.TypeReg,
		Mode: 0o600, Size: int64(len(pw))}); err != nil {
		return fmt.Errorf("copy admin password: %w", err)
	}
	if _, err := tw.Write(pw); err != nil {
		return fmt.Errorf("copy admin password: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("copy admin password: %w", err)
	}
	if _, err := d.cli.CopyToContainer(ctx, containerID, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf}); err != nil {
		return fmt.Errorf("copy admin password: %w", err)
	}
	return nil
}

// waitAnswering waits until replica id answers HTTP (any status: health
// is the caller's business), and fails at once, with its log, if the
// container stops first. The published port accepts connections as soon
// as the container runs, so a TCP connect proves nothing: only a response
// does.
func (d *Driver) waitAnswering(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.StartTimeout)
	defer cancel()
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		insp, err := d.cli.ContainerInspect(ctx, r.Container, client.ContainerInspectOptions{})
		if err == nil && insp.Container.State != nil && !insp.Container.State.Running {
			return fmt.Errorf("start %s: the container exited (status %d); last lines of its log (docker logs %s):\n%s",
				id, insp.Container.State.ExitCode, d.ContainerName(id), d.LogTail(context.WithoutCancel(ctx), id, 15))
		}
		if req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL(r.Port)+"/health", nil); err == nil {
			if resp, err := hc.Do(req); err == nil {
				resp.Body.Close()
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("start %s: no HTTP answer at %s after %s; last lines of its log (docker logs %s):\n%s",
				id, httpURL(r.Port), d.opts.StartTimeout, d.ContainerName(id), d.LogTail(context.WithoutCancel(ctx), id, 15))
		case <-tick.C:
		}
	}
}

// stop stops replica r's container: unpaused first (it may be frozen),
// SIGTERM, SIGKILL after the grace period.
func (d *Driver) stop(ctx context.Context, r replica) error {
	if r.State == container.StatePaused {
		if _, err := d.cli.ContainerUnpause(ctx, r.Container, client.ContainerUnpauseOptions{}); err != nil {
			return fmt.Errorf("stop %s: unpause: %w", r.ID, err)
		}
	}
	grace := d.graceSeconds()
	if _, err := d.cli.ContainerStop(ctx, r.Container, client.ContainerStopOptions{Timeout: &grace}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop %s: %w", r.ID, err)
	}
	return nil
}

func (d *Driver) removeNamed(ctx context.Context, name string) error {
	_, err := d.cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

// leftovers names what the engine still holds of a cluster of this name
// ("" if nothing).
func (d *Driver) leftovers(ctx context.Context) (string, error) {
	f := make(client.Filters).Add("label", LabelCluster+"="+d.name)
	cs, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return "", fmt.Errorf("list containers: %w", err)
	}
	vs, err := d.cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list volumes: %w", err)
	}
	ns, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", d.network())})
	if err != nil {
		return "", fmt.Errorf("list networks: %w", err)
	}
	var what []string
	if n := len(cs.Items); n > 0 {
		what = append(what, fmt.Sprintf("%d container(s)", n))
	}
	if n := len(vs.Items); n > 0 {
		what = append(what, fmt.Sprintf("%d volume(s)", n))
	}
	for _, n := range ns.Items {
		if n.Name == d.network() {
			what = append(what, "network "+n.Name)
		}
	}
	return strings.Join(what, ", "), nil
}

func (d *Driver) network() string             { return "ladder-" + d.name }
func (d *Driver) blobVolume() string          { return "ladder-" + d.name + "-blobs" }
func (d *Driver) dataVolume(id string) string { return "ladder-" + d.name + "-" + id + "-data" }

func (d *Driver) labels(extra map[string]string) map[string]string {
	l := map[string]string{LabelCluster: d.name}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func (d *Driver) graceSeconds() int {
	return max(1, int(d.opts.StopGrace.Round(time.Second)/time.Second))
}

func httpURL(port int) string { return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePort returns a free loopback port for the engine to publish on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}

// jobSlug makes a job name fit a container name.
func jobSlug(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "job"
	}
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
