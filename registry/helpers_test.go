package registry

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// freeAddr returns a free loopback address. Picking and closing is racy,
// but the window is short.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newTestEtcd starts a single-member etcd for store tests and returns a
// client of it. Both end with the test.
func newTestEtcd(t testing.TB, fsync bool) *clientv3.Client {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	peer, client := freeAddr(t), freeAddr(t)
	pu, _ := url.Parse("http://" + peer)
	cu, _ := url.Parse("http://" + client)
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.InitialCluster = "test=http://" + peer
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.MaxTxnOps = 16384
	cfg.MaxRequestBytes = 16 << 20
	cfg.QuotaBackendBytes = 8 << 30
	cfg.UnsafeNoFsync = !fsync
	cfg.EnableGRPCGateway = false
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		e.Close()
		t.Fatal("etcd did not start")
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + client}, Logger: zap.NewNop(),
		MaxCallSendMsgSize: 16 << 20, MaxCallRecvMsgSize: 256 << 20})
	if err != nil {
		e.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.Close()
		e.Close()
	})
	return cli
}

// wipe deletes the whole registry database.
func wipe(t testing.TB, cli *clientv3.Client) {
	t.Helper()
	if _, err := cli.Delete(context.Background(), keyRoot, clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
}

// freshStore wipes the database, initialises it at schema and opens it as
// a release that knows known.
func freshStore(t testing.TB, cli *clientv3.Client, schema, known int) *Store {
	t.Helper()
	wipe(t, cli)
	ctx := context.Background()
	if _, err := InitSchema(ctx, cli, schema, "test"); err != nil {
		t.Fatal(err)
	}
	return openStore(t, cli, known)
}

func openStore(t testing.TB, cli *clientv3.Client, known int) *Store {
	t.Helper()
	st, err := OpenStore(context.Background(), cli, StoreOptions{KnownSchema: known, Release: releaseFor(known)})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// dump returns every row of the data tables (not properties, replicas or
// revision markers), key → value.
func dump(t testing.TB, cli *clientv3.Client) map[string]string {
	t.Helper()
	resp, err := cli.Get(context.Background(), keyRoot, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		if strings.HasPrefix(k, markerRoot) || strings.HasPrefix(k, prefixOf(TableProperties)) || strings.HasPrefix(k, prefixOf(TableReplicas)) {
			continue
		}
		out[k] = string(kv.Value)
	}
	return out
}

// restore writes rows (from dump) into a wiped database at schema.
func restore(t testing.TB, cli *clientv3.Client, rows map[string]string, schema int) {
	t.Helper()
	wipe(t, cli)
	ctx := context.Background()
	if _, err := InitSchema(ctx, cli, schema, "test"); err != nil {
		t.Fatal(err)
	}
	var ops []clientv3.Op
	flush := func() {
		if len(ops) == 0 {
			return
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for k, v := range rows {
		ops = append(ops, clientv3.OpPut(k, v))
		if len(ops) == 500 {
			flush()
		}
	}
	flush()
}

// rowsOf decodes every row under a table's prefix.
func rowsOf[T any](t testing.TB, cli *clientv3.Client, table string) map[string]T {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefixOf(table), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]T{}
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			t.Fatalf("decode %s: %v", kv.Key, err)
		}
		out[string(kv.Key)] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, detail := cond()
		if ok {
			return
		}
		if detail != "" {
			last = detail
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
