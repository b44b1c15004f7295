package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/poll"
)

// containerPort is the port, inside every task, of the service's i-th port.
func containerPort(i int) int { return 8080 + i }

// Open binds the driver to an existing cluster of service svc.
func Open(ctx context.Context, name string, svc driver.Service, opts Options) (*Driver, error) {
	if err := home.ValidateName(name); err != nil {
		return nil, err
	}
	rec, err := home.ReadRecord(opts.Home, name)
	if err != nil {
		return nil, err
	}
	own, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	d := newDriver(name, svc, opts, own)
	d.build = rec.Build
	for s := range rec.Secrets {
		d.secrets[s] = ""
	}
	if d.self, err = managerNode(ctx, d.cli); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Create makes the cluster's network, secrets and services, and returns
// once every replica answers HTTP. On failure everything created is
// removed; the error carries the tail of the failing replica's log.
func Create(ctx context.Context, spec driver.Spec, opts Options) (*Driver, error) {
	spec, err := spec.Validate()
	if err != nil {
		return nil, err
	}
	if err := home.CheckNew(opts.Home, spec.Cluster); err != nil {
		return nil, err
	}
	own, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	d := newDriver(spec.Cluster, spec.Service, opts, own)
	if err := docker.Ping(ctx, d.cli); err != nil {
		return nil, err
	}
	if d.self, err = managerNode(ctx, d.cli); err != nil {
		return nil, err
	}
	if err := d.useBuild(ctx, opts.Build, spec.Version); err != nil {
		return nil, err
	}
	nodes, err := d.placeOn(ctx, opts.Nodes)
	if err != nil {
		return nil, err
	}
	if err := d.checkFree(ctx); err != nil {
		return nil, err
	}
	rec, err := home.Create(opts.Home, home.Record{Name: spec.Cluster, Driver: Name, Service: spec.Service.Name(),
		Build: d.build, Created: time.Now().UTC()}, spec.Secrets)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			if err := d.Destroy(context.WithoutCancel(ctx)); err != nil {
				opts.Logger.Warn("clean up after a failed create", "cluster", spec.Cluster, "err", err)
			}
		}
	}()
	if _, err := d.cli.NetworkCreate(ctx, d.network(), client.NetworkCreateOptions{Driver: "overlay", Scope: "swarm",
		Options: map[string]string{"encrypted": ""}, Labels: d.labels(nil)}); err != nil {
		return nil, fmt.Errorf("create network %s: %w", d.network(), err)
	}
	if err := d.createSecrets(ctx, rec.Secrets); err != nil {
		return nil, err
	}
	if err := d.createReplicas(ctx, spec.Replicas, spec.Version, nodes); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// useBuild sets the image build the cluster runs, build or else the
// newest that holds version, and checks that it holds version.
func (d *Driver) useBuild(ctx context.Context, build, version string) error {
	if d.build = build; d.build == "" {
		var err error
		if d.build, err = docker.LatestBuild(ctx, d.cli, d.svc.Name(), version); err != nil {
			return err
		}
	}
	_, err := d.artifact(ctx, version)
	return err
}

// placeOn returns the nodes to place replicas on, this engine's node when
// none are given, once the swarm is found to have them.
func (d *Driver) placeOn(ctx context.Context, nodes []string) ([]string, error) {
	if len(nodes) == 0 {
		self, err := d.cli.NodeInspect(ctx, d.self, client.NodeInspectOptions{})
		if err != nil {
			return nil, fmt.Errorf("inspect this node: %w", err)
		}
		nodes = []string{self.Node.Description.Hostname}
	}
	if err := d.checkPlacement(ctx, nodes); err != nil {
		return nil, fmt.Errorf("%w: %w", driver.ErrInvalidSpec, err)
	}
	return nodes, nil
}

// checkFree refuses a new cluster whose name the swarm still holds
// objects of.
func (d *Driver) checkFree(ctx context.Context) error {
	left, err := d.leftovers(ctx)
	if err != nil {
		return err
	}
	if left != "" {
		return fmt.Errorf("%w: the swarm still holds %s of cluster %q (remove with: ladder cluster destroy --cluster %s)",
			home.ErrClusterExists, left, d.name, d.name)
	}
	return nil
}

// createSecrets makes a swarm secret of each of the cluster's secret
// files, which files maps by name.
func (d *Driver) createSecrets(ctx context.Context, files map[string]string) error {
	for name, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read secret %s: %w", name, err)
		}
		res, err := d.cli.SecretCreate(ctx, client.SecretCreateOptions{Spec: swarm.SecretSpec{
			Annotations: swarm.Annotations{Name: d.secretName(name), Labels: d.labels(nil)}, Data: data}})
		if err != nil {
			return fmt.Errorf("create secret %s: %w", d.secretName(name), err)
		}
		d.secrets[name] = res.ID
	}
	return nil
}

