package swarm

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/poll"
)

// RunJob implements driver.Driver: a Swarm job (one task, never
// restarted) of version's image on the cluster's network, on this
// engine's node, runs the service's job command line. The service is
// removed once its output is collected.
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
	// The job gets the secrets the service says a job needs (ladder's
	// client certificate for the store), as the task's user's files.
	if err := d.resolveSecrets(ctx); err != nil {
		return nil, fmt.Errorf("run job %s: %w", job.Name, err)
	}
	job.Secrets = map[string]string{}
	var secrets []*swarm.SecretReference
	owner := strconv.Itoa(docker.ContainerUID)
	for _, s := range slices.Sorted(maps.Keys(d.secrets)) {
		if sc, ok := d.svc.(driver.SecretScoper); ok && !sc.JobSecret(s) {
			continue
		}
		job.Secrets[s] = secretsPath + "/" + s
		secrets = append(secrets, &swarm.SecretReference{SecretName: d.secretName(s), SecretID: d.secrets[s],
			File: &swarm.SecretReferenceFileTarget{Name: s, UID: owner, GID: owner, Mode: 0o400}})
	}
	name := fmt.Sprintf("ladder-%s-job-%s-%d", d.name, docker.JobSlug(job.Name), time.Now().UnixNano()%1e6)
	one := uint64(1)
	created, err := d.cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: d.labels(map[string]string{LabelJob: job.Name, LabelRelease: v})},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: d.image(v), Command: []string{"/" + a.Program},
				Args: d.svc.JobCommand(a, job, d.members(ids)), Labels: d.labels(map[string]string{LabelJob: job.Name}),
				Secrets: secrets},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			Placement:     &swarm.Placement{Constraints: []string{"node.id==" + d.self}},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: d.network()}},
		},
		Mode: swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: &one, TotalCompletions: &one}},
	}})
	if err != nil {
		return nil, fmt.Errorf("run job %s of release %s: create service: %w", job.Name, v, err)
	}
	defer d.removeJob(context.WithoutCancel(ctx), created.ID)
	var done swarm.Task
	err = poll.Until(ctx, 250*time.Millisecond, func() (bool, error) {
		tasks, err := d.tasks(ctx, created.ID)
		if err != nil {
			return false, err
		}
		for _, t := range tasks {
			switch t.Status.State {
			case swarm.TaskStateComplete, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateShutdown:
				done = t
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		out, _ := d.serviceLogs(context.WithoutCancel(ctx), created.ID, "all")
		return out, fmt.Errorf("run job %s of release %s: %w", job.Name, v, err)
	}
	out, err := d.jobLogs(ctx, created.ID, done)
	if err != nil {
		return nil, fmt.Errorf("run job %s of release %s: %w", job.Name, v, err)
	}
	if done.Status.State != swarm.TaskStateComplete {
		return out, fmt.Errorf("run job %s of release %s: %s: %s", job.Name, v, taskError(done), home.Tail(out, 10))
	}
	return out, nil
}

// jobLogs reads a finished job's output. The service log reaches the
// manager a moment after the task ends, so an empty log is read again
// briefly before it is taken as empty.
func (d *Driver) jobLogs(ctx context.Context, service string, t swarm.Task) ([]byte, error) {
	var out []byte
	err := poll.For(ctx, 3*time.Second, 200*time.Millisecond, func() (bool, error) {
		var err error
		out, err = d.serviceLogs(ctx, service, "all")
		return err == nil && len(out) > 0, err
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return out, nil
	}
	return out, err
}

// resolveSecrets finds the swarm's id of each of the cluster's secrets that
// the driver does not know yet: a driver opened on an existing cluster
// knows only their names, and a service that references a secret needs
// its id too.
func (d *Driver) resolveSecrets(ctx context.Context) error {
	missing := false
	for _, id := range d.secrets {
		missing = missing || id == ""
	}
	if !missing {
		return nil
	}
	f := make(client.Filters).Add("label", LabelCluster+"="+d.name)
	res, err := d.cli.SecretList(ctx, client.SecretListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("list secrets: %w", err)
	}
	for _, sec := range res.Items {
		for name, id := range d.secrets {
			if id == "" && sec.Spec.Name == d.secretName(name) {
				d.secrets[name] = sec.ID
			}
		}
	}
	for name, id := range d.secrets {
		if id == "" {
			return fmt.Errorf("secret %s is missing from the swarm (recreate the cluster)", d.secretName(name))
		}
	}
	return nil
}
