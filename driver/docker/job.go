package docker

import (
	"context"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
)

// RunJob implements driver.Driver: a one-off container of version's image
// on the cluster's network runs the service's job command line. The
// container is removed once its output is collected.
func (d *Driver) RunJob(ctx context.Context, version string, job driver.Job) ([]byte, error) {
	a, err := d.artifact(ctx, version)
	if err != nil {
		return nil, err
	}
	reps, err := d.replicas(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.ID
	}
	v := a.Version
	job.Secrets = d.secretFiles()
	image, err := d.imageFor(ctx, a)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("ladder-%s-job-%s-%s", d.name, JobSlug(job.Name), randomHex(3))
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:      image,
			Entrypoint: []string{"/" + a.Program},
			Cmd:        d.svc.JobCommand(a, job, d.members(ids)),
			Labels:     d.labels(map[string]string{LabelJob: job.Name, LabelRelease: v}),
		},
		HostConfig: hardened(&container.HostConfig{NetworkMode: container.NetworkMode(d.network())}),
	})
	if err != nil {
		return nil, fmt.Errorf("run job %s of release %s: create container: %w", job.Name, v, err)
	}
	defer func() {
		if _, err := d.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			d.opts.Logger.Warn("remove job container", "job", job.Name, "container", name, "err", err)
		}
	}()
	// The job opens the store with ladder's client certificate.
	if err := d.copySecrets(ctx, created.ID, func(name string) bool {
		s, ok := d.svc.(driver.SecretScoper)
		return !ok || s.JobSecret(name)
	}); err != nil {
		return nil, fmt.Errorf("run job %s of release %s: %w", job.Name, v, err)
	}
	wait := d.cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return nil, fmt.Errorf("run job %s of release %s: start: %w", job.Name, v, err)
	}
	var code int64
	select {
	case res := <-wait.Result:
		code = res.StatusCode
		if res.Error != nil && res.Error.Message != "" {
			return nil, fmt.Errorf("run job %s of release %s: %s", job.Name, v, res.Error.Message)
		}
	case err := <-wait.Error:
		if ctx.Err() != nil {
			grace := d.graceSeconds()
			_, _ = d.cli.ContainerStop(context.WithoutCancel(ctx), created.ID, client.ContainerStopOptions{Timeout: &grace})
			out, _ := d.logs(context.WithoutCancel(ctx), created.ID, "all")
			return out, fmt.Errorf("run job %s of release %s: %w", job.Name, v, ctx.Err())
		}
		return nil, fmt.Errorf("run job %s of release %s: wait: %w", job.Name, v, err)
	}
	out, err := d.logs(ctx, created.ID, "all")
	if err != nil {
		return nil, fmt.Errorf("run job %s of release %s: %w", job.Name, v, err)
	}
	if code != 0 {
		return out, fmt.Errorf("run job %s of release %s: exit status %d: %s", job.Name, v, code, home.Tail(out, 10))
	}
	return out, nil
}

// JobSlug makes a job name fit the name of a container, or of the Swarm
// service the swarm driver runs a job as: lower case letters, digits and
// '-', at most 20 of them.
func JobSlug(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		s = "job"
	}
	if len(s) > 20 {
		s = s[:20]
	}
	return s
}