// createReplicas makes the services of n replicas at version, placed
// round robin on nodes, and waits until each answers.
func (d *Driver) createReplicas(ctx context.Context, n int, version string, nodes []string) error {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("replica-%d", i+1)
	}
	placed := Assign(ids, nodes)
	// Create every member before waiting on any: a member of a new store
	// waits for a quorum of its peers.
	for _, id := range ids {
		port, err := freePort()
		if err != nil {
			return err
		}
		s, err := d.serviceSpec(id, version, port, placed[id], ids)
		if err != nil {
			return err
		}
		if _, err := d.cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: s}); err != nil {
			return fmt.Errorf("create service %s: %w", d.ServiceName(id), err)
		}
		d.opts.Logger.Info("replica created", "replica", id, "release", version, "service", d.ServiceName(id), "node", placed[id])
	}
	for _, id := range ids {
		if err := d.waitAnswering(ctx, id, 0); err != nil {
			return err
		}
	}
	return nil
}

// serviceSpec is the spec of replica id's service at version, its API
// published on port of the node that choice names; ids are every replica
// of the cluster.
func (d *Driver) serviceSpec(id, version string, port int, choice string, ids []string) (swarm.ServiceSpec, error) {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	constraint, err := Constraint(choice)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	name := d.ServiceName(id)
	one := uint64(1)
	grace := d.opts.StopGrace
	delay := time.Second
	var secrets []*swarm.SecretReference
	// The task runs as the image's unprivileged user: its secrets are its.
	owner := strconv.Itoa(docker.ContainerUID)
	for _, s := range slices.Sorted(maps.Keys(d.secrets)) {
		secrets = append(secrets, &swarm.SecretReference{SecretName: d.secretName(s), SecretID: d.secrets[s],
			File: &swarm.SecretReferenceFileTarget{Name: s, UID: owner, GID: owner, Mode: 0o400}})
	}
	update := &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStopFirst,
		FailureAction: swarm.UpdateFailureActionContinue, Monitor: time.Second}
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: d.labels(map[string]string{LabelReplica: id,
			LabelRelease: a.Version, LabelAPIPort: strconv.Itoa(port), LabelNode: choice})},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:           d.image(a.Version),
				Labels:          d.labels(map[string]string{LabelReplica: id, LabelRelease: a.Version}),
				Command:         []string{"/" + a.Program},
				Args:            d.svc.Command(a, d.placement(id, ids)),
				Hostname:        name,
				StopGracePeriod: &grace,
				Secrets:         secrets,
				Mounts: []mount.Mount{
					{Type: mount.TypeVolume, Source: d.dataVolume(id), Target: dataPath,
						VolumeOptions: &mount.VolumeOptions{Labels: d.labels(map[string]string{LabelReplica: id})}},
					{Type: mount.TypeVolume, Source: d.sharedVolume(), Target: sharedPath,
						VolumeOptions: &mount.VolumeOptions{Labels: d.labels(nil)}},
				},
			},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
			Placement:     &swarm.Placement{Constraints: []string{constraint}},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: d.network(), Aliases: []string{name}}},
		},
		Mode:           swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		UpdateConfig:   update,
		RollbackConfig: update,
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR, Ports: []swarm.PortConfig{{
			Protocol: "tcp", TargetPort: uint32(containerPort(0)), PublishedPort: uint32(port),
			PublishMode: swarm.PortConfigPublishModeHost}}},
	}, nil
}

// placement is where replica id runs inside its task.
func (d *Driver) placement(id string, ids []string) driver.Placement {
	p := driver.Placement{Cluster: d.name, ID: id, Listen: map[string]string{}, Members: d.members(ids),
		DataDir: dataPath, SharedDir: sharedPath, Secrets: map[string]string{}}
	for j, n := range d.svc.Ports() {
		p.Listen[n] = "0.0.0.0:" + strconv.Itoa(containerPort(j))
	}
	for s := range d.secrets {
		p.Secrets[s] = secretsPath + "/" + s
	}
	return p
}

// members lists replicas ids as their peers on the overlay network reach
// them: by service name.
func (d *Driver) members(ids []string) []driver.Member {
	out := make([]driver.Member, len(ids))
	for i, id := range ids {
		out[i] = driver.Member{ID: id, Addr: map[string]string{}}
		for j, n := range d.svc.Ports() {
			out[i].Addr[n] = d.ServiceName(id) + ":" + strconv.Itoa(containerPort(j))
		}
	}
	return out
}

