package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/ladder-dev/ladder/registry/oci"
)

func TestMigrationsCoverEverySchema(t *testing.T) {
	migs := Migrations()
	if len(migs) != LatestSchema()-1 {
		t.Fatalf("%d migrations for schemas 1..%d", len(migs), LatestSchema())
	}
	for i, m := range migs {
		if m.From != i+1 || m.To != i+2 || m.Name == "" || m.Run == nil || len(m.Tables) == 0 {
			t.Errorf("migration %d = %+v", i, m)
		}
	}
}

// view is the store as the OCI API sees it.
type view struct {
	Repos     []string
	Tags      map[string]string // repo:tag -> digest
	Manifests map[string]string // repo@digest -> content
	Referrers map[string][]string
	Linked    map[string]bool // repo@blob, for every blob a manifest lists
}

func viewOf(t *testing.T, st *Store) view {
	t.Helper()
	ctx := context.Background()
	v := view{Tags: map[string]string{}, Manifests: map[string]string{}, Referrers: map[string][]string{}, Linked: map[string]bool{}}
	repos, err := st.Repositories(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	v.Repos = repos
	digests := map[string][]string{}
	for _, m := range rowsOf[manifestRow](t, st.cli, TableManifests) {
		digests[m.Repo] = append(digests[m.Repo], m.Digest)
	}
	for _, repo := range repos {
		tags, err := st.Tags(ctx, repo, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range tags {
			d, err := st.ResolveTag(ctx, repo, tag)
			if err != nil {
				t.Fatal(err)
			}
			v.Tags[repo+":"+tag] = d
		}
		for _, d := range digests[repo] {
			m, err := st.GetManifest(ctx, repo, d)
			if err != nil {
				t.Fatal(err)
			}
			v.Manifests[repo+"@"+d] = string(m.Content)
			refs, err := st.Referrers(ctx, repo, d)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range refs {
				v.Referrers[repo+"@"+d] = append(v.Referrers[repo+"@"+d], r.Digest)
			}
			for _, b := range m.Blobs {
				ok, err := st.BlobLinked(ctx, repo, b)
				if err != nil {
					t.Fatal(err)
				}
				v.Linked[repo+"@"+b] = ok
			}
		}
	}
	return v
}

func (v view) equal(w view) bool {
	return slices.Equal(v.Repos, w.Repos) && maps.Equal(v.Tags, w.Tags) && maps.Equal(v.Manifests, w.Manifests) &&
		maps.EqualFunc(v.Referrers, w.Referrers, slices.Equal) && maps.Equal(v.Linked, w.Linked)
}

// seedAt fills a fresh database at schema with n repositories.
func seedAt(t *testing.T, cli *clientv3.Client, schema, n int) {
	t.Helper()
	st := freshStore(t, cli, schema, schema)
	if err := SeedStore(context.Background(), st, n, nil); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated checks what migration m must have done, on top of the
// layout checks every schema has.
func checkMigrated(t *testing.T, cli *clientv3.Client, m Migration, before map[string]string) {
	t.Helper()
	count := func(rows map[string]string, table string) int {
		n := 0
		for k := range rows {
			if strings.HasPrefix(k, prefixOf(table)) {
				n++
			}
		}
		return n
	}
	after := dump(t, cli)
	for _, table := range []string{TableRepositories, TableManifests, TableTags, TableEvents, TableBlobs} {
		if a, b := count(after, table), count(before, table); a != b {
			t.Errorf("%s: %d rows after, %d before", table, a, b)
		}
	}
	switch m.To {
	case 2:
		for k, r := range rowsOf[repoRow](t, cli, TableRepositories) {
			if k != repoKey(r.Name) || r.Namespace != namespaceOf(r.Name) || r.ID == "" {
				t.Errorf("repository row %s = %+v", k, r)
			}
		}
	case 3:
		want := map[string]int64{}
		for _, mr := range rowsOf[manifestRow](t, cli, TableManifests) {
			sizes := descriptorSizes(mr.Content)
			for _, b := range mr.Blobs {
				want[linkKey(mr.Repo, b)] = sizes[b]
			}
		}
		got := map[string]int64{}
		for k, l := range rowsOf[linkRow](t, cli, TableBlobRepository) {
			got[k] = l.Size
		}
		if !maps.Equal(got, want) {
			t.Errorf("blob_repository has %d rows, manifests list %d links (or sizes differ)", len(got), len(want))
		}
	case 4:
		latest := map[string]time.Time{}
		for _, e := range rowsOf[eventRow](t, cli, TableEvents) {
			if e.Action == "tag" && e.Time.After(latest[e.Repo+":"+e.Tag]) {
				latest[e.Repo+":"+e.Tag] = e.Time
			}
		}
		for k, tr := range rowsOf[tagRow](t, cli, TableTags) {
			if tr.PushedAt == nil || !tr.PushedAt.Equal(latest[tr.Repo+":"+tr.Tag]) {
				t.Errorf("tag %s pushed_at = %v, last tag event at %v", k, tr.PushedAt, latest[tr.Repo+":"+tr.Tag])
			}
		}
	case 5:
		for k, mr := range rowsOf[manifestRow](t, cli, TableManifests) {
			if k != manifestKey(mr.Repo, mr.Digest) || mr.Seq != 0 {
				t.Errorf("manifest row %s (digest %s, seq %d)", k, mr.Digest, mr.Seq)
			}
		}
	case 6:
		sums := map[string]int64{}
		for _, l := range rowsOf[linkRow](t, cli, TableBlobRepository) {
			sums[l.Repo] += l.Size
		}
		for k, r := range rowsOf[repoRow](t, cli, TableRepositories) {
			if r.SizeBytes == nil || *r.SizeBytes != sums[r.Name] || sums[r.Name] == 0 {
				t.Errorf("repository %s size_bytes = %v, links sum to %d", k, r.SizeBytes, sums[r.Name])
			}
		}
	case 7:
		manifests := rowsOf[manifestRow](t, cli, TableManifests)
		for k, tr := range rowsOf[tagRow](t, cli, TableTags) {
			if want := manifests[manifestKey(tr.Repo, tr.Digest)].MediaType; tr.MediaType != want || want == "" {
				t.Errorf("tag %s media_type = %q, manifest has %q", k, tr.MediaType, want)
			}
		}
	}
}

func TestEachMigration(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	for _, m := range Migrations() {
		t.Run(fmt.Sprintf("%d->%d %s", m.From, m.To, m.Name), func(t *testing.T) {
			seedAt(t, cli, m.From, 14)
			before := dump(t, cli)
			newest := openStore(t, cli, LatestSchema())
			viewBefore := viewOf(t, newest)
			st := openStore(t, cli, m.To)
			var lines []Progress
			if err := st.Migrate(ctx, MigrateOptions{To: m.To, Batch: 5, Progress: func(p Progress) { lines = append(lines, p) }}); err != nil {
				t.Fatal(err)
			}
			if s, _ := st.RefreshSchema(ctx); s != m.To {
				t.Fatalf("schema after migration = %d, want %d", s, m.To)
			}
			if resp, _ := cli.Get(ctx, checkpointKey); len(resp.Kvs) != 0 {
				t.Errorf("checkpoint left behind: %s", resp.Kvs[0].Value)
			}
			if resp, _ := cli.Get(ctx, fmt.Sprintf("%s%d-%d", historyPrefix, m.From, m.To)); len(resp.Kvs) != 1 {
				t.Errorf("no history row for the migration")
			}
			if len(lines) == 0 || lines[len(lines)-1].Phase != "done" {
				t.Errorf("progress = %+v, want a final done", lines)
			}
			checkMigrated(t, cli, m, before)
			checkLayout(t, st, m.To)
			if after := viewOf(t, newest); !after.equal(viewBefore) {
				t.Errorf("the OCI view changed:\nbefore %+v\nafter  %+v", viewBefore, after)
			}
			// Running it again does nothing.
			again := dump(t, cli)
			if err := st.Migrate(ctx, MigrateOptions{To: m.To}); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(again, dump(t, cli)) {
				t.Errorf("a second run changed rows")
			}
		})
	}
}

var errCrash = errors.New("simulated crash")

func TestMigrationResumesAfterCrash(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	for _, m := range Migrations() {
		t.Run(fmt.Sprintf("%d->%d %s", m.From, m.To, m.Name), func(t *testing.T) {
			seedAt(t, cli, m.From, 14)
			seeded := dump(t, cli)

			// Uninterrupted run on a copy of the data.
			st := openStore(t, cli, m.To)
			if err := st.Migrate(ctx, MigrateOptions{To: m.To, Batch: 4}); err != nil {
				t.Fatal(err)
			}
			want := dump(t, cli)

			restore(t, cli, seeded, m.From)
			st = openStore(t, cli, m.To)
			crash := func(n int64) error {
				if n == 2 {
					return errCrash
				}
				return nil
			}
			err := st.Migrate(ctx, MigrateOptions{To: m.To, Batch: 4, afterBatch: crash})
			if !errors.Is(err, errCrash) {
				t.Fatalf("Migrate with a crash after batch 2: %v", err)
			}
			if s, _ := st.RefreshSchema(ctx); s != m.From {
				t.Fatalf("schema after the crash = %d, want %d", s, m.From)
			}
			resp, _ := cli.Get(ctx, checkpointKey)
			if len(resp.Kvs) != 1 {
				t.Fatal("no checkpoint after the crash")
			}
			var cp checkpoint
			_ = json.Unmarshal(resp.Kvs[0].Value, &cp)
			if cp.Batches != 2 || cp.From != m.From {
				t.Errorf("checkpoint = %+v, want 2 batches of %d->%d", cp, m.From, m.To)
			}
			// A newer release reads the half-migrated store as it was.
			if v := viewOf(t, openStore(t, cli, LatestSchema())); len(v.Manifests) == 0 {
				t.Errorf("half-migrated store shows no manifests")
			}
			var resumed bool
			err = openStore(t, cli, m.To).Migrate(ctx, MigrateOptions{To: m.To, Batch: 4, Progress: func(p Progress) {
				resumed = resumed || strings.HasPrefix(p.Message, "resuming")
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !resumed {
				t.Errorf("second run did not resume from the checkpoint")
			}
			got := dump(t, cli)
			if !maps.Equal(got, want) {
				for _, k := range sortedKeys(want) {
					if got[k] != want[k] {
						t.Errorf("row %s:\n got  %s\n want %s", k, got[k], want[k])
						break
					}
				}
				t.Errorf("resumed migration: %d rows, uninterrupted: %d", len(got), len(want))
			}
		})
	}
}

// TestMigrationCatchesWritesWhileRunning writes old-layout rows in the
// middle of a re-key: the verification pass must convert them too.
func TestMigrationCatchesWritesWhileRunning(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	seedAt(t, cli, 4, 10)
	writer := openStore(t, cli, 5) // a 3.0 replica, serving while it migrates
	st := openStore(t, cli, 5)
	late := testImage("late", 77)
	hook := func(n int64) error {
		if n == 1 {
			// "aaa" sorts before every seeded repository, so the convert
			// pass has gone past where this row lands.
			return writer.PutManifest(ctx, "aaa", late, "late")
		}
		return nil
	}
	if err := st.Migrate(ctx, MigrateOptions{To: 5, Batch: 4, afterBatch: hook}); err != nil {
		t.Fatal(err)
	}
	for k := range rowsOf[manifestRow](t, cli, TableManifests) {
		if _, bySeq, _ := splitManifestKey(k); bySeq {
			t.Errorf("row %s left in the old layout", k)
		}
	}
	if m, err := st.GetManifest(ctx, "aaa", late.Digest); err != nil || m.Digest != late.Digest {
		t.Errorf("late manifest: %v", err)
	}
}

func TestMigrateAllTheWay(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	seedAt(t, cli, 1, 20)
	newest := openStore(t, cli, LatestSchema())
	before := viewOf(t, newest)
	st := openStore(t, cli, LatestSchema())
	if err := st.Migrate(ctx, MigrateOptions{Batch: 7}); err != nil {
		t.Fatal(err)
	}
	checkLayout(t, st, LatestSchema())
	if after := viewOf(t, newest); !after.equal(before) {
		t.Errorf("OCI view changed across 1->%d", LatestSchema())
	}
	// New writes after the migrations use the newest layout.
	if err := st.PutManifest(ctx, "new/repo", testImage("new", 10, 20), "v1"); err != nil {
		t.Fatal(err)
	}
	checkLayout(t, st, LatestSchema())
}

func TestMigrateRefusals(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	freshStore(t, cli, 4, 4)
	st := openStore(t, cli, 5)
	if err := st.Migrate(ctx, MigrateOptions{To: 6}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Migrate beyond the release's schema: %v, want ErrInvalid", err)
	}
	var skipped bool
	if err := st.Migrate(ctx, MigrateOptions{To: 4, Progress: func(p Progress) { skipped = p.Phase == "skip" }}); err != nil || !skipped {
		t.Errorf("Migrate to the stored schema: %v (skipped %v), want nothing to do", err, skipped)
	}
	_ = oci.ErrNotFound
}

// TestMigrationHoldsUnrelentingWritersBack: a writer links blobs as fast as
// it can for the whole migration, so no verification pass beside it can
// find the tables unchanged. The migration then holds writes back for one
// last pass (the writer waits, it does not fail), records the new schema
// and lifts the fence; every write the writer was told succeeded is there.
func TestMigrationHoldsUnrelentingWritersBack(t *testing.T) {
	cli := newTestEtcd(t, false)
	ctx := context.Background()
	seedAt(t, cli, 5, 30)
	writer := openStore(t, cli, 6) // a replica of the new release, serving while it migrates
	st := openStore(t, cli, 6)

	wctx, stop := context.WithCancel(ctx)
	var (
		wrote   []string
		werr    error
		writing sync.WaitGroup
	)
	writing.Go(func() {
		for i := 0; wctx.Err() == nil; i++ {
			d := digestOf([]byte(fmt.Sprintf("traffic-%d", i)))
			if err := writer.LinkBlob(wctx, "traffic/app", d, 100); err != nil {
				if wctx.Err() == nil {
					werr = err
				}
				return
			}
			wrote = append(wrote, d)
		}
	})
	var fenced bool
	err := st.Migrate(ctx, MigrateOptions{To: 6, Batch: 2, Progress: func(p Progress) {
		if strings.Contains(p.Message, "holding writes back") {
			fenced = true
		}
	}})
	stop()
	writing.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if werr != nil {
		t.Fatalf("a write failed while the migration ran: %v", werr)
	}
	if !fenced {
		t.Log("the migration verified beside the writer without holding it back")
	}
	if got := st.Schema(); got != 6 {
		t.Errorf("schema %d after the migration, want 6", got)
	}
	if resp, err := cli.Get(ctx, fenceKey); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("the fence is still there (%v)", err)
	}
	for _, d := range wrote {
		if ok, err := st.BlobLinked(ctx, "traffic/app", d); err != nil || !ok {
			t.Fatalf("blob %s the writer linked is missing (%v)", d, err)
		}
	}
	// The size of the busy repository counts every link.
	row := rowsOf[repoRow](t, cli, TableRepositories)[repoKey("traffic/app")]
	if row.SizeBytes == nil || *row.SizeBytes != int64(100*len(wrote)) {
		t.Errorf("traffic/app size %v, want %d", row.SizeBytes, 100*len(wrote))
	}
	t.Logf("%d writes during the migration; held back for a last pass: %v", len(wrote), fenced)
}
