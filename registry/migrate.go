package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Migration moves the store from schema From to schema To (From+1).
//
// Run converts the rows through the Batcher it is given. It must be
// idempotent: run again on a store it has converted wholly or in part, it
// leaves every converted row alone and converts the rest, so a crash and a
// resume give the same result as one run. Run is called at least twice per
// migration: once to convert, then again to verify (it must then change
// nothing, unless writers added old-layout rows meanwhile).
type Migration struct {
	From, To int
	// Name is short and stable: it appears in logs, progress and the
	// migration history in the properties table.
	Name        string
	Description string
	// Tables are the tables Run reads or writes. A write to any of them
	// while the migration verifies makes it verify again before it records
	// the new schema; after verifyAttempts such passes it holds writers
	// back for the last one (see fenced).
	Tables []string
	Run    func(ctx context.Context, b *Batcher) error
}

// Migrations returns the registry's migrations in order, one per schema
// step from 1 to LatestSchema. Each call returns a new slice.
func Migrations() []Migration {
	return []Migration{
		{From: 1, To: 2, Name: "repositories-by-name", Run: migrateRepositoriesByName,
			Description: "re-key repositories from opaque ids to their names, recording the namespace",
			Tables:      []string{TableRepositories}},
		{From: 2, To: 3, Name: "blob-repository-links", Run: migrateBlobLinks,
			Description: "build the blob_repository table from the blob lists of the manifests",
			Tables:      []string{TableManifests, TableBlobs, TableBlobRepository}},
		{From: 3, To: 4, Name: "tag-pushed-at", Run: migrateTagPushedAt,
			Description: "backfill pushed_at on every tag from the events table, or the manifest's creation time",
			Tables:      []string{TableTags, TableEvents, TableManifests}},
		{From: 4, To: 5, Name: "manifests-by-digest", Run: migrateManifestsByDigest,
			Description: "re-key manifests from push sequence to digest",
			Tables:      []string{TableManifests}},
		{From: 5, To: 6, Name: "repository-size", Run: migrateRepositorySize,
			Description: "backfill size_bytes (sum of linked blob sizes) on every repository",
			Tables:      []string{TableRepositories, TableBlobRepository}},
		{From: 6, To: 7, Name: "tag-media-type", Run: migrateTagMediaType,
			Description: "copy the manifest media type onto every tag",
			Tables:      []string{TableTags, TableManifests}},
	}
}

// DefaultBatch is the number of rows a migration converts per transaction.
const DefaultBatch = 500

// MigrateOptions configure Store.Migrate.
type MigrateOptions struct {
	// To is the schema to reach; 0 means the schema the release knows.
	To int
	// Batch is the number of rows per transaction (default DefaultBatch).
	Batch int
	// Progress, if set, is called after every batch and migration.
	Progress func(Progress)

	// afterBatch, if set, runs after every committed batch; an error stops
	// the migration there, as a crash would (tests).
	afterBatch func(batches int64) error
	// migrations replaces Migrations() (tests).
	migrations []Migration
}

// Progress reports a migration's advance.
type Progress struct {
	Migration string `json:"migration"`
	From      int    `json:"from"`
	To        int    `json:"to"`
	// Phase is "convert", "verify" or "done" ("resume" when it picks up a
	// checkpoint, "skip" when there is nothing to do).
	Phase   string `json:"phase"`
	Rows    int64  `json:"rows"`
	Changed int64  `json:"changed"`
	Batches int64  `json:"batches"`
	Message string `json:"message,omitempty"`
}

const (
	phaseConvert = "convert"
	phaseVerify  = "verify"
)

// checkpoint is the migration state stored in properties after each batch.
type checkpoint struct {
	From    int       `json:"from"`
	To      int       `json:"to"`
	Name    string    `json:"name"`
	Phase   string    `json:"phase"`
	Pass    int       `json:"pass"`
	After   string    `json:"after"`
	Rows    int64     `json:"rows"`
	Changed int64     `json:"changed"`
	Batches int64     `json:"batches"`
	Updated time.Time `json:"updated"`
}

// migrationRun is the state of one migration shared by its batchers.
type migrationRun struct {
	s      *Store
	m      Migration
	opts   MigrateOptions
	cpRev  int64 // mod revision of the checkpoint key as this run last saw it
	rows   int64
	change int64
	batch  int64
}

