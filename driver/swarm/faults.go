package swarm

import (
	"context"
	"fmt"

	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver/docker"
)

// onContainer runs act on replica id's current container, which must be
// on this engine's node, under the driver's lock.
func (d *Driver) onContainer(ctx context.Context, verb, id string,
	act func(ctx context.Context, cli *client.Client, container string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if r.Task == nil || r.Container == "" {
		return fmt.Errorf("%s %s: the replica has no running task", verb, id)
	}
	if r.Task.NodeID != d.self {
		node := r.Task.NodeID
		if r.Node != nil {
			node = r.Node.Description.Hostname
		}
		return fmt.Errorf("%s %s: its task runs on node %s; run ladder with DOCKER_HOST pointing at that node's engine", verb, id, node)
	}
	if err := act(ctx, d.cli, r.Container); err != nil {
		return fmt.Errorf("%s %s: %w", verb, id, err)
	}
	return nil
}

// Freeze implements driver.Freezer: docker pause of the task's container.
// The swarm does not notice: the task stays "running".
func (d *Driver) Freeze(ctx context.Context, id string) error {
	return d.onContainer(ctx, "freeze", id, docker.Pause)
}

// Thaw implements driver.Freezer: docker unpause.
func (d *Driver) Thaw(ctx context.Context, id string) error {
	return d.onContainer(ctx, "thaw", id, docker.Unpause)
}

// Kill ends the task's container with SIGKILL (a crash); the swarm starts
// a new task on its own, after its restart delay.
func (d *Driver) Kill(ctx context.Context, id string) error {
	return d.onContainer(ctx, "kill", id, docker.Kill)
}
