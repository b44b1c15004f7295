// Package dockertest gives tests a Docker Engine, and the reference
// registry's release images built on it, for the docker and swarm drivers'
// tests.
package dockertest

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/service"
)

// Engine returns a client of the engine the environment names, or skips
// the test when none answers (fails instead with LADDER_REQUIRE_DOCKER=1).
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := docker.NewClient()
	if err == nil {
		err = docker.Ping(context.Background(), cli)
	}
	if err != nil {
		if os.Getenv("LADDER_REQUIRE_DOCKER") == "1" {
			t.Fatalf("docker: %v (LADDER_REQUIRE_DOCKER=1)", err)
		}
		t.Skipf("docker: %v; skipping", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

var (
	imagesOnce  sync.Once
	imagesErr   error
	imagesBuild string
)

// Images builds the release images of versions once per test process,
// from a fresh ladder binary, and returns their build. A test process
// builds one set: later calls return the same build, whatever versions
// they name.
func Images(t testing.TB, cli *client.Client, versions []string) string {
	t.Helper()
	bin := testbin.Ladder(t)
	imagesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		var imgs []docker.Image
		imgs, imagesErr = docker.BuildImages(ctx, cli, service.Registry{}, bin, versions, nil)
		for _, img := range imgs {
			imagesBuild = img.Build
			t.Logf("built %s (%s, %d bytes) in %s", img.Ref, img.ID, img.Size, img.Duration.Round(time.Millisecond))
		}
		t.Logf("images built in %s", time.Since(start).Round(time.Millisecond))
	})
	if imagesErr != nil {
		t.Fatalf("build images: %v", imagesErr)
	}
	return imagesBuild
}
