package upgradetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/upgrade"
)

// Op names an operation for fault injection.
type Op string

// The operations.
const (
	OpReplicas      Op = "replicas"
	OpReplace       Op = "replace"
	OpRestart       Op = "restart"
	OpRunJob        Op = "run-job"
	OpCheckArtifact Op = "check-artifact"
	OpStatus        Op = "status"
	OpBackup        Op = "backup"
)

// Cure says what ends a Stick.
type Cure int

// The cures.
const (
	// CureRestart: restarting the stuck replica itself.
	CureRestart Cure = iota + 1
	// CureRestartAll: restarting every replica (in any order) after it stuck.
	CureRestartAll
	// CureNever: only Unstick.
	CureNever
)

// Tables are the simulated store's tables.
var Tables = []struct{ DB, Name string }{
	{"registry", "repositories"},
	{"registry", "manifests"},
	{"registry", "tags"},
	{"registry", "blob_repository"},
	{"registry", "events"},
	{"registry", "properties"},
}

type replica struct {
	id, version    string
	starting       int  // ticks left before it answers
	frozen         bool // no answers, no progress
	stuck          Cure // answers, applies nothing
	restartedSince map[string]bool
	broken         string // why it cannot start
	applied        []int64
	index          uint64
	restarts       int
}

func (r *replica) answering() bool { return !r.frozen && r.starting == 0 && r.broken == "" }

type fault struct {
	step  string
	op    Op
	err   error
	hang  bool
	times int // 0: forever
}

// Cluster is a simulated cluster. Its exported fields tune the
// simulation; set them before use.
type Cluster struct {
	// StartTicks is how many status probes a replica takes to answer after
	// a start (default 1).
	StartTicks int
	// CatchUp is how many revisions a lagging replica applies per tick (default 2).
	CatchUp int64
	// WritesWhileDown is how many revisions are committed to the events
	// table while a replica restarts (default 3).
	WritesWhileDown int64

	mu         sync.Mutex
	name       string
	cat        *catalog.Catalog
	reps       []*replica
	leader     string
	schema     int
	revision   []int64
	migrations map[int]int
	jobs       int
	ticks      int
	missing    map[string]bool
	faults     []*fault
	backups    int
	rec        record
}

// New returns a settled cluster of n replicas ("replica-1"...) running
// version, with the schema the built-in catalog gives that version.
func New(name, version string, n int) *Cluster {
	c := &Cluster{name: name, cat: catalog.Builtin(), StartTicks: 1, CatchUp: 2, WritesWhileDown: 3,
		migrations: map[int]int{}, missing: map[string]bool{}}
	c.schema = c.knownSchema(version)
	for i := range Tables {
		c.revision = append(c.revision, int64(10*(i+1)))
	}
	for i := 1; i <= n; i++ {
		c.reps = append(c.reps, &replica{id: "replica-" + strconv.Itoa(i), version: version,
			applied: slices.Clone(c.revision), index: 100})
	}
	c.leader = c.reps[0].id
	return c
}

func (c *Cluster) knownSchema(version string) int {
	v, err := policy.Parse(version)
	if err != nil {
		return 0
	}
	s, _ := c.cat.SchemaOf(v)
	return s
}

// App returns the fake application over c.
func (c *Cluster) App() *App { return &App{c: c} }

// --- fault injection and inspection ---

// FailAt makes op fail with err when it runs in step (any step if "");
// times limits how often (0: always).
func (c *Cluster) FailAt(step string, op Op, err error, times int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, &fault{step: step, op: op, err: err, times: times})
}

// HangAt makes op block until its context ends when it runs in step;
// times limits how often (0: always).
func (c *Cluster) HangAt(step string, op Op, times int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = append(c.faults, &fault{step: step, op: op, hang: true, times: times})
}

// ClearFaults removes every fault.
func (c *Cluster) ClearFaults() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.faults = nil
}

