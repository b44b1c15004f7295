package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// benchRows is the size of the table each migration converts.
const benchRows = 100_000

// bulk writes rows in transactions of DefaultBatch puts and returns the
// rows per second. Revision markers are put once per transaction, as the
// store does.
type bulk struct {
	tb    testing.TB
	cli   *clientv3.Client
	ops   []clientv3.Op
	table map[string]bool
	rows  int
	spent time.Duration
}

func (w *bulk) put(table, key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.tb.Fatal(err)
	}
	w.ops = append(w.ops, clientv3.OpPut(key, string(b)))
	w.table[table] = true
	w.rows++
	if len(w.ops) == DefaultBatch {
		w.flush()
	}
}

func (w *bulk) flush() {
	if len(w.ops) == 0 {
		return
	}
	start := time.Now()
	if _, err := w.cli.Txn(context.Background()).Then(append(w.ops, markerOps(w.table)...)...).Commit(); err != nil {
		w.tb.Fatal(err)
	}
	w.spent += time.Since(start)
	w.ops = w.ops[:0]
}

func (w *bulk) rate() float64 {
	w.flush()
	return float64(w.rows) / w.spent.Seconds()
}

func newBulk(tb testing.TB, cli *clientv3.Client) *bulk {
	return &bulk{tb: tb, cli: cli, table: map[string]bool{}}
}

var benchEpoch = time.Date(2017, 7, 28, 4, 14, 38, 0, time.UTC)

// benchManifest is a manifest row with a realistic content of ~450 bytes.
func benchManifest(repo string, i int, seq int64) manifestRow {
	config := newBlob(fmt.Sprintf("%s/config/%d", repo, i), 1500)
	layers := []blobSpec{newBlob(fmt.Sprintf("base/%d", i%7), 3<<20), newBlob(fmt.Sprintf("%s/app/%d", repo, i), 1<<20+int64(i))}
	m := imageManifest(config, layers, "", "")
	return manifestRow{Repo: repo, Digest: m.Digest, MediaType: m.MediaType, Size: m.Size, Content: m.Content,
		Blobs: m.Blobs, CreatedAt: benchEpoch.Add(time.Duration(i) * time.Second), Seq: seq}
}

func benchRepo(i int) string { return fmt.Sprintf("ns%02d/repo-%04d", i%50, i/100) }

// benchLoads write benchRows rows of each migration's main table in the
// layout of its From schema (plus the rows it reads from other tables,
// untimed), and return the raw write rate of the main table.
var benchLoads = map[int]func(b *testing.B, cli *clientv3.Client) float64{
	2: func(b *testing.B, cli *clientv3.Client) float64 {
		w := newBulk(b, cli)
		for i := range benchRows {
			id := fmt.Sprintf("%016x", i)
			w.put(TableRepositories, repoKeyByID(id), repoRow{ID: id, Name: fmt.Sprintf("ns%02d/repo-%06d", i%50, i),
				CreatedAt: benchEpoch, UpdatedAt: benchEpoch, ManifestSeq: 3})
		}
		return w.rate()
	},
	3: func(b *testing.B, cli *clientv3.Client) float64 {
		w := newBulk(b, cli)
		for i := range benchRows {
			repo := benchRepo(i)
			w.put(TableManifests, manifestKeyBySeq(repo, int64(i%100+1)), benchManifest(repo, i, int64(i%100+1)))
		}
		return w.rate()
	},
	4: func(b *testing.B, cli *clientv3.Client) float64 {
		ev := newBulk(b, cli)
		for i := range benchRows {
			repo, tag := benchRepo(i), fmt.Sprintf("v%d", i%100)
			at := benchEpoch.Add(time.Duration(i) * time.Second)
			ev.put(TableEvents, eventKey(at, fmt.Sprintf("%08x", i)), eventRow{Time: at, Action: "tag", Repo: repo, Tag: tag, Digest: digestOf([]byte(repo + tag))})
		}
		ev.flush()
		w := newBulk(b, cli)
		for i := range benchRows {
			repo, tag := benchRepo(i), fmt.Sprintf("v%d", i%100)
			w.put(TableTags, tagKey(repo, tag), tagRow{Repo: repo, Tag: tag, Digest: digestOf([]byte(repo + tag))})
		}
		return w.rate()
	},
	5: func(b *testing.B, cli *clientv3.Client) float64 {
		w := newBulk(b, cli)
		for i := range benchRows {
			repo := benchRepo(i)
			w.put(TableManifests, manifestKeyBySeq(repo, int64(i%100+1)), benchManifest(repo, i, int64(i%100+1)))
		}
		return w.rate()
	},
	6: func(b *testing.B, cli *clientv3.Client) float64 {
		links := newBulk(b, cli)
		for i := range benchRows {
			name := fmt.Sprintf("ns%02d/repo-%06d", i%50, i)
			d := digestOf([]byte(name))
			links.put(TableBlobRepository, linkKey(name, d), linkRow{Repo: name, Digest: d, Size: int64(1000 + i), LinkedAt: benchEpoch})
		}
		links.flush()
		w := newBulk(b, cli)
		for i := range benchRows {
			name := fmt.Sprintf("ns%02d/repo-%06d", i%50, i)
			w.put(TableRepositories, repoKey(name), repoRow{ID: fmt.Sprintf("%016x", i), Name: name, Namespace: namespaceOf(name),
				CreatedAt: benchEpoch, UpdatedAt: benchEpoch})
		}
		return w.rate()
	},
	7: func(b *testing.B, cli *clientv3.Client) float64 {
		ms := newBulk(b, cli)
		digests := make([]string, benchRows)
		for i := range benchRows {
			repo := benchRepo(i)
			m := benchManifest(repo, i, 0)
			digests[i] = m.Digest
			ms.put(TableManifests, manifestKey(repo, m.Digest), m)
		}
		ms.flush()
		w := newBulk(b, cli)
		for i := range benchRows {
			repo, tag := benchRepo(i), fmt.Sprintf("v%d", i%100)
			at := benchEpoch
			w.put(TableTags, tagKey(repo, tag), tagRow{Repo: repo, Tag: tag, Digest: digests[i], PushedAt: &at})
		}
		return w.rate()
	},
}

// BenchmarkMigration measures each migration on benchRows rows against
// raw batched writes of the same table in the same store, on a single
// member with fsync. Run it once:
//
//	go test ./registry -run XXX -bench Migration -benchtime 1x
func BenchmarkMigration(b *testing.B) {
	for _, m := range Migrations() {
		b.Run(fmt.Sprintf("%d-%d-%s", m.From, m.To, m.Name), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				cli := newTestEtcd(b, true)
				ctx := context.Background()
				if _, err := InitSchema(ctx, cli, m.From, "bench"); err != nil {
					b.Fatal(err)
				}
				raw := benchLoads[m.To](b, cli)
				st := openStore(b, cli, m.To)
				b.StartTimer()
				start := time.Now()
				if err := st.Migrate(ctx, MigrateOptions{To: m.To, Batch: DefaultBatch}); err != nil {
					b.Fatal(err)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				rate := benchRows / elapsed.Seconds()
				b.ReportMetric(raw, "raw-rows/s")
				b.ReportMetric(rate, "migrate-rows/s")
				b.ReportMetric(elapsed.Seconds(), "migrate-s")
				b.Logf("%s: %d rows in %.1fs = %.0f rows/s; raw batched writes %.0f rows/s (migration at %.0f%% of raw)",
					m.Name, benchRows, elapsed.Seconds(), rate, raw, 100*rate/raw)
			}
		})
	}
}
