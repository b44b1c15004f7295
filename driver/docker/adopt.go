package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
)

// An adopted cluster is one whose containers ladder did not create: they
// keep their names, networks, volumes or bind mounts, published ports and
// command lines, none of which follow the driver's naming. The cluster
// folder then holds adoptedFile, which names each replica's container.
// A replica's Replace creates a new container from the old one's own
// configuration, with the release's image (ladder-SERVICE:VERSION-BUILD,
// BuildPerRelease) and ladder's labels, under the same name; Destroy
// removes the containers and leaves volumes, networks and bind-mounted
// folders it did not create.
const adoptedFile = "docker-adopted.json"

// LabelAdoptedBy marks a container ladder created in place of an adopted
// one: the cluster that adopted it.
const LabelAdoptedBy = "ladder.adopted-by"

// AdoptMember is a running container of a cluster ladder did not create.
type AdoptMember struct {
	// ID is the replica's id: the name its peers know it by.
	ID string `json:"id"`
	// Container is the container's name.
	Container string `json:"container"`
	// Version is the release it runs when adopted; a replaced container
	// carries its release in its labels.
	Version string `json:"version"`
	// Port is the host port, on 127.0.0.1, its API is published on.
	Port int `json:"port"`
	// DataDir is its data folder inside the container, on a mount.
	DataDir string `json:"data_dir"`
}

// Container is a container as adopt sees it: what runs, with which
// arguments and environment, where its API is published, and whether the
// engine runs it.
type Container struct {
	Name string
	// Program is the container's process; Args follow it.
	Program string
	Args    []string
	Env     []string
	// Ports maps each container port ("2379/tcp") to the host ports it is
	// published on ("127.0.0.1:32768", "0.0.0.0:2379").
	Ports   map[string][]string
	Running bool
	// Mounts are the folders inside the container that outlive it: its
	// volumes and bind mounts, by path inside the container.
	Mounts []string
}

// OnMount reports whether path, inside the container, is on one of its
// mounts, so that a new container of the same configuration finds it.
func (c Container) OnMount(path string) bool {
	for _, m := range c.Mounts {
		if rel, err := filepath.Rel(m, path); err == nil && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}

// InspectContainer returns what adopt needs to know of container name.
func InspectContainer(ctx context.Context, cli *client.Client, name string) (Container, error) {
	res, err := cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return Container{}, fmt.Errorf("no container %q on the engine at %s", name, cli.DaemonHost())
	}
	if err != nil {
		return Container{}, fmt.Errorf("inspect container %s: %w", name, err)
	}
	insp := res.Container
	c := Container{Name: strings.TrimPrefix(insp.Name, "/"), Program: insp.Path, Args: insp.Args,
		Running: insp.State != nil && insp.State.Running, Ports: map[string][]string{}}
	if insp.Config != nil {
		c.Env = insp.Config.Env
	}
	for _, m := range insp.Mounts {
		if m.Type == "volume" || m.Type == "bind" {
			c.Mounts = append(c.Mounts, m.Destination)
		}
	}
	if insp.NetworkSettings != nil {
		for p, bs := range insp.NetworkSettings.Ports {
			for _, b := range bs {
				host := "0.0.0.0"
				if b.HostIP.IsValid() {
					host = b.HostIP.String()
				}
				c.Ports[p.String()] = append(c.Ports[p.String()], host+":"+b.HostPort)
			}
		}
	}
	return c, nil
}

// Adopt records a cluster of running containers that the driver did not
// create, and takes them over as they run: nothing is restarted or
// recreated until a replica is replaced. The service's releases run from
// images built per release (BuildPerRelease).
func Adopt(ctx context.Context, cluster string, svc driver.Service, members []AdoptMember, opts Options) (*Driver, error) {
	if err := home.CheckNew(opts.Home, cluster); err != nil {
		return nil, err
	}
	if len(members) == 0 || len(members) > driver.MaxReplicas {
		return nil, fmt.Errorf("%w: adopt %d members: use 1 to %d", driver.ErrInvalidSpec, len(members), driver.MaxReplicas)
	}
	own, err := opts.defaults()
	if err != nil {
		return nil, err
	}
	d := &Driver{name: cluster, dir: home.ClusterDir(opts.Home, cluster), svc: svc, cli: opts.Client, own: own,
		opts: opts, build: BuildPerRelease, adopted: map[string]AdoptMember{}}
	seen := map[string]bool{}
	for _, m := range members {
		if m.ID == "" || strings.ContainsAny(m.ID, "/ ") || seen[m.ID] {
			return nil, fmt.Errorf("%w: member name %q: empty, repeated or not a simple name", driver.ErrInvalidSpec, m.ID)
		}
		seen[m.ID] = true
		if _, err := svc.Artifact(m.Version); err != nil {
			return nil, fmt.Errorf("adopt %s: %w", m.ID, err)
		}
		d.adopted[m.ID] = m
	}
	if _, err := home.Create(opts.Home, home.Record{Name: cluster, Driver: Name, Service: svc.Name(),
		Build: BuildPerRelease, Created: time.Now().UTC(), Adopted: true}, nil); err != nil {
		return nil, err
	}
	if err := home.WriteFileAtomic(filepath.Join(d.dir, adoptedFile), members); err != nil {
		_ = os.RemoveAll(d.dir)
		return nil, err
	}
	return d, nil
}

