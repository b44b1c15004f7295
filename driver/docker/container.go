package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/poll"
)

// containerPort is the port, inside every replica container, of the
// service's i-th port.
func containerPort(i int) int { return 8080 + i }

// members lists replicas ids as their peers on the cluster's network reach
// them: by container name.
func (d *Driver) members(ids []string) []driver.Member {
	out := make([]driver.Member, len(ids))
	for i, id := range ids {
		out[i] = driver.Member{ID: id, Addr: map[string]string{}}
		for j, n := range d.svc.Ports() {
			out[i].Addr[n] = d.ContainerName(id) + ":" + strconv.Itoa(containerPort(j))
		}
	}
	return out
}

// placement is where replica id runs inside its container.
func (d *Driver) placement(id string, ids []string) driver.Placement {
	p := driver.Placement{Cluster: d.name, ID: id, Listen: map[string]string{}, Members: d.members(ids),
		DataDir: dataPath, SharedDir: sharedPath, Secrets: d.secretFiles()}
	for j, n := range d.svc.Ports() {
		p.Listen[n] = "0.0.0.0:" + strconv.Itoa(containerPort(j))
	}
	return p
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
	a, err := d.svc.Artifact(r.Version)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	image, err := d.imageFor(ctx, a)
	if err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	name := d.ContainerName(r.ID)
	api, err := network.ParsePort(fmt.Sprintf("%d/tcp", containerPort(0)))
	if err != nil {
		return err
	}
	grace := d.graceSeconds()
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:        image,
			Hostname:     name,
			Entrypoint:   []string{"/" + a.Program},
			Cmd:          d.svc.Command(a, d.placement(r.ID, ids)),
			ExposedPorts: network.PortSet{api: {}},
			Labels: d.labels(map[string]string{LabelReplica: r.ID, LabelRelease: a.Version,
				LabelAPIPort: strconv.Itoa(r.Port)}),
			StopTimeout: &grace,
			User:        containerUser,
		},
		HostConfig: hardened(&container.HostConfig{
			NetworkMode: container.NetworkMode(d.network()),
			PortBindings: network.PortMap{api: {{HostIP: netip.MustParseAddr("127.0.0.1"),
				HostPort: strconv.Itoa(r.Port)}}},
			Mounts: []mount.Mount{
				{Type: mount.TypeVolume, Source: d.dataVolume(r.ID), Target: dataPath},
				{Type: mount.TypeVolume, Source: d.sharedVolume(), Target: sharedPath},
			},
		}),
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			d.network(): {Aliases: []string{name}},
		}},
	})
	if err != nil {
		return fmt.Errorf("start %s: create container: %w", r.ID, err)
	}
	if err := d.copySecrets(ctx, created.ID, func(name string) bool {
		s, ok := d.svc.(driver.SecretScoper)
		return !ok || s.ReplicaSecret(r.ID, name)
	}); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", r.ID, err)
	}
	d.opts.Logger.Info("replica started", "replica", r.ID, "release", r.Version, "container", name, "url", httpURL(r.Port))
	return nil
}

// copySecrets puts the cluster's secret files into a created container,
// readable only by its user, under secretsPath.
func (d *Driver) copySecrets(ctx context.Context, containerID string, needs func(name string) bool) error {
	if len(d.secrets) == 0 {
		return nil
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// Into the secrets volume (the root filesystem is read-only), owned by
	// the container's user.
	if err := tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o700,
		Uid: ContainerUID, Gid: ContainerUID}); err != nil {
		return fmt.Errorf("copy secrets: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(d.secrets)) {
		if !needs(name) {
			continue
		}
		data, err := os.ReadFile(d.secrets[name])
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg,
			Mode: 0o600, Size: int64(len(data)), Uid: ContainerUID, Gid: ContainerUID}); err != nil {
			return fmt.Errorf("copy secrets: %w", err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("copy secrets: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("copy secrets: %w", err)
	}
	if _, err := d.cli.CopyToContainer(ctx, containerID, client.CopyToContainerOptions{DestinationPath: secretsPath, Content: &buf}); err != nil {
		return fmt.Errorf("copy secrets: %w", err)
	}
	return nil
}

// waitAnswering waits until replica id answers HTTP on its health path
// (any status: health is the caller's business), and fails at once, with
// its log, if the container stops first. The published port accepts
// connections as soon as the container runs, so a TCP connect proves
// nothing: only a response does.
func (d *Driver) waitAnswering(ctx context.Context, id string) error {
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	hc := &http.Client{Timeout: time.Second}
	url := httpURL(r.Port) + d.svc.HealthPath()
	err = poll.For(ctx, d.opts.StartTimeout, 100*time.Millisecond, func() (bool, error) {
		insp, err := d.cli.ContainerInspect(ctx, r.Container, client.ContainerInspectOptions{})
		if err == nil && insp.Container.State != nil && !insp.Container.State.Running {
			return false, fmt.Errorf("start %s: the container exited (status %d); last lines of its log (docker logs %s):\n%s",
				id, insp.Container.State.ExitCode, d.ContainerName(id), d.LogTail(context.WithoutCancel(ctx), id, 15))
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
		return fmt.Errorf("start %s: no HTTP answer at %s after %s; last lines of its log (docker logs %s):\n%s",
			id, httpURL(r.Port), d.opts.StartTimeout, d.ContainerName(id), d.LogTail(context.WithoutCancel(ctx), id, 15))
	}
	return err
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
	_, err := d.cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

// LogTail returns the last n lines of replica id's container log.
func (d *Driver) LogTail(ctx context.Context, id string, n int) string {
	out, err := d.logs(ctx, d.ContainerName(id), strconv.Itoa(n))
	if err != nil {
		return ""
	}
	return home.Tail(out, n)
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

// portTaken reports whether starting a container failed because its host
// port was taken. The engine reports this only in the message of an
// internal-server error, with no code or type of its own (the text comes
// from the engine's port allocator, "port is already allocated", or from
// the kernel via the proxy, "address already in use"), so the message is
// all there is to match.
func portTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}
