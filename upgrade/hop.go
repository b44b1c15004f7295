package upgrade

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/plan"
)

// hop runs the steps of hop h (index i of the plan).
func (u *upgradeRun) hop(ctx context.Context, i int, h plan.Hop) error {
	start := time.Now()
	if finalize := HopStep(h, StepFinalize).String(); u.state.IsDone(finalize) {
		u.emit(Event{Type: EventStepSkip, Step: finalize, Hop: h.ID(), Message: "hop done earlier"})
		return nil
	}
	u.emit(Event{Type: EventHopStart, Hop: h.ID(), Message: fmt.Sprintf("hop %d of %d: %s → %s", i+1, len(u.plan.Hops), h.From, h.To),
		Fields: map[string]any{"index": i + 1, "of": len(u.plan.Hops), "from": h.From.String(), "to": h.To.String(),
			"migrates": h.Migrates, "from_schema": h.FromSchema, "to_schema": h.ToSchema}})
	for _, ref := range HopSteps(h, nil) {
		var err error
		if ref.Name == StepRoll {
			err = u.roll(ctx, h)
		} else {
			err = u.step(ctx, ref, u.act(h, ref))
		}
		if err != nil {
			return err
		}
	}
	u.emit(Event{Type: EventHopDone, Hop: h.ID(), Message: fmt.Sprintf("%s runs %s", u.drv.Cluster(), h.To),
		Fields: map[string]any{"duration": time.Since(start), "version": h.To.String()}})
	return nil
}

// roll chooses (or reads back) the hop's roll order and runs the roll's
// steps.
func (u *upgradeRun) roll(ctx context.Context, h plan.Hop) error {
	order, err := u.rollOrder(ctx, h)
	if err != nil {
		return &StepError{Step: HopStep(h, StepRoll).String(), Err: err, Hint: u.hint(err)}
	}
	for _, ref := range RollSteps(h, order) {
		if err := u.step(ctx, ref, u.act(h, ref)); err != nil {
			return err
		}
	}
	return nil
}

// act is what step ref of hop h does.
func (u *upgradeRun) act(h plan.Hop, ref StepRef) stepAct {
	switch ref.Name {
	case StepPreflight:
		return func(ctx context.Context) (map[string]any, error) { return u.preflight(ctx, h) }
	case StepBackup:
		return func(ctx context.Context) (map[string]any, error) { return u.backup(ctx, h) }
	case StepReplace:
		return func(ctx context.Context) (map[string]any, error) { return u.replace(ctx, h, ref.Replica) }
	case StepWait:
		return func(ctx context.Context) (map[string]any, error) { return u.waitReplica(ctx, h, ref.Replica) }
	case StepMigrate:
		return func(ctx context.Context) (map[string]any, error) { return u.migrate(ctx, h) }
	case StepFinalize:
		return func(ctx context.Context) (map[string]any, error) { return u.finalize(ctx, h) }
	}
	return func(context.Context) (map[string]any, error) {
		return nil, fmt.Errorf("run step %s: no such step", ref)
	}
}

// preflight checks the cluster can take the hop.
func (u *upgradeRun) preflight(ctx context.Context, h plan.Hop) (map[string]any, error) {
	reps, err := u.drv.Replicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	if len(reps) == 0 {
		return nil, fmt.Errorf("list replicas: %w: the cluster has none", driver.ErrNoReplica)
	}
	onTo := 0
	for _, r := range reps {
		switch {
		case sameVersion(r.Version, h.To):
			onTo++
		case sameVersion(r.Version, h.From):
		default:
			return nil, fmt.Errorf("%w: %s runs %s, expected %s or %s", ErrUnexpectedVersion, r.ID, r.Version, h.From, h.To)
		}
	}
	if ac, ok := u.drv.(driver.ArtifactChecker); ok {
		if err := ac.CheckArtifact(ctx, h.To.String()); err != nil {
			return nil, fmt.Errorf("check artifact of %s: %w", h.To, err)
		}
	}
	st, err := u.timedWait(ctx, HopStep(h, StepPreflight), CategorySettle, settledGate())
	if err != nil {
		return nil, err
	}
	if st.SchemaVersion != 0 && h.FromSchema != 0 && st.SchemaVersion > h.FromSchema {
		_, migrationRan := u.state.Started[HopStep(h, StepMigrate).String()]
		if !migrationRan || (h.ToSchema != 0 && st.SchemaVersion > h.ToSchema) {
			return nil, fmt.Errorf("%w: the store has schema %d, newer than %s knows (%d)", ErrSchemaTooNew, st.SchemaVersion, h.From, h.FromSchema)
		}
	}
	out := map[string]any{"replicas": len(reps), "on_to": onTo, "leader": st.Leader(), "schema": st.SchemaVersion}
	if hp, ok := u.app.(HopPreparer); ok {
		did, err := hp.PrepareHop(ctx, h, reps)
		if err != nil {
			return nil, err
		}
		for k, v := range did {
			out[k] = v
		}
	}
	return out, nil
}