// Migrate runs the migrations from the stored schema up to opts.To. It is
// safe to run again after a failure: it resumes from the checkpoint. It
// returns nil when there is nothing to do.
func (s *Store) Migrate(ctx context.Context, opts MigrateOptions) error {
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}
	migs := opts.migrations
	if migs == nil {
		migs = Migrations()
	}
	stored, err := s.RefreshSchema(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := s.checkSchema(stored); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	to := opts.To
	if to == 0 {
		to = s.known
	}
	if to > s.known {
		return fmt.Errorf("migrate: %w: release %s knows schema %d, not %d", ErrInvalid, s.release, s.known, to)
	}
	if stored >= to {
		report(opts, Progress{From: stored, To: to, Phase: "skip",
			Message: fmt.Sprintf("store is at schema %d: nothing to do", stored)})
		return nil
	}
	for stored < to {
		var m *Migration
		for i := range migs {
			if migs[i].From == stored {
				m = &migs[i]
				break
			}
		}
		if m == nil {
			return fmt.Errorf("migrate: no migration from schema %d", stored)
		}
		if err := s.runMigration(ctx, *m, opts); err != nil {
			return fmt.Errorf("migrate %d->%d %s: %w", m.From, m.To, m.Name, err)
		}
		stored = m.To
	}
	return nil
}

func report(opts MigrateOptions, p Progress) {
	if opts.Progress != nil {
		opts.Progress(p)
	}
}

func (s *Store) runMigration(ctx context.Context, m Migration, opts MigrateOptions) error {
	r := &migrationRun{s: s, m: m, opts: opts}
	resp, err := s.cli.Get(ctx, checkpointKey)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	var resume *checkpoint
	if len(resp.Kvs) > 0 {
		r.cpRev = resp.Kvs[0].ModRevision
		var cp checkpoint
		if json.Unmarshal(resp.Kvs[0].Value, &cp) == nil && cp.From == m.From && cp.To == m.To {
			resume = &cp
			r.rows, r.change, r.batch = cp.Rows, cp.Changed, cp.Batches
			r.progress(cp.Phase, fmt.Sprintf("resuming from checkpoint: phase %s, pass %d, after %q", cp.Phase, cp.Pass, cp.After))
		}
	}
	if resume == nil || resume.Phase == phaseConvert {
		b := r.batcher(phaseConvert, resume)
		if err := m.Run(ctx, b); err != nil {
			return err
		}
	}
	for attempt := 0; attempt < verifyAttempts; attempt++ {
		done, err := r.verify(ctx)
		if err != nil || done {
			return err
		}
	}
	// Writers kept changing the tables faster than a pass could check
	// them: hold them back for one last pass.
	return r.fenced(ctx)
}

// verifyAttempts is how many verification passes run beside writers before
// the migration holds writes back for its last one.
const verifyAttempts = 3

// verify remembers the tables' revisions, checks every row again, and
// records the new schema only if nothing changed and no writer touched the
// tables meanwhile.
func (r *migrationRun) verify(ctx context.Context) (bool, error) {
	marks, err := r.s.markers(ctx, r.m.Tables)
	if err != nil {
		return false, err
	}
	// Verification always starts over: rows before an interrupted
	// verification's checkpoint may have changed since.
	b := r.batcher(phaseVerify, nil)
	if err := r.m.Run(ctx, b); err != nil {
		return false, err
	}
	if b.changed > 0 {
		return false, nil
	}
	return r.complete(ctx, marks)
}

// fenceTTL is the lease of the fence: a migration job that dies holding
// writes back frees them within it.
const fenceTTL = 10

// fenced puts the fence that holds writers back (on a lease kept alive
// while it runs), converts what they wrote since the last pass, verifies,
// and records the new schema, lifting the fence in the same transaction.
// Writers wait for the fence (Store.update); readers do not.
func (r *migrationRun) fenced(ctx context.Context) error {
	cli := r.s.cli
	lease, err := cli.Grant(ctx, fenceTTL)
	if err != nil {
		return fmt.Errorf("hold writes back: %w", err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer func() {
		stop()
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = cli.Revoke(rctx, lease.ID)
	}()
	alive, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("hold writes back: %w", err)
	}
	go func() {
		for range alive {
		}
	}()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(fenceKey), "=", 0)).
		Then(clientv3.OpPut(fenceKey, r.m.Name, clientv3.WithLease(lease.ID))).Commit()
	if err != nil {
		return fmt.Errorf("hold writes back: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: another migration holds writes back", ErrConflict)
	}
	r.progress(phaseVerify, "writers kept changing the tables: holding writes back for a last pass")
	if err := r.m.Run(ctx, r.batcher(phaseConvert, nil)); err != nil {
		return err
	}
	done, err := r.verify(ctx)
	if err != nil {
		return err
	}
	if !done {
		return fmt.Errorf("%w: the tables changed while writes were held back", ErrConflict)
	}
	return nil
}

// markers reads the revision markers of tables.
func (s *Store) markers(ctx context.Context, tables []string) (map[string]int64, error) {
	ops := make([]clientv3.Op, len(tables))
	for i, tb := range tables {
		ops[i] = clientv3.OpGet(markerKey(tb))
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("read table revisions: %w", err)
	}
	out := map[string]int64{}
	for i, tb := range tables {
		var rev int64
		if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
			rev = kvs[0].ModRevision
		}
		out[tb] = rev
	}
	return out, nil
}

