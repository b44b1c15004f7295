package docker

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
)

// Name is the driver's name in cluster records.
const Name = "docker"

// Labels on every object the driver creates.
const (
	LabelCluster = "ladder.cluster"
	LabelReplica = "ladder.replica"
	LabelRelease = labelRelease
	// LabelAPIPort is the host port the replica's API is published on.
	LabelAPIPort = "ladder.api-port"
	LabelJob     = "ladder.job"
)

// Paths inside a replica container.
const (
	dataPath    = "/data"
	sharedPath  = "/shared"
	secretsPath = "/run/ladder"
)

// containerUser is the unprivileged user (and group) every container of
// a cluster runs as; the image's folders belong to it.
const containerUser = "65532:65532"

// ContainerUID is the id of the unprivileged user containers run as, for
// the files copied in and the secrets a Swarm task is given.
const ContainerUID = 65532

// hardened is what every container of a cluster runs with: a read-only
// root filesystem (its volumes and a small /tmp are writable), no
// capabilities, and no way to gain privileges.
func hardened(hc *container.HostConfig) *container.HostConfig {
	hc.ReadonlyRootfs = true
	hc.CapDrop = []string{"ALL"}
	hc.SecurityOpt = []string{"no-new-privileges:true"}
	hc.Tmpfs = map[string]string{"/tmp": "rw,noexec,nosuid,size=64m"}
	// The cluster's secrets, copied in before the container starts, live
	// on a volume of the container's own (removed with it).
	hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Target: secretsPath})
	return hc
}

// replacedSuffix names a replaced replica's old container while its
// successor starts; it is removed once the successor runs.
const replacedSuffix = "-replaced"

// Options configure the driver.
type Options struct {
	// Home is ladder's state folder (home.Dir()).
	Home string
	// Client talks to the engine; default: one configured from the
	// environment (DOCKER_HOST, ...), with API version negotiation.
	Client *client.Client
	// StopGrace is how long a replica gets to stop after SIGTERM before
	// SIGKILL; default 10s.
	StopGrace time.Duration
	// StartTimeout bounds the wait, when a cluster is created, for its
	// replicas to answer; default 60s.
	StartTimeout time.Duration
	// Build is the image build a new cluster runs (see BuildImages);
	// default: the newest build that holds its release.
	Build  string
	Logger *slog.Logger
}

// Driver is the docker driver, bound to one cluster.
type Driver struct {
	name string
	dir  string
	svc  driver.Service
	cli  *client.Client
	own  bool // cli was made here and is closed by Close
	opts Options
	// secrets maps the cluster's secrets to their files on this machine.
	secrets map[string]string
	// build is the image build the cluster runs.
	build string
	// adopted, for a cluster ladder did not create, names each replica's
	// container (see adopt.go); nil otherwise.
	adopted map[string]AdoptMember
	// mu serialises changes to one cluster made through this Driver.
	mu sync.Mutex
}

var _ driver.Driver = (*Driver)(nil)
var _ driver.Freezer = (*Driver)(nil)
var _ driver.ArtifactChecker = (*Driver)(nil)
var _ driver.LogTailer = (*Driver)(nil)

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

// Name implements driver.Driver.
func (d *Driver) Name() string { return Name }

// Cluster implements driver.Driver.
func (d *Driver) Cluster() string { return d.name }

// Dir is the cluster's folder on this machine.
func (d *Driver) Dir() string { return d.dir }

// Client is the engine client the driver uses.
func (d *Driver) Client() *client.Client { return d.cli }

// Network is the name of the cluster's private network.
func (d *Driver) Network() string { return d.network() }

// ContainerName is the name of replica id's container.
func (d *Driver) ContainerName(id string) string {
	if m, ok := d.adopted[id]; ok {
		return m.Container
	}
	return ContainerName(d.name, id)
}

// ContainerName is the name (and host name) of replica id of cluster, as
// the driver creates it.
func ContainerName(cluster, id string) string { return "ladder-" + cluster + "-" + id }

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
	Port      int // host port of the API
	Container string
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
		out = append(out, driver.Replica{ID: r.ID, Version: r.Version, URL: driver.APIScheme(d.svc, d.secrets) + "://" + apiAddr(r.Port),
			Container: r.Container, Running: r.running(), Paused: r.State == container.StatePaused})
	}
	return out, nil
}

// replicas lists the cluster's replica containers by their labels, ordered
// by id. A replaced replica's old container, if a Replace was cut short, is
// not listed.
func (d *Driver) replicas(ctx context.Context) ([]replica, error) {
	if d.adopted != nil {
		return d.adoptedReplicas(ctx)
	}
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
		port, _ := strconv.Atoi(c.Labels[LabelAPIPort])
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
	r, err := FindReplica(reps, func(r replica) string { return r.ID }, d.name, id)
	return r, reps, err
}

// FindReplica returns the replica of reps, those of cluster, whose id (as
// key gives it) is id, or an error wrapping driver.ErrNoReplica that lists
// them. It takes any type of replica: the swarm driver's are its own.
func FindReplica[R any](reps []R, key func(R) string, cluster, id string) (R, error) {
	var ids []string
	for _, r := range reps {
		if key(r) == id {
			return r, nil
		}
		ids = append(ids, key(r))
	}
	var none R
	return none, fmt.Errorf("%w %q in cluster %s (replicas: %s)", driver.ErrNoReplica, id, cluster, strings.Join(ids, ", "))
}

// CheckArtifact implements driver.ArtifactChecker: the service must have
// the release, and its image must be present.
func (d *Driver) CheckArtifact(ctx context.Context, version string) error {
	_, err := d.artifact(ctx, version)
	return err
}

// artifact checks the release and its image.
func (d *Driver) artifact(ctx context.Context, version string) (driver.Artifact, error) {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return a, err
	}
	if d.build == BuildPerRelease {
		_, err := d.imageFor(ctx, a)
		return a, err
	}
	return a, CheckImage(ctx, d.cli, d.svc.Name(), a.Version, d.build)
}

// Build is the image build the cluster runs.
func (d *Driver) Build() string { return d.build }

// secretFiles maps the cluster's secrets to their paths in a container.
func (d *Driver) secretFiles() map[string]string {
	out := map[string]string{}
	for name := range d.secrets {
		out[name] = filepath.Join(secretsPath, name)
	}
	return out
}