// BackupName is the file name of hop h's backup in the backup directory.
func BackupName(h plan.Hop) string {
	return "hop-" + h.From.String() + "-to-" + h.To.String() + ".snapshot"
}

func (u *upgradeRun) backupDir() string {
	if u.opts.BackupDir != "" {
		return u.opts.BackupDir
	}
	return filepath.Join(u.j.Dir(), "backups")
}

// backup waits for the store to settle (a replica that went down since the
// preflight is named and repaired there), then writes a snapshot via a
// healthy replica, the leader first, trying the next if one fails: to a
// temporary file, synced, then renamed into place.
func (u *upgradeRun) backup(ctx context.Context, h plan.Hop) (map[string]any, error) {
	st, err := u.timedWait(ctx, HopStep(h, StepBackup), CategorySettle, settledGate())
	if err != nil {
		return nil, err
	}
	defer u.timer.since(CategoryBackup, time.Now())
	// Taking a backup changes nothing: it is one action, that an
	// interruption lets finish.
	ctx, done := u.actionContext(ctx)
	defer done()
	reps, err := u.drv.Replicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	dir := u.backupDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("take backup: %w", err)
	}
	defer u.watch(ctx, "")()
	var errs []error
	for _, via := range healthyFirst(st, reps) {
		n, err := u.backupVia(ctx, via, dir, BackupName(h))
		if err == nil {
			return map[string]any{"path": filepath.Join(dir, BackupName(h)), "bytes": n, "via": via.ID}, nil
		}
		errs = append(errs, fmt.Errorf("via %s: %w", via.ID, err))
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("take backup: no healthy replica")
	}
	return nil, fmt.Errorf("take backup: %w", errors.Join(errs...))
}

