package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Store is the registry's metadata in the replicated store, as one release
// sees it: it writes the stored schema's layout and reads every layout from
// the stored schema up to the schema its release knows. It implements
// oci.Metadata. A Store is safe for concurrent use.
type Store struct {
	cli     *clientv3.Client
	known   int
	release string
	log     *slog.Logger
	schema  atomic.Int64 // stored schema, as last read
}

// StoreOptions configure OpenStore.
type StoreOptions struct {
	// Release is the release the store is opened as; it sets KnownSchema
	// when KnownSchema is 0.
	Release string
	// KnownSchema is the newest schema the caller understands. 0 with no
	// Release: whatever the store holds (tools such as Seed).
	KnownSchema int
	Logger      *slog.Logger
}

// OpenStore opens the registry store through cli. The store must have been
// initialised (InitSchema); a stored schema newer than the release knows is
// a *SchemaTooNewError.
func OpenStore(ctx context.Context, cli *clientv3.Client, opts StoreOptions) (*Store, error) {
	s := &Store{cli: cli, known: opts.KnownSchema, release: opts.Release, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.known == 0 && opts.Release != "" {
		k, err := SchemaOf(opts.Release)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		s.known = k
	}
	stored, err := s.RefreshSchema(ctx)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if s.known == 0 {
		s.known = stored
	}
	if err := s.checkSchema(stored); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return s, nil
}

// InitSchema records schema as the store's schema when the store has none
// yet (a fresh cluster), and returns the stored schema either way.
func InitSchema(ctx context.Context, cli *clientv3.Client, schema int, release string) (int, error) {
	created, _ := json.Marshal(map[string]any{"release": release, "schema": schema, "at": time.Now().UTC()})
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(schemaKey), "=", 0)).
		Then(clientv3.OpPut(schemaKey, strconv.Itoa(schema)),
			clientv3.OpPut(createdKey, string(created)),
			clientv3.OpPut(markerKey(TableProperties), "")).
		Else(clientv3.OpGet(schemaKey)).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("initialise schema: %w", err)
	}
	if resp.Succeeded {
		return schema, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return 0, fmt.Errorf("initialise schema: %w", ErrNoSchema)
	}
	return parseSchema(kvs[0].Value)
}

func parseSchema(v []byte) (int, error) {
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("read schema version: bad value %q", v)
	}
	return n, nil
}

// Schema is the stored schema as last read.
func (s *Store) Schema() int { return int(s.schema.Load()) }

// KnownSchema is the newest schema the store's release understands.
func (s *Store) KnownSchema() int { return s.known }

// Release is the release the store was opened as ("" when none).
func (s *Store) Release() string { return s.release }

// Client is the etcd client the store uses.
func (s *Store) Client() *clientv3.Client { return s.cli }

// RefreshSchema reads the stored schema (linearizable) and returns it.
func (s *Store) RefreshSchema(ctx context.Context) (int, error) {
	resp, err := s.cli.Get(ctx, schemaKey)
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrNoSchema
	}
	n, err := parseSchema(resp.Kvs[0].Value)
	if err != nil {
		return 0, err
	}
	s.noteSchema(n)
	return n, nil
}

// noteSchema raises the cached schema to n (it never goes down).
func (s *Store) noteSchema(n int) {
	for {
		cur := s.schema.Load()
		if int64(n) <= cur || s.schema.CompareAndSwap(cur, int64(n)) {
			return
		}
	}
}

func (s *Store) checkSchema(stored int) error {
	if stored > s.known {
		return &SchemaTooNewError{Stored: stored, Known: s.known, Release: s.release, Need: releaseFor(stored)}
	}
	return nil
}

