package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/service/etcd"
	"github.com/ladder-dev/ladder/upgrade"
)

// dockerCLI runs the docker command and fails the test on error.
func dockerCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestEtcdDockerAdoptUpgrade: three etcd 3.5.35 containers an operator
// ran by hand (their own image, network with aliases, volumes, client
// ports published on ports the engine chose, a flag ladder does not set)
// are adopted by name as they run, upgraded by ladder to 3.7.3 with every
// key kept, each keeping its name, command line, volume and URL, and
// forgotten while they run. Needs LADDER_ETCD_TESTS=1 and the docker
// command; everything it made is removed after, images included.
func TestEtcdDockerAdoptUpgrade(t *testing.T) {
	cache := etcdReleases(t, "3.5.35", "3.6.16", "3.7.3")
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker command")
	}
	if err := exec.Command("docker", "info").Run(); err != nil {
		t.Skipf("docker: %v", err)
	}
	before := dockerCLI(t, "images", "--format", "{{.Repository}}:{{.Tag}}")
	t.Cleanup(func() {
		for _, img := range strings.Fields(dockerCLI(t, "images", "--format", "{{.Repository}}:{{.Tag}}")) {
			if strings.HasPrefix(img, "ladder-etcd") && !strings.Contains(before, img) {
				_ = exec.Command("docker", "rmi", img).Run()
			}
		}
	})
	tag := fmt.Sprintf("adopt%d", os.Getpid()%100000)
	b, _ := etcd.Cached(cache, "3.5.35")
	ctxDir := t.TempDir()
	bin, err := os.ReadFile(b.Etcd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "etcd"), bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY etcd /usr/local/bin/etcd\nENTRYPOINT [\"/usr/local/bin/etcd\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	image := "ladder-test-etcd:" + tag
	dockerCLI(t, "build", "-q", "-t", image, ctxDir)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", image).Run() })
	net := "ladder-test-" + tag
	dockerCLI(t, "network", "create", net)
	t.Cleanup(func() { _ = exec.Command("docker", "network", "rm", net).Run() })
	names := []string{"m1", "m2", "m3"}
	var peers, containers []string
	for _, n := range names {
		peers = append(peers, n+"=http://"+n+":2380")
		containers = append(containers, tag+"-"+n)
	}
	for i, n := range names {
		c := containers[i]
		t.Cleanup(func() {
			_ = exec.Command("docker", "rm", "-f", c).Run()
			_ = exec.Command("docker", "volume", "rm", c).Run()
		})
		dockerCLI(t, "run", "-d", "--name", c, "--hostname", n, "--network", net, "--network-alias", n,
			"-v", c+":/var/lib/etcd", "-p", "127.0.0.1::2379", image,
			"--name", n, "--data-dir", "/var/lib/etcd/"+n,
			"--listen-client-urls", "http://0.0.0.0:2379", "--advertise-client-urls", "http://"+n+":2379",
			"--listen-peer-urls", "http://0.0.0.0:2380", "--initial-advertise-peer-urls", "http://"+n+":2380",
			"--initial-cluster", strings.Join(peers, ","), "--initial-cluster-state", "new", "--heartbeat-interval", "100")
	}
	var eps []string
	for _, c := range containers {
		hp := dockerCLI(t, "port", c, "2379")
		hp, _, _ = strings.Cut(hp, "\n")
		eps = append(eps, "http://"+hp)
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := poll.For(ctx, time.Minute, 100*time.Millisecond, func() (bool, error) {
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := cl.Put(wctx, "up", "1")
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the containers take no write: %v\n%s", err, dockerCLI(t, "logs", "--tail", "10", containers[0]))
	}
	const keys = 500
	for i := range keys {
		if _, err := cl.Put(ctx, fmt.Sprintf("dock/%04d", i), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	t.Setenv("LADDER_HOME", t.TempDir())
	if err := os.Symlink(cache, filepath.Join(os.Getenv("LADDER_HOME"), "cache")); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "cluster", "adopt", "--cluster", "dk", "--service", "etcd", "--driver", "docker",
		"--containers", strings.Join(containers, ","), "-o", "json")
	if code != ExitOK {
		t.Fatalf("adopt: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Cleanup(func() { run(t, "cluster", "destroy", "--cluster", "dk") })
	start := time.Now()
	code, out, errOut = run(t, "upgrade", "--cluster", "dk", "--to", "3.7.3", "--yes")
	if code != ExitOK {
		t.Fatalf("upgrade: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Logf("FIGURE adopted docker cluster, %d keys, 3.5.35 -> 3.6.16 -> 3.7.3 (images built on the way when absent): %.1fs", keys, time.Since(start).Seconds())
	code, out, _ = run(t, "cluster", "status", "--cluster", "dk", "-o", "json")
	var st upgrade.Status
	if code != ExitOK || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if st.Version != "3.7.3" || st.ClusterVersion != "3.7.0" || !st.Store.Settled {
		t.Errorf("after the upgrade: version %s, cluster version %s, settled %v", st.Version, st.ClusterVersion, st.Store.Settled)
	}
	for i, r := range st.Replicas {
		if r.ID != names[i] || r.URL != eps[i] {
			t.Errorf("replica %s at %s, want %s at %s (its URL kept)", r.ID, r.URL, names[i], eps[i])
		}
		args := dockerCLI(t, "inspect", containers[i], "--format", "{{json .Args}} {{.Config.Image}} {{index .Config.Labels \"ladder.cluster\"}}")
		if !strings.Contains(args, `"--heartbeat-interval","100"`) || !strings.Contains(args, "ladder-etcd:3.7.3-") {
			t.Errorf("%s runs %s: want its own command line on ladder-etcd:3.7.3", containers[i], args)
		}
		if strings.HasSuffix(args, " dk") {
			t.Errorf("%s carries ladder.cluster=dk, which a destroy of that name would remove after forget", containers[i])
		}
	}
	resp, err := cl.Get(ctx, "dock/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != keys {
		t.Errorf("%d keys after the upgrade, want %d", len(resp.Kvs), keys)
	}
	for _, kv := range resp.Kvs {
		var i int
		fmt.Sscanf(strings.TrimPrefix(string(kv.Key), "dock/"), "%d", &i)
		if string(kv.Value) != fmt.Sprintf("v%d", i) {
			t.Errorf("%s = %s, want v%d", kv.Key, kv.Value, i)
		}
	}
	if code, _, errOut := run(t, "cluster", "forget", "--cluster", "dk"); code != ExitOK {
		t.Fatalf("forget: exit %d\n%s", code, errOut)
	}
	if _, err := cl.Put(ctx, "after-forget", "1"); err != nil {
		t.Errorf("the cluster takes no write after forget: %v", err)
	}
}
