package swarm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/home"
)

// Name is the driver's name in cluster records.
const Name = "swarm"

// Labels on the objects the driver creates, beside the docker driver's.
const (
	LabelCluster = docker.LabelCluster
	LabelReplica = docker.LabelReplica
	LabelRelease = docker.LabelRelease
	LabelAPIPort = docker.LabelAPIPort
	LabelJob     = docker.LabelJob
	// LabelNode is the placement of a replica's service: a node's
	// hostname, or LABEL=VALUE for a node label.
	LabelNode = "ladder.node"
)

// Paths inside a task.
const (
	dataPath    = "/data"
	sharedPath  = "/shared"
	secretsPath = "/run/secrets"
)

// Options configure the driver.
type Options struct {
	// Home is ladder's state folder (home.Dir()).
	Home string
	// Client talks to a manager of the swarm; default: one configured
	// from the environment.
	Client *client.Client
	// Nodes places replica i on Nodes[i % len(Nodes)]: a node's hostname,
	// or LABEL=VALUE for the nodes carrying that node label. Default: the
	// manager's own node (a one-node swarm). Used by Create only: a
	// cluster's placement is kept in its services.
	Nodes []string
	// StopGrace is how long a task gets to stop after SIGTERM; default 10s.
	StopGrace time.Duration
	// StartTimeout bounds the wait for a new task to answer; default 90s.
	StartTimeout time.Duration
	// Build is the image build a new cluster runs; default: the newest
	// build that holds its release.
	Build  string
	Logger *slog.Logger
}

func (o *Options) defaults() (own bool, err error) {
	if o.Client == nil {
		if o.Client, err = docker.NewClient(); err != nil {
			return false, err
		}
		own = true
	}
	if o.StopGrace == 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 90 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return own, nil
}

// Driver is the swarm driver, bound to one cluster.
type Driver struct {
	name  string
	dir   string
	svc   driver.Service
	cli   *client.Client
	own   bool
	opts  Options
	build string
	// secrets maps the names of the cluster's secrets to their Swarm
	// secret ids (known to the driver that created them).
	secrets map[string]string
	// self is the swarm node id of the engine the driver talks to.
	self string
	mu   sync.Mutex
}

var _ driver.Driver = (*Driver)(nil)
var _ driver.Freezer = (*Driver)(nil)
var _ driver.ArtifactChecker = (*Driver)(nil)
var _ driver.LogTailer = (*Driver)(nil)

// Name implements driver.Driver.
func (d *Driver) Name() string { return Name }

// Cluster implements driver.Driver.
func (d *Driver) Cluster() string { return d.name }

// Build is the image build the cluster runs.
func (d *Driver) Build() string { return d.build }

// Client is the engine client the driver uses.
func (d *Driver) Client() *client.Client { return d.cli }

// Close releases the engine client if the driver made it.
func (d *Driver) Close() error {
	if d.own {
		return d.cli.Close()
	}
	return nil
}

// Names of the swarm objects a cluster owns.
func (d *Driver) network() string             { return "ladder-" + d.name }
func (d *Driver) sharedVolume() string        { return "ladder-" + d.name + "-shared" }
func (d *Driver) dataVolume(id string) string { return "ladder-" + d.name + "-" + id + "-data" }
func (d *Driver) secretName(s string) string  { return "ladder-" + d.name + "-" + s }

// ServiceName is the name, and the hostname, of replica id's service.
func (d *Driver) ServiceName(id string) string { return "ladder-" + d.name + "-" + id }

// Network is the name of the cluster's overlay network.
func (d *Driver) Network() string { return d.network() }

func (d *Driver) labels(extra map[string]string) map[string]string {
	l := map[string]string{LabelCluster: d.name}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// managerNode checks that the engine is a manager of an active swarm and
// returns its node id.
func managerNode(ctx context.Context, cli *client.Client) (string, error) {
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return "", fmt.Errorf("ask the engine at %s: %w", cli.DaemonHost(), err)
	}
	sw := info.Info.Swarm
	if sw.LocalNodeState != swarm.LocalNodeStateActive {
		return "", fmt.Errorf("%w: the engine at %s is not part of a swarm (state %q): start one with: docker swarm init --advertise-addr ADDRESS",
			ErrNoSwarm, cli.DaemonHost(), sw.LocalNodeState)
	}
	if !sw.ControlAvailable {
		return "", fmt.Errorf("%w: the engine at %s is a swarm worker; point DOCKER_HOST at a manager", ErrNoSwarm, cli.DaemonHost())
	}
	return sw.NodeID, nil
}

// replica is what the driver knows of one replica, from its service and
// its current task.
type replica struct {
	ID        string
	Version   string
	Port      int
	Service   swarm.Service
	Task      *swarm.Task // the task meant to run; nil if none yet
	Node      *swarm.Node // the task's node, if known
	Container string      // the task's container id
}

func (r replica) running() bool {
	return r.Task != nil && r.Task.Status.State == swarm.TaskStateRunning
}