// freePort returns a port free on this machine, to publish a replica's API
// on its node.
func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Remove destroys what is left on the swarm of cluster name when it cannot
// be opened. Nothing left is not an error.
func Remove(ctx context.Context, name string, opts Options) error {
	own, err := opts.defaults()
	if err != nil {
		return err
	}
	d := newDriver(name, nil, opts, own)
	defer d.Close()
	return d.Destroy(ctx)
}

// Leftovers names what the swarm still holds of cluster name ("" if
// nothing), or "" when the engine is in no swarm.
func Leftovers(ctx context.Context, cli *client.Client, name string) (string, error) {
	if _, err := managerNode(ctx, cli); err != nil {
		return "", nil
	}
	d := &Driver{name: name, cli: cli}
	return d.leftovers(ctx)
}

func (d *Driver) leftovers(ctx context.Context) (string, error) {
	f := make(client.Filters).Add("label", LabelCluster+"="+d.name)
	ss, err := d.cli.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list services: %w", err)
	}
	vs, err := d.cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list volumes: %w", err)
	}
	sec, err := d.cli.SecretList(ctx, client.SecretListOptions{Filters: f})
	if err != nil {
		return "", fmt.Errorf("list secrets: %w", err)
	}
	ns, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", d.network())})
	if err != nil {
		return "", fmt.Errorf("list networks: %w", err)
	}
	var what []string
	if n := len(ss.Items); n > 0 {
		what = append(what, fmt.Sprintf("%d service(s)", n))
	}
	if n := len(vs.Items); n > 0 {
		what = append(what, fmt.Sprintf("%d volume(s)", n))
	}
	if n := len(sec.Items); n > 0 {
		what = append(what, fmt.Sprintf("%d secret(s)", n))
	}
	for _, n := range ns.Items {
		if n.Name == d.network() {
			what = append(what, "network "+n.Name)
		}
	}
	return strings.Join(what, ", "), nil
}

// Destroy implements driver.Driver: it removes the cluster's services,
// waits for their containers on this node to go, then removes the
// volumes on this node, the network, the secrets and the cluster folder.
// Objects already gone are not an error.
func (d *Driver) Destroy(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := make(client.Filters).Add("label", LabelCluster+"="+d.name)
	if err := d.removeServices(ctx, f); err != nil {
		return err
	}
	// The engine removes a removed service's containers on its own, a
	// moment later; volumes in use cannot be removed before.
	if err := d.waitNoContainers(ctx); err != nil {
		return err
	}
	if err := docker.RemoveVolumes(ctx, d.cli, d.name); err != nil {
		return err
	}
	var errs []error
	ns, err := d.cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list networks of cluster %s: %w", d.name, err)
	}
	for _, n := range ns.Items {
		if err := d.removeNetwork(ctx, n.ID, n.Name); err != nil {
			errs = append(errs, err)
		}
	}
	sec, err := d.cli.SecretList(ctx, client.SecretListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list secrets of cluster %s: %w", d.name, err)
	}
	for _, s := range sec.Items {
		if _, err := d.cli.SecretRemove(ctx, s.ID, client.SecretRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove secret %s: %w", s.Spec.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if d.dir != "" {
		if err := os.RemoveAll(d.dir); err != nil {
			return fmt.Errorf("remove cluster folder: %w", err)
		}
	}
	d.opts.Logger.Info("cluster destroyed", "cluster", d.name)
	return nil
}

// removeServices removes the services f selects.
func (d *Driver) removeServices(ctx context.Context, f client.Filters) error {
	ss, err := d.cli.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list services of cluster %s: %w", d.name, err)
	}
	for _, s := range ss.Items {
		if _, err := d.cli.ServiceRemove(ctx, s.ID, client.ServiceRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove service %s: %w", s.Spec.Name, err)
		}
	}
	return nil
}

// removeNetwork removes network id, name, retrying while it is in use:
// an overlay stays in use for a moment after its last task ends.
func (d *Driver) removeNetwork(ctx context.Context, id, name string) error {
	var last error
	err := poll.For(ctx, 30*time.Second, 250*time.Millisecond, func() (bool, error) {
		_, last = d.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{})
		return last == nil || cerrdefs.IsNotFound(last), nil
	})
	if err != nil {
		return fmt.Errorf("remove network %s: %w", name, errors.Join(last, err))
	}
	return nil
}
