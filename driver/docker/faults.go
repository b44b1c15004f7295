package docker

import (
	"context"
	"fmt"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// onContainer runs act on replica id's container under the driver's lock,
// so a fault never lands on a container a Replace or Restart is swapping.
func (d *Driver) onContainer(ctx context.Context, verb, id string, act func(container string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if err := act(r.Container); err != nil {
		return fmt.Errorf("%s %s: %w", verb, id, err)
	}
	return nil
}

// Freeze implements driver.Freezer with docker pause.
func (d *Driver) Freeze(ctx context.Context, id string) error {
	return d.onContainer(ctx, "freeze", id, func(c string) error {
		_, err := d.cli.ContainerPause(ctx, c, client.ContainerPauseOptions{})
		return err
	})
}

// Thaw implements driver.Freezer with docker unpause.
func (d *Driver) Thaw(ctx context.Context, id string) error {
	return d.onContainer(ctx, "thaw", id, func(c string) error {
		_, err := d.cli.ContainerUnpause(ctx, c, client.ContainerUnpauseOptions{})
		return err
	})
}

// Kill ends replica id's container at once with SIGKILL, leaving it
// stopped (a crash, for fault tests); Restart brings it back.
func (d *Driver) Kill(ctx context.Context, id string) error {
	return d.onContainer(ctx, "kill", id, func(c string) error {
		_, err := d.cli.ContainerKill(ctx, c, client.ContainerKillOptions{Signal: "KILL"})
		return err
	})
}

// Disconnect takes replica id off the cluster's network, a partition: its
// peers cannot reach it, nor it them. Its API port is published through
// that network, so from this machine it looks down too. The container
// keeps running; Reconnect undoes it (a Restart does not).
func (d *Driver) Disconnect(ctx context.Context, id string) error {
	return d.onContainer(ctx, "disconnect", id, func(c string) error {
		_, err := d.cli.NetworkDisconnect(ctx, d.network(), client.NetworkDisconnectOptions{Container: c, Force: true})
		return err
	})
}

// Reconnect puts replica id back on the cluster's network.
func (d *Driver) Reconnect(ctx context.Context, id string) error {
	return d.onContainer(ctx, "reconnect", id, func(c string) error {
		_, err := d.cli.NetworkConnect(ctx, d.network(), client.NetworkConnectOptions{Container: c,
			EndpointConfig: &network.EndpointSettings{Aliases: []string{d.ContainerName(id)}}})
		return err
	})
}