// Replicas implements driver.Driver.
func (d *Driver) Replicas(ctx context.Context) ([]driver.Replica, error) {
	reps, err := d.replicas(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]driver.Replica, 0, len(reps))
	for _, r := range reps {
		dr := driver.Replica{ID: r.ID, Version: r.Version, URL: d.url(r), Container: r.Container, Running: r.running()}
		if dr.Running && r.Task.NodeID == d.self && r.Container != "" {
			if insp, err := d.cli.ContainerInspect(ctx, r.Container, client.ContainerInspectOptions{}); err == nil && insp.Container.State != nil {
				dr.Paused = insp.Container.State.Paused
				dr.Running = insp.Container.State.Running
			}
		}
		out = append(out, dr)
	}
	return out, nil
}

// url is the base URL of replica r's API: its node's address and the
// published port. A task on this engine's node is reached on loopback.
func (d *Driver) url(r replica) string {
	host := "127.0.0.1"
	if r.Node != nil && r.Node.ID != d.self && r.Node.Status.Addr != "" && r.Node.Status.Addr != "0.0.0.0" {
		host = r.Node.Status.Addr
	}
	return driver.APIScheme(d.svc, d.secrets) + "://" + net.JoinHostPort(host, strconv.Itoa(r.Port))
}

// replicas lists the cluster's replica services, ordered by id, each with
// its current task.
func (d *Driver) replicas(ctx context.Context) ([]replica, error) {
	res, err := d.cli.ServiceList(ctx, client.ServiceListOptions{
		Filters: make(client.Filters).Add("label", LabelCluster+"="+d.name).Add("label", LabelReplica)})
	if err != nil {
		return nil, fmt.Errorf("list services of cluster %s: %w", d.name, err)
	}
	nodes, err := d.nodes(ctx)
	if err != nil {
		return nil, err
	}
	var out []replica
	for _, s := range res.Items {
		l := s.Spec.Labels
		port, _ := strconv.Atoi(l[LabelAPIPort])
		r := replica{ID: l[LabelReplica], Version: l[LabelRelease], Port: port, Service: s}
		t, err := d.currentTask(ctx, s.ID)
		if err != nil {
			return nil, err
		}
		if t != nil {
			r.Task = t
			if n, ok := nodes[t.NodeID]; ok {
				r.Node = &n
			}
			if t.Status.ContainerStatus != nil {
				r.Container = t.Status.ContainerStatus.ContainerID
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b replica) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// currentTask returns the newest task of service id that the swarm means
// to run, or nil.
func (d *Driver) currentTask(ctx context.Context, service string) (*swarm.Task, error) {
	tasks, err := d.tasks(ctx, service)
	if err != nil {
		return nil, err
	}
	var cur *swarm.Task
	for i, t := range tasks {
		if t.DesiredState != swarm.TaskStateRunning {
			continue
		}
		if cur == nil || t.Meta.CreatedAt.After(cur.Meta.CreatedAt) {
			cur = &tasks[i]
		}
	}
	return cur, nil
}

func (d *Driver) tasks(ctx context.Context, service string) ([]swarm.Task, error) {
	res, err := d.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", service)})
	if err != nil {
		return nil, fmt.Errorf("list tasks of service %s: %w", service, err)
	}
	return res.Items, nil
}

// nodes maps the swarm's node ids to nodes.
func (d *Driver) nodes(ctx context.Context) (map[string]swarm.Node, error) {
	res, err := d.cli.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list swarm nodes: %w", err)
	}
	out := map[string]swarm.Node{}
	for _, n := range res.Items {
		out[n.ID] = n
	}
	return out, nil
}

func (d *Driver) find(ctx context.Context, id string) (replica, []replica, error) {
	reps, err := d.replicas(ctx)
	if err != nil {
		return replica{}, nil, err
	}
	r, err := docker.FindReplica(reps, func(r replica) string { return r.ID }, d.name, id)
	return r, reps, err
}

// CheckArtifact implements driver.ArtifactChecker: the service must have
// the release, and its image must be on this engine's node and on every
// other node that runs a replica (asked of each with a short Swarm job).
func (d *Driver) CheckArtifact(ctx context.Context, version string) error {
	a, err := d.artifact(ctx, version)
	if err != nil {
		return err
	}
	return d.checkNodesHaveImage(ctx, a)
}

func (d *Driver) artifact(ctx context.Context, version string) (driver.Artifact, error) {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return a, err
	}
	return a, docker.CheckImage(ctx, d.cli, d.svc.Name(), a.Version, d.build)
}

func (d *Driver) image(version string) string { return docker.ImageRef(d.svc.Name(), version, d.build) }

// open binds a driver value without checking the swarm.
func newDriver(name string, svc driver.Service, opts Options, own bool) *Driver {
	return &Driver{name: name, dir: home.ClusterDir(opts.Home, name), svc: svc, cli: opts.Client, own: own, opts: opts,
		secrets: map[string]string{}}
}