// backupVia writes the snapshot that replica via serves to dir/name.
func (u *upgradeRun) backupVia(ctx context.Context, via driver.Replica, dir, name string) (int64, error) {
	f, err := os.CreateTemp(dir, name+".tmp.*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, a no-op
	cw := &countWriter{w: f}
	err = u.app.Backup(ctx, via, cw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		return 0, err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return cw.n, nil
}

type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// healthyFirst lists the healthy replicas, the leader first.
func healthyFirst(st Status, reps []driver.Replica) []driver.Replica {
	var out []driver.Replica
	for _, r := range reps {
		rs, ok := st.Replica(r.ID)
		switch {
		case !ok || !rs.Healthy:
		case rs.Leader:
			out = append([]driver.Replica{r}, out...)
		default:
			out = append(out, r)
		}
	}
	return out
}

// rollOrder returns the journaled roll order of h, or chooses one
// (followers first, leader last) and journals it.
func (u *upgradeRun) rollOrder(ctx context.Context, h plan.Hop) ([]string, error) {
	note := HopStep(h, StepRoll)
	if rec, ok := u.state.LastNote(note.String()); ok {
		var d struct {
			Order []string `json:"order"`
		}
		if err := rec.Decode(&d); err == nil && len(d.Order) > 0 {
			return d.Order, nil
		}
	}
	reps, err := u.drv.Replicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.ID
	}
	st, err := u.app.Status(ctx, reps)
	if err != nil {
		return nil, fmt.Errorf("probe cluster: %w", err)
	}
	order := RollOrder(st, ids)
	if err := u.note(note, map[string]any{"order": order, "leader": st.Leader()}); err != nil {
		return nil, err
	}
	u.state = u.j.State()
	u.emit(Event{Type: EventNote, Hop: h.ID(), Message: "roll order: " + strings.Join(order, ", "),
		Fields: map[string]any{"order": order, "leader": st.Leader()}})
	return order, nil
}

// replace waits for the store to settle, then replaces replica id with TO
// unless it already runs TO and is healthy.
func (u *upgradeRun) replace(ctx context.Context, h plan.Hop, id string) (map[string]any, error) {
	step := RollStep(h, id, StepReplace)
	st, err := u.timedWait(ctx, step, CategorySettle, settledGate())
	if err != nil {
		return nil, err
	}
	reps, err := u.drv.Replicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	var rep *driver.Replica
	for i := range reps {
		if reps[i].ID == id {
			rep = &reps[i]
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("replace %s: %w", id, driver.ErrNoReplica)
	}
	if rs, ok := st.Replica(id); ok && sameVersion(rep.Version, h.To) && rs.Healthy && rs.UI {
		u.emit(Event{Type: EventNote, Step: step.String(), Message: fmt.Sprintf("%s already runs %s: not replaced", id, h.To)})
		return map[string]any{"replaced": false}, nil
	}
	defer u.timer.since(CategoryRestart, time.Now())
	actx, done := u.actionContext(ctx)
	defer done()
	delete(u.up, id)
	defer u.watch(actx, id)()
	if err := u.drv.Replace(actx, id, h.To.String()); err != nil {
		return nil, fmt.Errorf("replace %s with %s: %w", id, h.To, err)
	}
	return map[string]any{"replaced": true, "from": rep.Version, "to": h.To.String()}, nil
}

// waitReplica waits for replica id to answer on TO, then for the store to
// settle.
func (u *upgradeRun) waitReplica(ctx context.Context, h plan.Hop, id string) (map[string]any, error) {
	step := RollStep(h, id, StepWait)
	if _, err := u.timedWait(ctx, step, CategoryRestart, replicaGate(id, h.To)); err != nil {
		return nil, err
	}
	if _, err := u.timedWait(ctx, step, CategorySettle, settledGate()); err != nil {
		return nil, err
	}
	return nil, nil
}

// migrate runs TO's migration job unless the store already has ToSchema,
// waits for the store to settle and verifies the schema.
func (u *upgradeRun) migrate(ctx context.Context, h plan.Hop) (map[string]any, error) {
	step := HopStep(h, StepMigrate)
	st, err := u.timedWait(ctx, step, CategorySettle, settledGate())
	if err != nil {
		return nil, err
	}
	out := map[string]any{"from_schema": st.SchemaVersion, "to_schema": h.ToSchema}
	if f, ok := u.app.(HopFinisher); ok {
		// The replicas migrate the store themselves: wait for them.
		if _, err := u.timedWait(ctx, step, CategoryMigration, finishedGate(f, h)); err != nil {
			return nil, err
		}
		out["job"] = false
		return out, nil
	}
	if h.ToSchema != 0 && st.SchemaVersion >= h.ToSchema {
		u.emit(Event{Type: EventNote, Step: step.String(), Message: fmt.Sprintf("store already has schema %d: migration not run", st.SchemaVersion)})
		out["job"] = false
	} else {
		start := time.Now()
		job := u.app.MigrateJob(h.ToSchema)
		actx, done := u.actionContext(ctx)
		stop := u.watch(actx, "")
		output, err := u.drv.RunJob(actx, h.To.String(), job)
		stop()
		done()
		u.timer.since(CategoryMigration, start)
		if err != nil {
			return nil, fmt.Errorf("run migration job of %s to schema %d: %w%s", h.To, h.ToSchema, err, tail(output))
		}
		out["job"] = true
		u.log.Debug("migration job output", "step", step.String(), "output", string(output))
	}
	st, err = u.timedWait(ctx, step, CategorySettle, settledGate())
	if err != nil {
		return nil, err
	}
	switch {
	case h.ToSchema == 0:
	case st.SchemaVersion == 0:
		u.emit(Event{Type: EventNote, Step: step.String(), Message: "the cluster does not report its schema: migration not verified"})
	case st.SchemaVersion != h.ToSchema:
		return nil, fmt.Errorf("%w: the store has schema %d after the migration, want %d", ErrSchemaMismatch, st.SchemaVersion, h.ToSchema)
	}
	return out, nil
}

// tail returns the last lines of a job's output, for an error message.
func tail(output []byte) string {
	s := strings.TrimSpace(string(output))
	if s == "" {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

// finalize waits for the store to settle and checks every replica runs
// TO; the done record marks the hop. A hop is not done with a replica
// down, whatever happened to it after its roll.
func (u *upgradeRun) finalize(ctx context.Context, h plan.Hop) (map[string]any, error) {
	if _, err := u.timedWait(ctx, HopStep(h, StepFinalize), CategorySettle, settledGate()); err != nil {
		return nil, err
	}
	if f, ok := u.app.(HopFinisher); ok {
		if _, err := u.timedWait(ctx, HopStep(h, StepFinalize), CategorySettle, finishedGate(f, h)); err != nil {
			return nil, err
		}
	}
	reps, err := u.drv.Replicas(ctx)
	if err != nil {
		return nil, fmt.Errorf("list replicas: %w", err)
	}
	var behind []string
	for _, r := range reps {
		if !sameVersion(r.Version, h.To) {
			behind = append(behind, r.ID+" on "+r.Version)
		}
	}
	if len(behind) > 0 {
		return nil, fmt.Errorf("finalize %s: %w: %s", h.ID(), ErrUnexpectedVersion, strings.Join(behind, ", "))
	}
	if u.lastHop(h) {
		// Nothing looks at the cluster after the last hop: before calling
		// the upgrade done, check it is still settled a moment later, so
		// that a replica that froze or died as the roll ended is named
		// and repaired now rather than found by the operator.
		select {
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-time.After(finalHoldPolls * u.opts.PollInterval):
		}
		if _, err := u.timedWait(ctx, HopStep(h, StepFinalize), CategorySettle, settledGate()); err != nil {
			return nil, err
		}
	}
	return map[string]any{"version": h.To.String()}, nil
}

// finalHoldPolls is how long, in probe intervals, the cluster must still
// be settled after the last hop settles for the upgrade to be done (250 ms
// at the default interval: long enough for a replica that froze or died
// as the roll ended to show, short next to a hop).
const finalHoldPolls = 5

// lastHop reports whether h is the plan's last hop.
func (u *upgradeRun) lastHop(h plan.Hop) bool {
	return len(u.plan.Hops) > 0 && u.plan.Hops[len(u.plan.Hops)-1].ID() == h.ID()
}