// complete records the new schema, drops the checkpoint and writes the
// migration's history row, if the tables still have the revisions marks.
func (r *migrationRun) complete(ctx context.Context, marks map[string]int64) (bool, error) {
	m := r.m
	hist, _ := json.Marshal(map[string]any{"name": m.Name, "from": m.From, "to": m.To,
		"rows": r.rows, "changed": r.change, "batches": r.batch, "completed_at": time.Now().UTC(),
		"release": r.s.release})
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.Value(schemaKey), "=", strconv.Itoa(m.From)),
		clientv3.Compare(clientv3.ModRevision(checkpointKey), "=", r.cpRev),
	}
	for tb, rev := range marks {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(markerKey(tb)), "=", rev))
	}
	resp, err := r.s.cli.Txn(ctx).If(cmps...).Then(
		clientv3.OpPut(schemaKey, strconv.Itoa(m.To)),
		clientv3.OpDelete(checkpointKey),
		clientv3.OpPut(fmt.Sprintf("%s%d-%d", historyPrefix, m.From, m.To), string(hist)),
		clientv3.OpPut(markerKey(TableProperties), ""),
		clientv3.OpDelete(fenceKey),
	).Commit()
	if err != nil {
		return false, fmt.Errorf("record schema %d: %w", m.To, err)
	}
	if resp.Succeeded {
		r.s.noteSchema(m.To)
		r.progress("done", fmt.Sprintf("schema is now %d", m.To))
		return true, nil
	}
	stored, err := r.s.RefreshSchema(ctx)
	if err != nil {
		return false, err
	}
	if stored != m.From {
		return false, fmt.Errorf("%w: the stored schema moved to %d during the migration", ErrConflict, stored)
	}
	cp, err := r.s.cli.Get(ctx, checkpointKey)
	if err != nil {
		return false, fmt.Errorf("read checkpoint: %w", err)
	}
	if len(cp.Kvs) > 0 && cp.Kvs[0].ModRevision != r.cpRev {
		return false, fmt.Errorf("%w: another migration is running", ErrConflict)
	}
	return false, nil
}

func (r *migrationRun) progress(phase, msg string) {
	report(r.opts, Progress{Migration: r.m.Name, From: r.m.From, To: r.m.To, Phase: phase,
		Rows: r.rows, Changed: r.change, Batches: r.batch, Message: msg})
}

func (r *migrationRun) batcher(phase string, resume *checkpoint) *Batcher {
	b := &Batcher{run: r, phase: phase}
	if resume != nil && resume.Phase == phase {
		b.resume = resume
	}
	return b
}

// Batcher is what a Migration's Run works through: it reads tables in
// batches, commits each batch's changes with the checkpoint in one
// transaction, and skips what a previous, interrupted run committed.
type Batcher struct {
	run     *migrationRun
	phase   string
	resume  *checkpoint
	pass    int
	changed int64
}

// Store is the store being migrated.
func (b *Batcher) Store() *Store { return b.run.s }

// Row is one stored row.
type Row struct {
	Key   string
	Value []byte
}

// Scan calls fn with the rows under prefix, in key order, a batch at a
// time, and commits the changes fn makes to each batch with a checkpoint.
// Rows a previous run of the same phase already passed are skipped. Scans
// are numbered in call order, so Run must call them in a fixed order.
func (b *Batcher) Scan(ctx context.Context, prefix string, fn func(ctx context.Context, rows []Row, c *Changes) error) error {
	pass := b.pass
	b.pass++
	from := prefix
	if b.resume != nil {
		switch {
		case pass < b.resume.Pass:
			return nil
		case pass == b.resume.Pass && b.resume.After != "":
			from = b.resume.After + "\x00"
		}
	}
	return b.run.s.scanRange(ctx, from, prefixEnd(prefix), b.run.opts.Batch, func(rows []Row) error {
		c := newChanges(b.run.s)
		if err := fn(ctx, rows, c); err != nil {
			return err
		}
		return b.commit(ctx, c, pass, rows[len(rows)-1].Key, int64(len(rows)))
	})
}

// scanPage is how many keys scanRange lists per request.
const scanPage = 20000

