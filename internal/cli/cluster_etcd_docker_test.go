package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// TestEtcdDockerCreateUpgrade: an etcd cluster of containers, its images
// built FROM scratch from the cached releases, upgraded from 3.5.35 to
// 3.7.3 with every key kept (the 3.7 snapshot check reading the members'
// volumes). Needs LADDER_ETCD_TESTS=1 and a Docker engine on this
// machine; the images it built and the cluster are removed after.
func TestEtcdDockerCreateUpgrade(t *testing.T) {
	versions := []string{"3.5.35", "3.6.16", "3.7.3"}
	cache := etcdReleases(t, versions...)
	cli, err := docker.NewClient()
	if err != nil {
		t.Skipf("docker: %v", err)
	}
	defer cli.Close()
	ctx := context.Background()
	if err := docker.Ping(ctx, cli); err != nil {
		t.Skipf("docker: %v", err)
	}
	// Remove, after, the images this test builds (not those there before).
	svc := service.Etcd{CacheDir: cache}
	for _, v := range versions {
		a, _ := svc.Artifact(v)
		build, err := docker.BuildID(a.Binary)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range []string{docker.ImageRef(service.EtcdName, v, build), docker.Repository(service.EtcdName) + "-base:" + build} {
			if _, err := cli.ImageInspect(ctx, ref); cerrdefs.IsNotFound(err) {
				t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
			}
		}
	}
	t.Setenv("LADDER_HOME", t.TempDir())
	h := os.Getenv("LADDER_HOME")
	if err := os.Symlink(cache, filepath.Join(h, "cache")); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("etcdd-%d", os.Getpid()%100000)
	code, out, errOut := run(t, "cluster", "create", "--cluster", name, "--service", "etcd", "--driver", "docker", "--version", "3.5.35", "-o", "json")
	t.Cleanup(func() {
		if code, _, errOut := run(t, "cluster", "destroy", "--cluster", name); code != ExitOK {
			t.Errorf("destroy: exit %d\n%s", code, errOut)
		}
	})
	if code != ExitOK {
		t.Fatalf("create: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "ladder-etcd:3.5.35-") {
		t.Errorf("create does not name the release's image:\n%s", errOut)
	}
	var st upgrade.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, r := range st.Replicas {
		eps = append(eps, r.URL)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const keys = 500
	for i := range keys {
		if _, err := c.Put(ctx, fmt.Sprintf("docker/%04d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	code, out, errOut = run(t, "upgrade", "--cluster", name, "--to", "3.7.3", "--yes")
	if code != ExitOK {
		t.Fatalf("upgrade: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("FIGURE docker etcd cluster, %d keys, 3.5.35 -> 3.6.16 -> 3.7.3 (images built on the way when absent): %.1fs", keys, time.Since(start).Seconds())
	code, out, _ = run(t, "cluster", "status", "--cluster", name, "-o", "json")
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if st.Version != "3.7.3" || st.ClusterVersion != "3.7.0" || !st.Store.Settled {
		t.Errorf("after the upgrade: version %s, cluster version %s, settled %v", st.Version, st.ClusterVersion, st.Store.Settled)
	}
	resp, err := c.Get(ctx, "docker/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != keys {
		t.Errorf("%d keys after the upgrade, want %d", len(resp.Kvs), keys)
	}
	for _, kv := range resp.Kvs {
		var i int
		fmt.Sscanf(strings.TrimPrefix(string(kv.Key), "docker/"), "%d", &i)
		if string(kv.Value) != fmt.Sprintf("v%d", i) {
			t.Errorf("%s = %s, want v%d", kv.Key, kv.Value, i)
		}
	}
}
