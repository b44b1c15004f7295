package docker

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
)

// BuildPerRelease is the build of a cluster whose service has a program of
// its own for each release (etcd: one static binary per release, in
// ladder's release cache). Each release's image is then named by the
// binary it holds, ladder-SERVICE:VERSION-BUILD with BUILD the binary's
// BuildID, so that two clusters never retag each other's images; it is
// built FROM scratch from the cached binary the first time a replica of
// the release starts, and found again after.
const BuildPerRelease = "per-release"

// imageFor returns the image reference of release a: the cluster's build
// of it, or, for BuildPerRelease, the image of a's own binary, built now
// if it is not there.
func (d *Driver) imageFor(ctx context.Context, a driver.Artifact) (string, error) {
	if d.build != BuildPerRelease {
		return ImageRef(d.svc.Name(), a.Version, d.build), nil
	}
	start := time.Now()
	imgs, err := BuildImages(ctx, d.cli, d.svc, a.Binary, []string{a.Version}, nil)
	if err != nil {
		return "", fmt.Errorf("image of %s %s: %w", d.svc.Name(), a.Version, err)
	}
	if !imgs[0].Cached {
		d.opts.Logger.Info("image built", "image", imgs[0].Ref, "from", a.Binary, "seconds", time.Since(start).Seconds())
	}
	return imgs[0].Ref, nil
}

// ImageOf returns the image reference release version runs from in this
// cluster, building it first for a cluster of BuildPerRelease.
func (d *Driver) ImageOf(ctx context.Context, version string) (string, error) {
	a, err := d.svc.Artifact(version)
	if err != nil {
		return "", err
	}
	return d.imageFor(ctx, a)
}

// DataDir returns the folder on this machine that holds replica id's data
// volume, and whether this process can read it: only with the engine on
// this machine and the rights to read its volumes (root, usually).
func (d *Driver) DataDir(ctx context.Context, id string) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if d.adopted != nil {
		return d.adoptedDataDir(ctx, id)
	}
	res, err := d.cli.VolumeInspect(ctx, d.dataVolume(id), client.VolumeInspectOptions{})
	if err != nil || res.Volume.Mountpoint == "" {
		return "", false
	}
	dir := res.Volume.Mountpoint
	if _, err := os.ReadDir(filepath.Join(dir, "member")); err != nil {
		return dir, false
	}
	return dir, true
}
