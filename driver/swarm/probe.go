package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/poll"
)

// The manager can inspect only its own node's images. Whether another node
// holds an image is asked of that node by running a Swarm job there: one
// task of the image that runs `PROGRAM version` and is never restarted. A
// node without the image rejects the task ("No such image").

// probeTimeout bounds one probe.
const probeTimeout = time.Minute

// checkNodesHaveImage checks that every node running a replica, other than
// the manager's own (checked with an image inspect), holds version's image.
func (d *Driver) checkNodesHaveImage(ctx context.Context, a driver.Artifact) error {
	reps, err := d.replicas(ctx)
	if err != nil {
		return err
	}
	var nodes []string
	for _, r := range reps {
		if r.Task != nil && r.Task.NodeID != "" && r.Task.NodeID != d.self && !slices.Contains(nodes, r.Task.NodeID) {
			nodes = append(nodes, r.Task.NodeID)
		}
	}
	for _, n := range nodes {
		if err := d.probeImage(ctx, n, d.image(a.Version), a.Program); err != nil {
			return err
		}
	}
	return nil
}

// probeImage runs `/program version` from image on node as a Swarm job and
// returns an error wrapping driver.ErrNoArtifact when the node does not
// hold the image.
func (d *Driver) probeImage(ctx context.Context, node, image, program string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	one := uint64(1)
	name := fmt.Sprintf("ladder-%s-probe-%d", d.name, time.Now().UnixNano()%1e6)
	created, err := d.cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: d.labels(map[string]string{LabelJob: "probe"})},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: image, Command: []string{"/" + program}, Args: []string{"version"},
				Labels: d.labels(map[string]string{LabelJob: "probe"})},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone},
			Placement:     &swarm.Placement{Constraints: []string{"node.id==" + node}},
		},
		Mode: swarm.ServiceMode{ReplicatedJob: &swarm.ReplicatedJob{MaxConcurrent: &one, TotalCompletions: &one}},
	}})
	if err != nil {
		return fmt.Errorf("check image %s on node %s: %w", image, d.hostname(ctx, node), err)
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
			case swarm.TaskStateComplete, swarm.TaskStateFailed, swarm.TaskStateRejected:
				done = t
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("check image %s on node %s: %w", image, d.hostname(ctx, node), err)
	}
	if done.Status.State == swarm.TaskStateComplete {
		return nil
	}
	why := taskError(done)
	if strings.Contains(strings.ToLower(why), "no such image") {
		return fmt.Errorf("%w: node %s does not hold image %s (copy it there: docker save %s | ssh NODE docker load)",
			driver.ErrNoArtifact, d.hostname(ctx, node), image, image)
	}
	return fmt.Errorf("check image %s on node %s: task %s: %s", image, d.hostname(ctx, node), done.Status.State, why)
}

// removeJob removes a job service and the container the engine leaves
// behind once it has finished.
func (d *Driver) removeJob(ctx context.Context, id string) {
	if _, err := d.cli.ServiceRemove(ctx, id, client.ServiceRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		d.opts.Logger.Warn("remove job service", "service", id, "err", err)
	}
	cs, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", "com.docker.swarm.service.id="+id)})
	if err == nil {
		for _, c := range cs.Items {
			_, _ = d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
}

// hostname names node id by its hostname, or its id when unknown.
func (d *Driver) hostname(ctx context.Context, id string) string {
	n, err := d.cli.NodeInspect(ctx, id, client.NodeInspectOptions{})
	if err != nil || n.Node.Description.Hostname == "" {
		return id
	}
	return n.Node.Description.Hostname
}