// WatchSchema keeps the cached schema current until ctx ends.
func (s *Store) WatchSchema(ctx context.Context) {
	for ctx.Err() == nil {
		wc := s.cli.Watch(clientv3.WithRequireLeader(ctx), schemaKey)
		for resp := range wc {
			for _, ev := range resp.Events {
				if n, err := parseSchema(ev.Kv.Value); err == nil {
					s.noteSchema(n)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
			_, _ = s.RefreshSchema(ctx)
		}
	}
}

// txn gathers the reads and writes of one store operation. Its commit
// compares the stored schema and the modification revision of every key
// read, so it applies only if nothing it read changed.
type txn struct {
	s      *Store
	schema int
	reads  map[string]int64
	ops    []clientv3.Op
	puts   map[string]int // key -> index in ops
	tables map[string]bool
	now    time.Time
	// repoIDs remembers the key of each schema-1 repository this
	// transaction has found or created, by name.
	repoIDs map[string]string
}

func (s *Store) newTxn() *txn {
	return &txn{s: s, schema: s.Schema(), reads: map[string]int64{}, puts: map[string]int{},
		tables: map[string]bool{}, now: time.Now().UTC(), repoIDs: map[string]string{}}
}

// get reads key (linearizable) and records its revision for the commit.
// A key the transaction has written reads as written: several operations
// can share one transaction (see SeedStore).
func (t *txn) get(ctx context.Context, key string) (*mvccpb.KeyValue, error) {
	if i, ok := t.puts[key]; ok {
		return pendingKV(t.ops[i]), nil
	}
	resp, err := t.s.cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		t.record(key, 0)
		return nil, nil
	}
	t.record(key, resp.Kvs[0].ModRevision)
	return resp.Kvs[0], nil
}

// getJSON reads key into v and reports whether it exists.
func (t *txn) getJSON(ctx context.Context, key string, v any) (bool, error) {
	kv, err := t.get(ctx, key)
	if err != nil || kv == nil {
		return false, err
	}
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

func (t *txn) record(key string, rev int64) {
	if _, seen := t.reads[key]; !seen {
		t.reads[key] = rev
	}
}

// recordTable makes the commit depend on no other write to table.
func (t *txn) recordTable(ctx context.Context, table string) error {
	_, err := t.get(ctx, markerKey(table))
	return err
}

// scan reads every row under prefix, in key order, as the transaction has
// written them. Scans are not recorded: callers record a key that every
// conflicting write also changes.
func (t *txn) scan(ctx context.Context, prefix string) ([]*mvccpb.KeyValue, error) {
	resp, err := t.s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("scan %s: %w", prefix, err)
	}
	if len(t.puts) == 0 {
		return resp.Kvs, nil
	}
	rows := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		rows[string(kv.Key)] = kv
	}
	for k, i := range t.puts {
		if strings.HasPrefix(k, prefix) {
			rows[k] = pendingKV(t.ops[i])
		}
	}
	kvs := make([]*mvccpb.KeyValue, 0, len(rows))
	for _, kv := range rows {
		if kv != nil {
			kvs = append(kvs, kv)
		}
	}
	slices.SortFunc(kvs, func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return kvs, nil
}

// pendingKV is how a key the transaction wrote reads back: its new value,
// or nil when the transaction deleted it.
func pendingKV(op clientv3.Op) *mvccpb.KeyValue {
	if !op.IsPut() {
		return nil
	}
	return &mvccpb.KeyValue{Key: op.KeyBytes(), Value: op.ValueBytes()}
}

func (t *txn) put(table, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	op := clientv3.OpPut(key, string(b))
	if i, ok := t.puts[key]; ok {
		t.ops[i] = op
	} else {
		t.puts[key] = len(t.ops)
		t.ops = append(t.ops, op)
	}
	t.tables[table] = true
	return nil
}

func (t *txn) del(table, key string) {
	if i, ok := t.puts[key]; ok {
		t.ops[i] = clientv3.OpDelete(key)
	} else {
		t.puts[key] = len(t.ops)
		t.ops = append(t.ops, clientv3.OpDelete(key))
	}
	t.tables[table] = true
}

func (t *txn) event(action, repo, dgst, tag string) error {
	e := eventRow{Time: t.now, Action: action, Repo: repo, Digest: dgst, Tag: tag}
	return t.put(TableEvents, eventKey(t.now, fmt.Sprintf("%08x", rand.Uint32())), e)
}

// markerOps are the revision-marker puts for the tables t writes.
func markerOps(tables map[string]bool) []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(tables))
	for tb := range tables {
		ops = append(ops, clientv3.OpPut(markerKey(tb), ""))
	}
	return ops
}

// update runs fn and commits its writes, retrying from scratch when the
// commit finds that something fn read, or the stored schema, changed.
func (s *Store) update(ctx context.Context, fn func(ctx context.Context, t *txn) error) error {
	var delay time.Duration
	for attempt := 0; attempt < 64; attempt++ {
		t := s.newTxn()
		if err := s.checkSchema(t.schema); err != nil {
			return err
		}
		if err := fn(ctx, t); err != nil {
			return err
		}
		if len(t.ops) == 0 {
			return nil
		}
		cmps := make([]clientv3.Cmp, 0, len(t.reads)+2)
		cmps = append(cmps, clientv3.Compare(clientv3.Value(schemaKey), "=", strconv.Itoa(t.schema)),
			clientv3.Compare(clientv3.CreateRevision(fenceKey), "=", 0))
		for k, rev := range t.reads {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(append(t.ops, markerOps(t.tables)...)...).
			Else(clientv3.OpGet(fenceKey, clientv3.WithKeysOnly())).Commit()
		if err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		if resp.Succeeded {
			return nil
		}
		if len(resp.Responses) > 0 && len(resp.Responses[0].GetResponseRange().Kvs) > 0 {
			// A migration holds writes back for its last pass: wait for
			// it (this attempt does not count).
			if err := s.waitFence(ctx); err != nil {
				return err
			}
			attempt--
		}
		stored, err := s.RefreshSchema(ctx)
		if err != nil {
			return err
		}
		if err := s.checkSchema(stored); err != nil {
			return err
		}
		delay = min(2*delay+time.Millisecond, 50*time.Millisecond)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay/2 + rand.N(delay/2+1)):
		}
	}
	return ErrConflict
}

// fenceWait bounds how long a writer waits for a migration's fence to go.
const fenceWait = 30 * time.Second

// waitFence waits until no migration holds writes back (see fenceKey).
func (s *Store) waitFence(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, fenceWait)
	defer cancel()
	for {
		resp, err := s.cli.Get(ctx, fenceKey, clientv3.WithKeysOnly())
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w: a migration held writes back for over %s", ErrConflict, fenceWait)
			}
			return fmt.Errorf("read the migration fence: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: a migration held writes back for over %s", ErrConflict, fenceWait)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// view runs fn as a read-only operation.
// A store migrated past what the release knows is refused: its rows may be
// in a layout this release cannot read.
func (s *Store) view(ctx context.Context, fn func(ctx context.Context, t *txn) error) error {
	t := s.newTxn()
	if err := s.checkSchema(t.schema); err != nil {
		return err
	}
	return fn(ctx, t)
}