// check applies the faults for op in ctx's step.
func (c *Cluster) check(ctx context.Context, op Op) error {
	step := upgrade.StepFromContext(ctx)
	c.mu.Lock()
	var hit *fault
	for _, f := range c.faults {
		if f.op == op && (f.step == "" || f.step == step) && f.times >= 0 {
			hit = f
			if f.times > 0 {
				f.times--
				if f.times == 0 {
					f.times = -1
				}
			}
			break
		}
	}
	c.mu.Unlock()
	if hit == nil {
		return ctx.Err()
	}
	if hit.hang {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	return hit.err
}

// RemoveArtifact makes version's artifact missing.
func (c *Cluster) RemoveArtifact(version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.missing[version] = true
}

// Kill ends replica id's process, as kill -9 would: it stops answering
// and the driver reports it not running, until it is started again.
func (c *Cluster) Kill(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replica(id).broken = "killed"
	c.electLeader()
}

// LogTail returns what replica id logged last: why it is not running.
func (c *Cluster) LogTail(ctx context.Context, id string, lines int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r := c.replica(id); r != nil && r.broken != "" {
		return id + " exited: " + r.broken
	}
	return ""
}

// Stick keeps replica id answering but applying nothing until cure.
func (c *Cluster) Stick(id string, cure Cure) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replica(id)
	r.stuck, r.restartedSince = cure, map[string]bool{}
	c.commit(0, 5) // a write it will not apply
}

// Unstick ends a Stick.
func (c *Cluster) Unstick(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.replica(id).stuck = 0
}

// SetSchema sets the stored schema version.
func (c *Cluster) SetSchema(s int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.schema = s
}

// Versions maps replica ID to the release it runs.
func (c *Cluster) Versions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]string{}
	for _, r := range c.reps {
		m[r.id] = r.version
	}
	return m
}

// Schema is the stored schema version.
func (c *Cluster) Schema() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.schema
}

// Migrations maps each schema to how often a migration to it was applied.
func (c *Cluster) Migrations() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[int]int{}
	for k, v := range c.migrations {
		m[k] = v
	}
	return m
}

// Jobs is how many migration jobs ran (effective or not).
func (c *Cluster) Jobs() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.jobs
}

// Restarts is how often replica id was started again (replace or restart).
func (c *Cluster) Restarts(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.replica(id).restarts
}

// Backups is how many backups were taken.
func (c *Cluster) Backups() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.backups
}

// Leader is the leading replica's ID.
func (c *Cluster) Leader() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leader
}

// SetLeader moves leadership to id.
func (c *Cluster) SetLeader(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.leader = c.replica(id).id
}

// --- simulation ---

func (c *Cluster) replica(id string) *replica {
	for _, r := range c.reps {
		if r.id == id {
			return r
		}
	}
	return nil
}

// commit adds n revisions to table t, applied at once by the leader.
func (c *Cluster) commit(t int, n int64) {
	c.revision[t] += n
	if l := c.replica(c.leader); l != nil && l.answering() && l.stuck == 0 {
		l.applied[t] = c.revision[t]
		l.index += uint64(n)
	}
}

// start (re)starts r as version.
func (c *Cluster) start(r *replica, version string) {
	r.version = version
	r.frozen = false
	r.starting = c.StartTicks
	r.restarts++
	r.broken = ""
	if known := c.knownSchema(version); known < c.schema {
		r.broken = fmt.Sprintf("store schema %d is newer than release %s knows (%d)", c.schema, version, known)
	}
	if r.stuck == CureRestart {
		r.stuck = 0
	}
	for _, s := range c.reps {
		if s.stuck == CureRestartAll {
			s.restartedSince[r.id] = true
			if len(s.restartedSince) == len(c.reps) {
				s.stuck = 0
			}
		}
	}
	c.electLeader()
	c.commit(4, c.WritesWhileDown) // writes it misses while down
}

func (c *Cluster) electLeader() {
	if l := c.replica(c.leader); l != nil && l.answering() {
		return
	}
	for _, r := range c.reps {
		if r.answering() {
			c.leader = r.id
			return
		}
	}
}

