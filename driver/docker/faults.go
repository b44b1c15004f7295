package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Pause is what Driver.Freeze does to a replica's container, and the swarm
// driver's Freeze to a task's.
func Pause(ctx context.Context, cli *client.Client, container string) error {
	_, err := cli.ContainerPause(ctx, container, client.ContainerPauseOptions{})
	return err
}

// Unpause is what Driver.Thaw does to a replica's container, and the swarm
// driver's Thaw to a task's.
func Unpause(ctx context.Context, cli *client.Client, container string) error {
	_, err := cli.ContainerUnpause(ctx, container, client.ContainerUnpauseOptions{})
	return err
}

// Kill is what Driver.Kill does to a replica's container, and the swarm
// driver's Kill to a task's: SIGKILL, a crash, with no chance to stop
// cleanly.
func Kill(ctx context.Context, cli *client.Client, container string) error {
	_, err := cli.ContainerKill(ctx, container, client.ContainerKillOptions{Signal: "KILL"})
	return err
}

// onContainer runs act on replica id's container under the driver's lock,
// so a fault never lands on a container a Replace or Restart is swapping.
func (d *Driver) onContainer(ctx context.Context, verb, id string,
	act func(ctx context.Context, cli *client.Client, container string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if err := act(ctx, d.cli, r.Container); err != nil {
		return fmt.Errorf("%s %s: %w", verb, id, err)
	}
	return nil
}

// Freeze implements driver.Freezer with docker pause.
func (d *Driver) Freeze(ctx context.Context, id string) error {
	return d.onContainer(ctx, "freeze", id, Pause)
}

// Thaw implements driver.Freezer with docker unpause.
func (d *Driver) Thaw(ctx context.Context, id string) error {
	return d.onContainer(ctx, "thaw", id, Unpause)
}

// Kill ends replica id's container at once with SIGKILL, leaving it
// stopped (a crash, for fault tests); Restart brings it back.
func (d *Driver) Kill(ctx context.Context, id string) error {
	return d.onContainer(ctx, "kill", id, Kill)
}

// Disconnect takes replica id off the cluster's network, a partition: its
// peers cannot reach it, nor it them. Its API port is published through
// that network, so from this machine it looks down too. The container
// keeps running; Reconnect undoes it (a Restart does not).
func (d *Driver) Disconnect(ctx context.Context, id string) error {
	return d.onContainer(ctx, "disconnect", id, func(ctx context.Context, cli *client.Client, c string) error {
		_, err := cli.NetworkDisconnect(ctx, d.network(), client.NetworkDisconnectOptions{Container: c, Force: true})
		return err
	})
}

// Reconnect puts replica id back on the cluster's network.
func (d *Driver) Reconnect(ctx context.Context, id string) error {
	return d.onContainer(ctx, "reconnect", id, func(ctx context.Context, cli *client.Client, c string) error {
		_, err := cli.NetworkConnect(ctx, d.network(), client.NetworkConnectOptions{Container: c,
			EndpointConfig: &network.EndpointSettings{Aliases: []string{d.ContainerName(id)}}})
		return err
	})
}
