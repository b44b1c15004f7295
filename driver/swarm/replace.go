package swarm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/poll"
)

// Replace implements driver.Driver: the replica's service is updated to
// version's image with stop-first ordering, so the old task has stopped
// and released the data volume before the new one starts, on the same
// node, with the same hostname, volume and published port. Replace returns
// once the new task answers HTTP. If the new task fails or never answers,
// the service is rolled back to its previous spec (the old release) and
// Replace returns why, with the task's log; the replica is then as it was.
func (d *Driver) Replace(ctx context.Context, id, version string) error {
	a, err := d.artifact(ctx, version)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	r, reps, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if err := d.checkNode(ctx, r); err != nil {
		return fmt.Errorf("replace %s: %w", id, err)
	}
	ids := make([]string, len(reps))
	for i, o := range reps {
		ids[i] = o.ID
	}
	spec := r.Service.Spec
	cs := *spec.TaskTemplate.ContainerSpec
	cs.Image = d.image(a.Version)
	cs.Args = d.svc.Command(a, d.placement(id, ids))
	cs.Labels = d.labels(map[string]string{LabelReplica: id, LabelRelease: a.Version})
	spec.TaskTemplate.ContainerSpec = &cs
	spec.Labels = copyLabels(spec.Labels)
	spec.Labels[LabelRelease] = a.Version
	// A new task even when nothing else changed: Replace with the same
	// release restarts the replica, as the other drivers do.
	spec.TaskTemplate.ForceUpdate++
	if err := d.update(ctx, r, spec); err != nil {
		return fmt.Errorf("replace %s: %w", id, err)
	}
	if err := d.waitAnswering(ctx, id, spec.TaskTemplate.ForceUpdate); err != nil {
		return d.rollback(ctx, id, r.Version, err)
	}
	d.opts.Logger.Info("replica replaced", "replica", id, "from", r.Version, "to", a.Version)
	return nil
}

// Restart implements driver.Driver: the service is forced to a new task
// of the same spec (stop-first), and Restart returns once it answers.
func (d *Driver) Restart(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	r, _, err := d.find(ctx, id)
	if err != nil {
		return err
	}
	if err := d.checkNode(ctx, r); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	spec := r.Service.Spec
	spec.TaskTemplate.ForceUpdate++
	if err := d.update(ctx, r, spec); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	if err := d.waitAnswering(ctx, id, spec.TaskTemplate.ForceUpdate); err != nil {
		return fmt.Errorf("restart %s: %w", id, err)
	}
	d.opts.Logger.Info("replica restarted", "replica", id, "release", r.Version)
	return nil
}

// update unpauses the replica's container (a frozen task would not stop
// within its grace) and updates its service to spec.
func (d *Driver) update(ctx context.Context, r replica, spec swarm.ServiceSpec) error {
	if r.Container != "" && r.Task != nil && r.Task.NodeID == d.self {
		if insp, err := d.cli.ContainerInspect(ctx, r.Container, client.ContainerInspectOptions{}); err == nil &&
			insp.Container.State != nil && insp.Container.State.Paused {
			if _, err := d.cli.ContainerUnpause(ctx, r.Container, client.ContainerUnpauseOptions{}); err != nil {
				return fmt.Errorf("unpause: %w", err)
			}
		}
	}
	if _, err := d.cli.ServiceUpdate(ctx, r.Service.ID, client.ServiceUpdateOptions{Version: r.Service.Version, Spec: spec}); err != nil {
		return fmt.Errorf("update service %s: %w", r.Service.Spec.Name, err)
	}
	return nil
}

// rollback puts replica id's service back to its previous spec after a
// failed Replace, waits for it to answer as release from, and returns
// cause with what the rollback could not do.
func (d *Driver) rollback(ctx context.Context, id, from string, cause error) error {
	ctx = context.WithoutCancel(ctx)
	r, _, err := d.find(ctx, id)
	if err != nil {
		return errors.Join(cause, fmt.Errorf("roll back %s: %w", id, err))
	}
	if r.Service.PreviousSpec == nil {
		return errors.Join(cause, fmt.Errorf("roll back %s: the service keeps no previous spec", id))
	}
	prev := *r.Service.PreviousSpec
	prev.TaskTemplate.ForceUpdate = r.Service.Spec.TaskTemplate.ForceUpdate + 1
	if err := d.update(ctx, r, prev); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back %s: %w", id, err))
	}
	if err := d.waitAnswering(ctx, id, prev.TaskTemplate.ForceUpdate); err != nil {
		return errors.Join(cause, fmt.Errorf("roll back %s to %s: %w", id, from, err))
	}
	d.opts.Logger.Warn("replace failed; service rolled back", "replica", id, "release", from)
	return fmt.Errorf("%w (service %s rolled back to release %s)", cause, d.ServiceName(id), from)
}

func copyLabels(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		out[k] = v
	}
	return out
}

// checkNode fails when the node that runs replica r is down or drained.
func (d *Driver) checkNode(ctx context.Context, r replica) error {
	if r.Node == nil {
		return nil
	}
	if w := nodeUp(*r.Node); w != "" {
		return fmt.Errorf("%s: bring it back or move the replica (docker service update --constraint-add)", w)
	}
	return nil
}