func (c *Cluster) tick() {
	c.ticks++
	for _, r := range c.reps {
		switch {
		case r.frozen || r.broken != "":
		case r.starting > 0:
			r.starting--
		case r.stuck != 0:
		default:
			for t := range r.applied {
				n := min(c.CatchUp, c.revision[t]-r.applied[t])
				r.applied[t] += n
				r.index += uint64(n)
			}
		}
	}
	c.electLeader()
}

func (c *Cluster) status() upgrade.Status {
	st := upgrade.Status{Cluster: c.name, SchemaVersion: c.schema}
	versions := map[string]bool{}
	settled := true
	for _, r := range c.reps {
		versions[r.version] = true
		rs := upgrade.ReplicaStatus{ID: r.id, URL: "fake://" + r.id}
		switch {
		case r.frozen:
			// As a frozen process looks: it answers nothing, and the
			// leader (another replica) has not heard from it.
			rs.Error = "does not answer within 2s"
			rs.Unresponsive = true
			rs.Silent = c.leader != "" && c.leader != r.id
		case r.broken != "":
			rs.Error = "refuses connections (exited: " + r.broken + ")"
		case r.starting > 0:
			rs.Error = "refuses connections (not running, or not listening yet)"
		default:
			rs.Healthy, rs.UI, rs.Voter = true, true, true
			rs.Version, rs.Leader, rs.AppliedIndex = r.version, r.id == c.leader, r.index
		}
		if !rs.Healthy {
			settled = false
		}
		st.Replicas = append(st.Replicas, rs)
	}
	st.Version = upgrade.VersionMixed
	if len(versions) == 1 {
		st.Version = c.reps[0].version
	}
	for t, tb := range Tables {
		ts := upgrade.TableStatus{DB: tb.DB, Name: tb.Name, Revision: c.revision[t], Applied: map[string]int64{}, Lagging: []string{}}
		for _, r := range c.reps {
			if !r.answering() {
				ts.Lagging = append(ts.Lagging, r.id)
				continue
			}
			ts.Applied[r.id] = r.applied[t]
			if r.applied[t] < c.revision[t] {
				ts.Lagging = append(ts.Lagging, r.id)
			}
		}
		ts.Ready = len(ts.Lagging) == 0
		if !ts.Ready {
			settled = false
		}
		st.Store.Tables = append(st.Store.Tables, ts)
	}
	st.Store.Settled = settled
	return st
}

// --- driver.Driver ---

var (
	_ driver.Driver          = (*Cluster)(nil)
	_ driver.ArtifactChecker = (*Cluster)(nil)
	_ driver.Freezer         = (*Cluster)(nil)
	_ driver.LogTailer       = (*Cluster)(nil)
	_ upgrade.App            = (*App)(nil)
)

// Name is "fake".
func (c *Cluster) Name() string { return "fake" }

// Cluster is the cluster's name.
func (c *Cluster) Cluster() string { return c.name }

// Replicas lists the replicas by ID.
func (c *Cluster) Replicas(ctx context.Context) ([]driver.Replica, error) {
	if err := c.check(ctx, OpReplicas); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []driver.Replica
	for _, r := range c.reps {
		out = append(out, driver.Replica{ID: r.id, Version: r.version, URL: "fake://" + r.id, Running: r.broken == ""})
	}
	return out, nil
}

// Replace starts replica id again as version.
func (c *Cluster) Replace(ctx context.Context, id, version string) error {
	if err := c.check(ctx, OpReplace); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missing[version] {
		return fmt.Errorf("replace %s: %w: %s", id, driver.ErrNoArtifact, version)
	}
	r := c.replica(id)
	if r == nil {
		return fmt.Errorf("replace %s: %w", id, driver.ErrNoReplica)
	}
	c.start(r, version)
	return nil
}

// Restart starts replica id again as the same version.
func (c *Cluster) Restart(ctx context.Context, id string) error {
	if err := c.check(ctx, OpRestart); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replica(id)
	if r == nil {
		return fmt.Errorf("restart %s: %w", id, driver.ErrNoReplica)
	}
	c.start(r, r.version)
	return nil
}

