// Package swarmtest gives tests a Docker Swarm to run services on: the
// engine the environment names, made a one-node swarm when it is in none.
// A test process that made the swarm leaves it when its tests end (call
// Leave from TestMain, after m.Run), and removes the docker_gwbridge
// network that swarm init created, so the engine is left as it was found.
package swarmtest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/dockertest"
)

var (
	once           sync.Once
	err            error
	started        bool
	gwbridgeBefore bool
)

// Engine returns a client of a swarm manager, initialising a one-node
// swarm (advertised on 127.0.0.1) if the engine is in none. It skips the
// test when no engine answers, and fails instead with
// LADDER_REQUIRE_DOCKER=1.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli := dockertest.Engine(t)
	once.Do(func() { err = ensure(cli) })
	if err != nil {
		t.Fatalf("swarm: %v", err)
	}
	return cli
}

func ensure(cli *client.Client) error {
	ctx := context.Background()
	info, err := cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return err
	}
	switch info.Info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateActive:
		if !info.Info.Swarm.ControlAvailable {
			return fmt.Errorf("the engine is a swarm worker, not a manager")
		}
		return nil
	case swarm.LocalNodeStateInactive:
	default:
		return fmt.Errorf("the engine's swarm state is %q", info.Info.Swarm.LocalNodeState)
	}
	_, err = cli.NetworkInspect(ctx, "docker_gwbridge", client.NetworkInspectOptions{})
	gwbridgeBefore = err == nil
	if _, err := cli.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1"}); err != nil {
		return fmt.Errorf("docker swarm init: %w", err)
	}
	started = true
	return nil
}

// Leave leaves the swarm if this process made it, and reports whether it
// failed to (the message says what to run); call it from TestMain.
func Leave() bool {
	if !started {
		return true
	}
	if err := leave(); err != nil {
		fmt.Fprintf(os.Stderr, "leave the swarm the tests started: %v (run: docker swarm leave --force)\n", err)
		return false
	}
	return true
}

func leave() error {
	cli, err := docker.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
		return err
	}
	if !gwbridgeBefore {
		if _, err := cli.NetworkRemove(ctx, "docker_gwbridge", client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove docker_gwbridge, made by swarm init: %w", err)
		}
	}
	return nil
}