// scanRange calls fn with the rows in [from, end), in key order, at most
// batch at a time (more when rows were added meanwhile). It lists keys
// first and then reads each batch as a closed key range: etcd counts every
// key from the start of a ranged read to its end, so reading a large table
// in limited pages of the whole range would cost quadratic time.
func (s *Store) scanRange(ctx context.Context, from, end string, batch int, fn func(rows []Row) error) error {
	for {
		resp, err := s.cli.Get(ctx, from, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(scanPage))
		if err != nil {
			return fmt.Errorf("list keys from %s: %w", from, err)
		}
		keys := resp.Kvs
		for i := 0; i < len(keys); i += batch {
			lo, hi := string(keys[i].Key), string(keys[min(i+batch, len(keys))-1].Key)
			got, err := s.cli.Get(ctx, lo, clientv3.WithRange(hi+"\x00"))
			if err != nil {
				return fmt.Errorf("read rows from %s: %w", lo, err)
			}
			if len(got.Kvs) == 0 {
				continue
			}
			rows := make([]Row, len(got.Kvs))
			for j, kv := range got.Kvs {
				rows[j] = Row{Key: string(kv.Key), Value: kv.Value}
			}
			if err := fn(rows); err != nil {
				return err
			}
		}
		if !resp.More || len(keys) == 0 {
			return nil
		}
		from = string(keys[len(keys)-1].Key) + "\x00"
	}
}

// Each calls fn with every row under prefix, read in batches, without
// writing anything (to build lookup tables before a Scan).
func (b *Batcher) Each(ctx context.Context, prefix string, fn func(Row) error) error {
	return b.run.s.scanRange(ctx, prefix, prefixEnd(prefix), max(b.run.opts.Batch, 1000), func(rows []Row) error {
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *Batcher) commit(ctx context.Context, c *Changes, pass int, after string, rows int64) error {
	r := b.run
	if b.phase == phaseVerify && len(c.ops) == 0 {
		return nil
	}
	cp := checkpoint{From: r.m.From, To: r.m.To, Name: r.m.Name, Phase: b.phase, Pass: pass, After: after,
		Rows: r.rows + rows, Changed: r.change + int64(c.changed), Batches: r.batch + 1, Updated: time.Now().UTC()}
	cpb, _ := json.Marshal(cp)
	ops := append(c.ops, markerOps(c.tables)...)
	ops = append(ops, clientv3.OpPut(checkpointKey, string(cpb)), clientv3.OpPut(markerKey(TableProperties), ""))
	resp, err := r.s.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.Value(schemaKey), "=", strconv.Itoa(r.m.From)),
		clientv3.Compare(clientv3.ModRevision(checkpointKey), "=", r.cpRev),
	).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("commit batch %d: %w", cp.Batches, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("commit batch %d: %w: the checkpoint or the schema changed under this migration (is another one running?)", cp.Batches, ErrConflict)
	}
	r.cpRev = resp.Header.Revision
	r.rows, r.change, r.batch = cp.Rows, cp.Changed, cp.Batches
	if len(c.ops) > 0 {
		b.changed += int64(max(c.changed, 1))
	}
	r.progress(b.phase, "")
	if r.opts.afterBatch != nil {
		return r.opts.afterBatch(r.batch)
	}
	return nil
}

// Changes collects the writes of one batch.
type Changes struct {
	s       *Store
	ops     []clientv3.Op
	index   map[string]int
	vals    map[string][]byte // pending puts; nil value: pending delete
	tables  map[string]bool
	changed int
}

func newChanges(s *Store) *Changes {
	return &Changes{s: s, index: map[string]int{}, vals: map[string][]byte{}, tables: map[string]bool{}}
}

func (c *Changes) set(key string, op clientv3.Op) {
	if i, ok := c.index[key]; ok {
		c.ops[i] = op
		return
	}
	c.index[key] = len(c.ops)
	c.ops = append(c.ops, op)
}

// Put writes v as JSON at key of table.
func (c *Changes) Put(table, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	c.set(key, clientv3.OpPut(key, string(b)))
	c.vals[key] = b
	c.tables[table] = true
	return nil
}

// Delete removes key of table.
func (c *Changes) Delete(table, key string) {
	c.set(key, clientv3.OpDelete(key))
	c.vals[key] = nil
	c.tables[table] = true
}

// Changed counts one converted row (for progress and verification).
func (c *Changes) Changed() { c.changed++ }

// Get reads keys in one round trip and returns the values found, as this
// batch's pending changes leave them.
func (c *Changes) Get(ctx context.Context, keys []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	var read []string
	seen := map[string]bool{}
	for _, k := range keys {
		if _, pending := c.vals[k]; pending || seen[k] {
			continue
		}
		seen[k] = true
		read = append(read, k)
	}
	const chunk = 1000
	for i := 0; i < len(read); i += chunk {
		part := read[i:min(i+chunk, len(read))]
		ops := make([]clientv3.Op, len(part))
		for j, k := range part {
			ops[j] = clientv3.OpGet(k)
		}
		resp, err := c.s.cli.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("read rows: %w", err)
		}
		for _, r := range resp.Responses {
			for _, kv := range r.GetResponseRange().Kvs {
				out[string(kv.Key)] = kv.Value
			}
		}
	}
	for _, k := range keys {
		if v, pending := c.vals[k]; pending && v != nil {
			out[k] = v
		}
	}
	return out, nil
}