// loadAdopted reads the adopted containers of the cluster, if it is one.
func (d *Driver) loadAdopted() error {
	data, err := os.ReadFile(filepath.Join(d.dir, adoptedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read adopted containers: %w", err)
	}
	var ms []AdoptMember
	if err := json.Unmarshal(data, &ms); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(d.dir, adoptedFile), err)
	}
	d.adopted = map[string]AdoptMember{}
	for _, m := range ms {
		d.adopted[m.ID] = m
	}
	return nil
}

// adoptedReplicas lists the containers of an adopted cluster by name.
func (d *Driver) adoptedReplicas(ctx context.Context) ([]replica, error) {
	var out []replica
	for _, id := range slices.Sorted(maps.Keys(d.adopted)) {
		m := d.adopted[id]
		r := replica{ID: id, Version: m.Version, Port: m.Port, State: container.StateExited}
		res, err := d.cli.ContainerInspect(ctx, m.Container, client.ContainerInspectOptions{})
		switch {
		case cerrdefs.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("inspect container %s: %w", m.Container, err)
		default:
			r.Container = res.Container.ID
			if res.Container.State != nil {
				r.State = res.Container.State.Status
			}
			if v := res.Container.Config.Labels[LabelRelease]; v != "" {
				r.Version = v
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// replaceAdopted is Replace for an adopted container: the new container is
// the old one's configuration (command line, environment, mounts, ports,
// networks and their aliases, host name) with the release's image and
// ladder's labels, under the same name. As in Replace, the old container
// is set aside until the new one runs, and put back if it does not start.
func (d *Driver) replaceAdopted(ctx context.Context, id string, a driver.Artifact) error {
	image, err := d.imageFor(ctx, a)
	if err != nil {
		return err
	}
	if err := d.recoverReplaced(ctx, id); err != nil {
		return err
	}
	old, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	res, err := d.cli.ContainerInspect(ctx, old.Container, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("replace %s: inspect: %w", id, err)
	}
	insp := &res.Container
	conf := *insp.Config
	conf.Image = image
	conf.Entrypoint = []string{"/" + a.Program}
	conf.Cmd = slices.Clone(insp.Args)
	conf.Healthcheck = nil // the old image's check may need a shell the new one has not
	conf.Labels = d.adoptedLabels(ctx, insp, id, a.Version, old.Port)
	hostConf := *insp.HostConfig
	hostConf.Mounts = append(slices.Clone(hostConf.Mounts), imageVolumes(insp)...)
	hostConf.PortBindings = keptPorts(insp)
	endpoints := keptEndpoints(insp)
	if err := d.stop(ctx, old); err != nil {
		return err
	}
	name := d.ContainerName(id)
	aside := name + replacedSuffix
	if _, err := d.cli.ContainerRename(ctx, old.Container, client.ContainerRenameOptions{NewName: aside}); err != nil {
		return d.rollback(ctx, old, "", fmt.Errorf("replace %s: rename the old container: %w", id, err))
	}
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &conf,
		HostConfig: &hostConf, NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: endpoints}})
	if err != nil {
		return d.rollback(ctx, old, aside, fmt.Errorf("replace %s: create container: %w", id, err))
	}
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return d.rollback(ctx, old, aside, fmt.Errorf("replace %s: %w", id, err))
	}
	if _, err := d.cli.ContainerRemove(ctx, old.Container, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		d.opts.Logger.Warn("remove the replaced container", "replica", id, "container", aside, "err", err)
	}
	d.opts.Logger.Info("replica replaced", "replica", id, "from", old.Version, "to", a.Version, "container", name)
	return nil
}