// RunJob runs a migration job (App.MigrateJob's): it migrates the store
// from its schema up to --to-schema, one schema at a time.
func (c *Cluster) RunJob(ctx context.Context, version string, job driver.Job) ([]byte, error) {
	if err := c.check(ctx, OpRunJob); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missing[version] {
		return nil, fmt.Errorf("run job: %w: %s", driver.ErrNoArtifact, version)
	}
	c.jobs++
	i := slices.Index(job.Args, "--to-schema")
	if job.Name != "migrate" || i < 0 || i+1 >= len(job.Args) {
		return nil, fmt.Errorf("run job %s: unknown job %v", job.Name, job.Args)
	}
	to, err := strconv.Atoi(job.Args[i+1])
	if err != nil {
		return nil, fmt.Errorf("run job: %w", err)
	}
	if known := c.knownSchema(version); to > known {
		return []byte("error\n"), fmt.Errorf("run job: release %s knows schema %d, not %d", version, known, to)
	}
	out := fmt.Sprintf("stored schema %d\n", c.schema)
	for c.schema < to {
		c.schema++
		c.migrations[c.schema]++
		c.commit(1, 7) // rewrite rows
		c.commit(5, 1) // schema.version property
		out += fmt.Sprintf("migrated to schema %d\n", c.schema)
	}
	return []byte(out), nil
}

// Destroy forgets every replica.
func (c *Cluster) Destroy(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reps = nil
	return nil
}

// CheckArtifact fails for versions removed with RemoveArtifact.
func (c *Cluster) CheckArtifact(ctx context.Context, version string) error {
	if err := c.check(ctx, OpCheckArtifact); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.missing[version] {
		return fmt.Errorf("%w: %s", driver.ErrNoArtifact, version)
	}
	return nil
}

// Freeze stops replica id dead until Thaw or a restart.
func (c *Cluster) Freeze(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replica(id)
	if r == nil {
		return fmt.Errorf("freeze %s: %w", id, driver.ErrNoReplica)
	}
	r.frozen = true
	c.electLeader()
	c.commit(4, 5) // writes it will miss
	return nil
}

// Thaw lets a frozen replica go on.
func (c *Cluster) Thaw(ctx context.Context, id string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replica(id)
	if r == nil {
		return fmt.Errorf("thaw %s: %w", id, driver.ErrNoReplica)
	}
	r.frozen = false
	return nil
}

// --- upgrade.App ---

// App is the fake application of a Cluster.
type App struct{ c *Cluster }

// Status probes the cluster; each call is one tick of the simulation.
func (a *App) Status(ctx context.Context, replicas []driver.Replica) (upgrade.Status, error) {
	if err := a.c.check(ctx, OpStatus); err != nil {
		return upgrade.Status{}, err
	}
	a.c.mu.Lock()
	defer a.c.mu.Unlock()
	a.c.tick()
	return a.c.status(), nil
}

// MigrateJob is the registry's migrate command for toSchema.
func (a *App) MigrateJob(toSchema int) driver.Job {
	return driver.Job{Name: "migrate", Args: []string{"registry", "migrate", "--to-schema", strconv.Itoa(toSchema)}}
}

// Backup writes a small snapshot via replica via, which must answer.
func (a *App) Backup(ctx context.Context, via driver.Replica, w io.Writer) error {
	if err := a.c.check(ctx, OpBackup); err != nil {
		return err
	}
	a.c.mu.Lock()
	r := a.c.replica(via.ID)
	if r == nil || !r.answering() {
		a.c.mu.Unlock()
		return errors.New("backup: replica not answering")
	}
	a.c.backups++
	snap := fmt.Sprintf("snapshot of %s via %s: schema %d revisions %v\n", a.c.name, via.ID, a.c.schema, a.c.revision)
	a.c.mu.Unlock()
	_, err := io.WriteString(w, snap)
	return err
}

// --- upgrade.Recorder: the upgrade record kept in the cluster ---