// waitAnswering waits until replica id's current task, of the spec whose
// ForceUpdate is force (any, if 0), runs and answers HTTP on the health
// path (any status). It fails at once, with the task's error and log, if
// the task fails or is rejected (a node without the image, a port taken).
func (d *Driver) waitAnswering(ctx context.Context, id string, force uint64) error {
	hc := &http.Client{Timeout: time.Second}
	var last string
	err := poll.For(ctx, d.opts.StartTimeout, 250*time.Millisecond, func() (bool, error) {
		r, _, err := d.find(ctx, id)
		if err != nil {
			return false, err
		}
		tasks, err := d.tasks(ctx, r.Service.ID)
		if err != nil {
			return false, err
		}
		portConflicts := 0
		for _, t := range tasks {
			if force != 0 && t.Spec.ForceUpdate != force {
				continue
			}
			switch t.Status.State {
			case swarm.TaskStateFailed, swarm.TaskStateRejected:
				// A container of an earlier task that was started again
				// behind the swarm's back (docker restart) holds the
				// published port: it is removed, and the swarm's next
				// attempt gets the port. Any other failure is the new
				// release's, and ends the wait.
				if portTaken(taskError(t)) && portConflicts < maxPortConflicts {
					portConflicts++
					if err := d.removeStrays(ctx, r); err != nil {
						return false, err
					}
					continue
				}
				return false, fmt.Errorf("start %s: task %s %s: %s; last lines of its log (docker service logs %s):\n%s",
					id, shortID(t.ID), t.Status.State, taskError(t), d.ServiceName(id), d.LogTail(context.WithoutCancel(ctx), id, 15))
			}
		}
		if r.Task == nil || (force != 0 && r.Task.Spec.ForceUpdate != force) {
			last = "no task of the new spec yet"
			return false, nil
		}
		if r.Task.Status.State != swarm.TaskStateRunning {
			last = "task " + string(r.Task.Status.State)
			return false, nil
		}
		// Whether the task answers at all, as the docker driver asks: in
		// plain HTTP, which an HTTPS API answers too (with a 400), so this
		// probe needs no certificate; the engine's health gates then check
		// the replica over verified TLS.
		probe := "http://" + strings.TrimPrefix(strings.TrimPrefix(d.url(r), "https://"), "http://")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, probe+d.svc.HealthPath(), nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		return true, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("start %s: no HTTP answer after %s (%s); last lines of its log (docker service logs %s):\n%s",
			id, d.opts.StartTimeout, last, d.ServiceName(id), d.LogTail(context.WithoutCancel(ctx), id, 15))
	}
	return err
}

func taskError(t swarm.Task) string {
	msg := t.Status.Err
	if msg == "" {
		msg = t.Status.Message
	}
	if t.Status.ContainerStatus != nil && t.Status.ContainerStatus.ExitCode != 0 {
		msg += " (exit status " + strconv.Itoa(t.Status.ContainerStatus.ExitCode) + ")"
	}
	return msg
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// LogTail implements driver.LogTailer: the last n lines of replica id's
// service log.
func (d *Driver) LogTail(ctx context.Context, id string, n int) string {
	out, err := d.serviceLogs(ctx, d.ServiceName(id), strconv.Itoa(n))
	if err != nil {
		return ""
	}
	return home.Tail(out, n)
}

func (d *Driver) serviceLogs(ctx context.Context, service, tail string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := d.cli.ServiceLogs(ctx, service, client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Tail: tail})
	if err != nil {
		return nil, fmt.Errorf("read logs of %s: %w", service, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.Bytes(), fmt.Errorf("read logs of %s: %w", service, err)
	}
	return buf.Bytes(), nil
}

// waitNoContainers waits until no container of the cluster is left on
// this node, once its services are removed. The engine removes the
// containers of a removed service on its own, but not always those of a
// finished job: a container that has exited is removed here.
func (d *Driver) waitNoContainers(ctx context.Context) error {
	f := make(client.Filters).Add("label", LabelCluster+"="+d.name)
	err := poll.For(ctx, time.Minute, 250*time.Millisecond, func() (bool, error) {
		cs, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
		if err != nil {
			return false, fmt.Errorf("list containers of cluster %s: %w", d.name, err)
		}
		for _, c := range cs.Items {
			if c.State == container.StateExited || c.State == container.StateCreated || c.State == container.StateDead {
				_, _ = d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
			}
		}
		return len(cs.Items) == 0, nil
	})
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("containers of cluster %s are still there a minute after their services were removed (docker ps --filter label=%s=%s)", d.name, LabelCluster, d.name)
	}
	return err
}

// maxPortConflicts is how many new tasks may fail on a taken port, while
// strays are removed, before a start is a failure.
const maxPortConflicts = 3

// portTaken reports whether a task failed because its published port was
// taken. The engine says so only in the message.
func portTaken(msg string) bool {
	return strings.Contains(msg, "port is already allocated") || strings.Contains(msg, "address already in use")
}

// removeStrays removes the running containers of replica r's service on
// this node that belong to no task the swarm means to run.
func (d *Driver) removeStrays(ctx context.Context, r replica) error {
	tasks, err := d.tasks(ctx, r.Service.ID)
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, t := range tasks {
		if t.DesiredState == swarm.TaskStateRunning {
			wanted[t.ID] = true
		}
	}
	cs, err := d.cli.ContainerList(ctx, client.ContainerListOptions{
		Filters: make(client.Filters).Add("label", "com.docker.swarm.service.id="+r.Service.ID)})
	if err != nil {
		return fmt.Errorf("list containers of %s: %w", r.Service.Spec.Name, err)
	}
	for _, c := range cs.Items {
		if wanted[c.Labels["com.docker.swarm.task.id"]] {
			continue
		}
		if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return fmt.Errorf("remove stray container %s of %s: %w", shortID(c.ID), r.Service.Spec.Name, err)
		}
		d.opts.Logger.Warn("removed a container of an earlier task that held the replica's port", "replica", r.ID, "container", shortID(c.ID))
	}
	return nil
}
