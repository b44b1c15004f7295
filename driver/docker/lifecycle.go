package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
)

// Open binds the driver to an existing cluster of service svc.
func Open(name string, svc driver.Service, opts Options) (*Driver, error) {
	if err := home.ValidateName(name); err != nil {
		return nil, err
	}
	rec, err := home.ReadRecord(opts.Home, name)
	if err != nil {
		return nil, err
	}
	if rec.Build == "" {
		return nil, fmt.Errorf("cluster %s was created by an older ladder and cannot be opened: recreate it (ladder cluster destroy --cluster %s, then ladder cluster create)", name, name)
	}
	own, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	d := &Driver{name: name, dir: home.ClusterDir(opts.Home, name), svc: svc, cli: opts.Client, own: own,
		opts: opts, secrets: rec.Secrets, build: rec.Build}
	if err := d.loadAdopted(); err != nil {
		return nil, err
	}
	return d, nil
}

// Create makes the cluster's network, volumes and containers and starts
// every replica. It returns once every replica answers HTTP; waiting for the
// store to settle is the caller's job. On failure everything created is
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
	d := &Driver{name: spec.Cluster, dir: home.ClusterDir(opts.Home, spec.Cluster), svc: spec.Service,
		cli: opts.Client, own: own, opts: opts}
	if err := Ping(ctx, d.cli); err != nil {
		return nil, err
	}
	if d.build = opts.Build; d.build == "" {
		if d.build, err = LatestBuild(ctx, d.cli, spec.Service.Name(), spec.Version); err != nil {
			return nil, err
		}
	}
	if _, err := d.artifact(ctx, spec.Version); err != nil {
		return nil, err
	}
	if left, err := d.leftovers(ctx); err != nil {
		return nil, err
	} else if left != "" {
		return nil, fmt.Errorf("%w: the engine still holds %s of cluster %q (remove with: docker rm -f $(docker ps -aq --filter label=%s=%s); docker volume prune --filter label=%s=%s; docker network rm %s)",
			home.ErrClusterExists, left, spec.Cluster, LabelCluster, spec.Cluster, LabelCluster, spec.Cluster, d.network())
	}
	rec, err := home.Create(opts.Home, home.Record{Name: spec.Cluster, Driver: Name, Service: spec.Service.Name(),
		Build: d.build, Created: time.Now().UTC()}, spec.Secrets)
	if err != nil {
		return nil, err
	}
	d.secrets = rec.Secrets
	ok := false
	defer func() {
		if !ok {
			if err := d.Destroy(context.WithoutCancel(ctx)); err != nil {
				opts.Logger.Warn("clean up after a failed create", "cluster", spec.Cluster, "err", err)
			}
		}
	}()
	ids := make([]string, spec.Replicas)
	for i := range ids {
		ids[i] = fmt.Sprintf("replica-%d", i+1)
	}
	if err := d.createStorage(ctx, ids); err != nil {
		return nil, err
	}
	// Start every member before waiting on any: a member of a new store
	// waits for a quorum of its peers.
	for _, id := range ids {
		if err := d.startNew(ctx, replica{ID: id, Version: spec.Version}, ids); err != nil {
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

// createStorage creates the cluster's network, its shared volume and a data
// volume per replica.
func (d *Driver) createStorage(ctx context.Context, ids []string) error {
	// The network publishes the API port, so it cannot be internal (an
	// internal network publishes nothing); it does not masquerade, so the
	// replicas cannot reach out of this machine through it.
	if _, err := d.cli.NetworkCreate(ctx, d.network(), client.NetworkCreateOptions{
		Driver: "bridge", Labels: d.labels(nil),
		Options: map[string]string{"com.docker.network.bridge.enable_ip_masquerade": "false"}}); err != nil {
		return fmt.Errorf("create network %s: %w", d.network(), err)
	}
	if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: d.sharedVolume(), Labels: d.labels(nil)}); err != nil {
		return fmt.Errorf("create volume %s: %w", d.sharedVolume(), err)
	}
	for _, id := range ids {
		if _, err := d.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: d.dataVolume(id),
			Labels: d.labels(map[string]string{LabelReplica: id})}); err != nil {
			return fmt.Errorf("create volume %s: %w", d.dataVolume(id), err)
		}
	}
	return nil
}

// Remove destroys what is left on the engine of cluster name when it
// cannot be opened (a destroy or a create cut short): every container,
// volume and network labelled with it, and its folder. Nothing left is not
// an error.
func Remove(ctx context.Context, name string, opts Options) error {
	own, err := opts.defaults()
	if err != nil {
		return err
	}
	d := &Driver{name: name, dir: home.ClusterDir(opts.Home, name), cli: opts.Client, own: own, opts: opts}
	defer d.Close()
	return d.Destroy(ctx)
}

// Destroy implements driver.Driver: it removes every container, volume
// and the network labelled with the cluster, then the cluster folder.
// Objects already gone are not an error.
func (d *Driver) Destroy(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.adopted != nil {
		if err := d.destroyAdopted(ctx); err != nil {
			return err
		}
	}
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
	if err := RemoveVolumes(ctx, d.cli, d.name); err != nil {
		return err
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

// RemoveVolumes removes the volumes labelled with cluster name on the
// engine cli talks to (a swarm's on that engine's node only), for this
// driver's Destroy and the swarm driver's. Volumes already gone are not an
// error.
func RemoveVolumes(ctx context.Context, cli *client.Client, name string) error {
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", LabelCluster+"="+name)})
	if err != nil {
		return fmt.Errorf("list volumes of cluster %s: %w", name, err)
	}
	for _, v := range vs.Items {
		if _, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove volume %s: %w", v.Name, err)
		}
	}
	return nil
}

// FindBuild returns the image build the containers of cluster name run,
// from their labels: what a ladder home that did not create the cluster
// records to drive it.
func FindBuild(ctx context.Context, cli *client.Client, name string) (string, error) {
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", LabelCluster+"="+name).Add("label", LabelReplica)})
	if err != nil {
		return "", fmt.Errorf("list containers of cluster %s: %w", name, err)
	}
	for _, c := range res.Items {
		img, err := cli.ImageInspect(ctx, c.ImageID)
		if err != nil {
			continue
		}
		if b := img.Config.Labels[labelBuild]; b != "" {
			return b, nil
		}
	}
	return "", fmt.Errorf("%w: no container of cluster %s on the engine at %s", home.ErrNoCluster, name, cli.DaemonHost())
}

// Leftovers names what the engine still holds of cluster name ("" if
// nothing): its containers, volumes and network.
func Leftovers(ctx context.Context, cli *client.Client, name string) (string, error) {
	d := &Driver{name: name, cli: cli}
	return d.leftovers(ctx)
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