// record is the fake cluster's upgrade record: a lock and a journal copy.
type record struct {
	mu      sync.Mutex
	holder  *journal.LockInfo
	lease   int
	lost    chan struct{}
	records map[int64]journal.Record // by seq; holes possible, as in a real store
	// keep: Release does nothing, as when the holder dies and its lease
	// has not ended yet.
	keep bool
	// fail is the number of appends still to fail (FailAppends).
	fail int
	// failLocks is the number of Lock calls still to fail (FailLocks).
	failLocks int
}

var _ upgrade.Recorder = (*App)(nil)

// Record implements upgrade.Recorder.
func (a *App) Record() upgrade.ClusterRecord { return &a.c.rec }

// Lock implements upgrade.ClusterRecord.
func (r *record) Lock(ctx context.Context, holder journal.LockInfo) (upgrade.HeldLock, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failLocks > 0 {
		r.failLocks--
		return nil, errors.New("replica-1: 503 Service Unavailable: replica not ready")
	}
	if r.holder != nil {
		return nil, &journal.LockedError{Frees: "the cluster frees it when its lease ends", LockInfo: *r.holder}
	}
	h := holder
	r.holder, r.lost, r.keep = &h, make(chan struct{}), false
	r.lease++
	return &held{r: r, lease: r.lease}, nil
}

// Read implements upgrade.ClusterRecord.
func (r *record) Read(ctx context.Context) ([]journal.Record, *journal.LockInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var h *journal.LockInfo
	if r.holder != nil {
		c := *r.holder
		h = &c
	}
	recs := make([]journal.Record, 0, len(r.records))
	for _, rec := range r.records {
		recs = append(recs, rec)
	}
	slices.SortFunc(recs, func(a, b journal.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return recs, h, nil
}

type held struct {
	r     *record
	lease int
}

func (h *held) Append(ctx context.Context, recs ...journal.Record) error {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if h.r.lease != h.lease || h.r.holder == nil {
		return upgrade.ErrLockLost
	}
	if h.r.fail > 0 {
		h.r.fail--
		return errors.New("append: the store did not answer")
	}
	if h.r.records == nil {
		h.r.records = map[int64]journal.Record{}
	}
	for _, rec := range recs {
		if _, ok := h.r.records[rec.Seq]; !ok {
			h.r.records[rec.Seq] = rec
		}
	}
	return nil
}

// DropRecord removes record seq from the cluster's copy of the journal,
// leaving a hole, as a mirror that failed for one record and not the next
// did before that could not happen.
func (c *Cluster) DropRecord(seq int64) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	delete(c.rec.records, seq)
}

// FailLocks makes the next n attempts to take the lock fail as when no
// replica can serve it yet (replicas starting, a store without a leader).
func (c *Cluster) FailLocks(n int) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	c.rec.failLocks = n
}

// FailAppends makes the next n appends to the cluster's copy of the
// journal fail, as when the replica taking them stops answering.
func (c *Cluster) FailAppends(n int) {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	c.rec.fail = n
}

func (h *held) TookOver() *journal.LockInfo { return nil }

func (h *held) Lost() <-chan struct{} {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	return h.r.lost
}

func (h *held) Release(ctx context.Context) error {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	if h.r.lease == h.lease && !h.r.keep {
		h.r.holder = nil
	}
	return nil
}

// KeepLock makes the next release of the cluster's upgrade lock do
// nothing, as if its holder died with its lease still running.
func (c *Cluster) KeepLock() {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	c.rec.keep = true
}

// ExpireLock ends the lease of the cluster's upgrade lock: its holder loses
// it, and anyone may take it.
func (c *Cluster) ExpireLock() {
	c.rec.mu.Lock()
	defer c.rec.mu.Unlock()
	if c.rec.holder != nil {
		close(c.rec.lost)
		c.rec.holder = nil
	}
}

// Records returns the cluster's copy of the journal.
func (c *Cluster) Records() []journal.Record {
	recs, _, _ := c.rec.Read(context.Background())
	return recs
}