// adoptedLabels are the labels of the container replacing insp as replica
// id at release version, its API on port: the container's own labels,
// not those it had from its image, and ladder's. Not ladder.cluster,
// which marks what the cluster owns and a destroy of a cluster of that
// name would remove even after forget.
func (d *Driver) adoptedLabels(ctx context.Context, insp *container.InspectResponse, id, version string, port int) map[string]string {
	var fromImage map[string]string
	if img, err := d.cli.ImageInspect(ctx, insp.Image); err == nil && img.Config != nil {
		fromImage = img.Config.Labels
	}
	labels := map[string]string{LabelAdoptedBy: d.name, LabelReplica: id, LabelRelease: version, LabelAPIPort: strconv.Itoa(port)}
	for k, v := range insp.Config.Labels {
		if _, inherited := fromImage[k]; !inherited && !strings.HasPrefix(k, "ladder.") {
			labels[k] = v
		}
	}
	return labels
}

// imageVolumes names the volumes the container got from its image
// (VOLUME), not from its configuration: a new container would get new,
// empty ones instead.
func imageVolumes(insp *container.InspectResponse) []mount.Mount {
	covered := map[string]bool{}
	for _, b := range insp.HostConfig.Binds {
		if parts := strings.Split(b, ":"); len(parts) >= 2 {
			covered[filepath.Clean(parts[1])] = true
		}
	}
	for _, m := range insp.HostConfig.Mounts {
		covered[filepath.Clean(m.Target)] = true
	}
	var out []mount.Mount
	for _, m := range insp.Mounts {
		if m.Type == "volume" && m.Name != "" && !covered[filepath.Clean(m.Destination)] {
			out = append(out, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination})
		}
	}
	return out
}

// keptPorts are the container's port bindings with the host ports it
// has: a port published on a port the engine chose (-p 127.0.0.1::2379)
// would get another one in a new container, and the replica another URL.
func keptPorts(insp *container.InspectResponse) network.PortMap {
	out := network.PortMap{}
	for p, bs := range insp.HostConfig.PortBindings {
		for _, b := range bs {
			if b.HostPort == "" || b.HostPort == "0" {
				for _, actual := range insp.NetworkSettings.Ports[p] {
					if !b.HostIP.IsValid() || actual.HostIP == b.HostIP {
						b.HostPort = actual.HostPort
						break
					}
				}
			}
			out[p] = append(out[p], b)
		}
	}
	return out
}

// keptEndpoints are the container's networks with the aliases it was
// given there.
func keptEndpoints(insp *container.InspectResponse) map[string]*network.EndpointSettings {
	endpoints := map[string]*network.EndpointSettings{}
	for name, ep := range insp.NetworkSettings.Networks {
		var aliases []string
		for _, al := range ep.Aliases {
			if !strings.HasPrefix(insp.ID, al) { // the engine's own alias, the old id
				aliases = append(aliases, al)
			}
		}
		endpoints[name] = &network.EndpointSettings{Aliases: aliases, IPAMConfig: ep.IPAMConfig, Links: ep.Links}
	}
	return endpoints
}

// destroyAdopted removes the containers of an adopted cluster; volumes,
// networks and folders it mounted stay.
func (d *Driver) destroyAdopted(ctx context.Context) error {
	for _, id := range slices.Sorted(maps.Keys(d.adopted)) {
		for _, n := range []string{d.ContainerName(id), d.ContainerName(id) + replacedSuffix} {
			if err := d.removeNamed(ctx, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// adoptedDataDir is the folder on this machine of the mount that holds
// an adopted member's data folder (AdoptMember.DataDir).
func (d *Driver) adoptedDataDir(ctx context.Context, id string) (string, bool) {
	dataDir := d.adopted[id].DataDir
	r, _, err := d.find(ctx, id)
	if err != nil || r.Container == "" {
		return "", false
	}
	res, err := d.cli.ContainerInspect(ctx, r.Container, client.ContainerInspectOptions{})
	if err != nil {
		return "", false
	}
	best := container.MountPoint{}
	for _, m := range res.Container.Mounts {
		rel, err := filepath.Rel(m.Destination, dataDir)
		if err == nil && !strings.HasPrefix(rel, "..") && len(m.Destination) > len(best.Destination) {
			best = m
		}
	}
	if best.Source == "" {
		return "", false
	}
	rel, _ := filepath.Rel(best.Destination, dataDir)
	dir := filepath.Join(best.Source, rel)
	if _, err := os.ReadDir(filepath.Join(dir, "member")); err != nil {
		return dir, false
	}
	return dir, true
}

// Forget removes the cluster's folder, its record included, and leaves
// every container, volume and network as it is. Only an adopted cluster
// can be forgotten: one Create made keeps its data in volumes the driver
// owns.
func (d *Driver) Forget() error {
	if d.adopted == nil {
		return fmt.Errorf("forget cluster %s: ladder created it: delete it with ladder cluster destroy instead", d.name)
	}
	if err := os.RemoveAll(d.dir); err != nil {
		return fmt.Errorf("forget cluster %s: %w", d.name, err)
	}
	return nil
}
