package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Replace implements driver.Driver.
//
// A replica's data volume can be used by only one store member at a time,
// so the new container cannot start before the old one has stopped: the
// replacement is stop, then start a new container of the new image with
// the same name, volume, port and identity. The old container is not
// removed at once but renamed aside (NAME-replaced), stopped, with its
// configuration intact: if the new container fails to start, it is
// removed and the old one is renamed back and started again, so a failed
// Replace leaves the replica as it was. Only once the new container runs
// is the old one removed: Replace returns then, and waiting for the
// replica to serve is the caller's job. (Updating a container's image in
// place is not something the engine can do; a container is immutable but
// for its name.)
func (d *Driver) Replace(ctx context.Context, id, version string) error {
	a, err := d.artifact(ctx, version)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.adopted != nil {
		return d.replaceAdopted(ctx, id, a)
	}
	if err := d.recoverReplaced(ctx, id); err != nil {
		return err
	}
	old, reps, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	var ids []string
	for _, r := range reps {
		ids = append(ids, r.ID)
	}
	if err := d.stop(ctx, old); err != nil {
		return err
	}
	aside := d.ContainerName(id) + replacedSuffix
	if _, err := d.cli.ContainerRename(ctx, old.Container, client.ContainerRenameOptions{NewName: aside}); err != nil {
		return d.rollback(ctx, old, "", fmt.Errorf("replace %s: rename the old container: %w", id, err))
	}
	if err := d.start(ctx, replica{ID: id, Version: a.Version, Port: old.Port}, ids); err != nil {
		return d.rollback(ctx, old, aside, err)
	}
	if _, err := d.cli.ContainerRemove(ctx, old.Container, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		d.opts.Logger.Warn("remove the replaced container", "replica", id, "container", aside, "err", err)
	}
	d.opts.Logger.Info("replica replaced", "replica", id, "from", old.Version, "to", a.Version)
	return nil
}

// rollback puts the old container of a failed Replace back: the new one
// (if any) is removed, the old one renamed back (if it was renamed) and
// started. It returns cause, with what the rollback could not do.
func (d *Driver) rollback(ctx context.Context, old replica, renamedTo string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	name := d.ContainerName(old.ID)
	if renamedTo != "" {
		if err := d.removeNamed(ctx, name); err != nil {
			return fmt.Errorf("%w (rollback: %v)", cause, err)
		}
		if _, err := d.cli.ContainerRename(ctx, old.Container, client.ContainerRenameOptions{NewName: name}); err != nil {
			return fmt.Errorf("%w (rollback: rename %s back: %v)", cause, renamedTo, err)
		}
	}
	if _, err := d.cli.ContainerStart(ctx, old.Container, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("%w (rollback: start the old container of %s as release %s: %v)", cause, old.ID, old.Version, err)
	}
	d.opts.Logger.Warn("replace failed; old container restarted", "replica", old.ID, "release", old.Version, "err", cause)
	return fmt.Errorf("%w (the replica runs release %s again)", cause, old.Version)
}

// recoverReplaced finishes a Replace that was cut short: an old container
// set aside while no new one exists is renamed back; one set aside next
// to a new container is removed.
func (d *Driver) recoverReplaced(ctx context.Context, id string) error {
	aside := d.ContainerName(id) + replacedSuffix
	old, err := d.cli.ContainerInspect(ctx, aside, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", aside, err)
	}
	_, err = d.cli.ContainerInspect(ctx, d.ContainerName(id), client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		if _, err := d.cli.ContainerRename(ctx, old.Container.ID, client.ContainerRenameOptions{NewName: d.ContainerName(id)}); err != nil {
			return fmt.Errorf("rename %s back: %w", aside, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("inspect %s: %w", d.ContainerName(id), err)
	}
	return d.removeNamed(ctx, aside)
}

// Restart implements driver.Driver with a container restart: same
// container, image, volume and port. It returns once the container runs
// again.
func (d *Driver) Restart(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.recoverReplaced(ctx, id); err != nil {
		return err
	}
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if r.State == container.StatePaused {
		if _, err := d.cli.ContainerUnpause(ctx, r.Container, client.ContainerUnpauseOptions{}); err != nil {
			return fmt.Errorf("restart %s: unpause: %w", id, err)
		}
	}
	grace := d.graceSeconds()
	if _, err := d.cli.ContainerRestart(ctx, r.Container, client.ContainerRestartOptions{Timeout: &grace}); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	d.opts.Logger.Info("replica restarted", "replica", id, "release", r.Version)
	return nil
}
