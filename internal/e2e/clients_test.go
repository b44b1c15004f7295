package e2e

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/service"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ladder-dev/ladder/internal/poll"
)

// TestClients drives the registry clients people use — the Docker CLI,
// skopeo, crane and regctl — against one local 3-replica cluster: log in
// (a wrong password fails), push to one replica, pull from another, copy,
// list tags, delete, and pull without a login (refused once anonymous
// pulls are off). A client that is not installed skips its part with a
// message; LADDER_REQUIRE_DOCKER=1 (CI) makes that a failure.
func TestClients(t *testing.T) {
	e := newEnv(t)
	cluster := "clients"
	e.createCluster(cluster, "3.1.2")
	st := e.status(cluster)
	if len(st.Replicas) < 2 {
		t.Fatalf("want 2 replicas at least, got %d", len(st.Replicas))
	}
	hostA := strings.TrimPrefix(st.Replicas[0].URL, "https://")
	hostB := strings.TrimPrefix(st.Replicas[1].URL, "https://")
	// crane, regctl and skopeo verify the replicas against the cluster's
	// CA alone (Go reads SSL_CERT_FILE); the Docker daemon treats loopback
	// registries as insecure and does not verify them.
	rec, err := home.ReadRecord(e.home, cluster)
	if err != nil {
		t.Fatal(err)
	}
	caEnv := "SSL_CERT_FILE=" + rec.Secrets[service.CASecret]

	// A read-write user for docker, an admin user for the others (deletes).
	const pusherPW, opsPW = "pusher-pass-1", "ops-pass-123"
	e.mustIn(pusherPW+"\n", "users", "add", "pusher", "--role", "read-write", "--password-stdin", "--cluster", cluster)
	e.mustIn(opsPW+"\n", "users", "add", "ops", "--role", "admin", "--password-stdin", "--cluster", cluster)
	if out := e.must("users", "list", "--cluster", cluster); !strings.Contains(out, "pusher") || !strings.Contains(out, "read-write") {
		t.Fatalf("users list:\n%s", out)
	}

	// An image as a tarball, for the clients that push from a file.
	img, err := random.Image(4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "image.tar")
	if err := tarball.WriteToFile(tarPath, name.MustParseReference("example/image:1"), img); err != nil {
		t.Fatal(err)
	}

	t.Run("docker", func(t *testing.T) { testDocker(t, e, cluster, hostA, hostB, pusherPW) })
	t.Run("crane", func(t *testing.T) { testCrane(t, caEnv, hostA, hostB, opsPW, tarPath) })
	t.Run("regctl", func(t *testing.T) { testRegctl(t, caEnv, hostA, hostB, opsPW, tarPath) })
	t.Run("skopeo", func(t *testing.T) { testSkopeo(t, caEnv, hostA, hostB, opsPW, tarPath) })
}

// mustIn runs ladder with stdin and fails the test unless it exits 0.
func (e *env) mustIn(stdin string, args ...string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		e.t.Fatalf("ladder %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// tool finds a client, or skips (fails under LADDER_REQUIRE_DOCKER=1).
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, "go", "bin", name); fileExists(p) {
			return p
		}
	}
	if os.Getenv("LADDER_REQUIRE_DOCKER") == "1" {
		t.Fatalf("%s is not installed (LADDER_REQUIRE_DOCKER=1; .ci/run installs it)", name)
	}
	t.Skipf("%s is not installed: skipping its part", name)
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// client runs one client command with env and stdin, returning its
// combined output and error.
type client struct {
	t   *testing.T
	bin string
	env []string
}

func (c client) run(stdin string, args ...string) (string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func (c client) must(stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", filepath.Base(c.bin), strings.Join(args, " "), err, out)
	}
	return out
}

func testDocker(t *testing.T, e *env, cluster, hostA, hostB, pw string) {
	bin := tool(t, "docker")
	dc := client{t: t, bin: bin, env: []string{"DOCKER_CONFIG=" + t.TempDir(), "DOCKER_BUILDKIT=0"}}
	if out, err := dc.run("", "version", "--format", "{{.Server.Version}}"); err != nil {
		if os.Getenv("LADDER_REQUIRE_DOCKER") == "1" {
			t.Fatalf("no Docker engine answers (LADDER_REQUIRE_DOCKER=1): %v\n%s", err, out)
		}
		t.Skipf("no Docker engine answers: skipping the docker CLI's part: %s", strings.TrimSpace(out))
	}
	repo := "ladder-e2e-" + cluster + "/app"
	refA, refB := hostA+"/"+repo+":1", hostB+"/"+repo+":1"
	t.Cleanup(func() { _, _ = dc.run("", "rmi", "-f", refA, refB) })

	if out, err := dc.run("wrong-password\n", "login", hostA, "-u", "pusher", "--password-stdin"); err == nil {
		t.Fatalf("docker login with a wrong password succeeded:\n%s", out)
	}
	dc.must(pw+"\n", "login", hostA, "-u", "pusher", "--password-stdin")

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello from "+cluster+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY hello.txt /hello.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dc.must("", "build", "-q", "-t", refA, dir)
	dc.must("", "push", refA)

	// Pull from the other replica, after deleting the local copy.
	dc.must("", "rmi", refA)
	dc.must("", "pull", refB)
	dc.must("", "rmi", refB)
	dc.must("", "logout", hostA)

	// Without a login: pulls work while anonymous pulls are allowed...
	dc.must("", "pull", refA)
	dc.must("", "rmi", refA)
	// ...and are refused once they are not (every replica applies the
	// setting within seconds: wait for it).
	e.must("users", "anonymous-pull", "off", "--cluster", cluster)
	t.Cleanup(func() { e.must("users", "anonymous-pull", "on", "--cluster", cluster) })
	var last string
	err := poll.For(context.Background(), 30*time.Second, 500*time.Millisecond, func() (bool, error) {
		out, err := dc.run("", "pull", refB)
		last = out
		return err != nil, nil
	})
	if err != nil {
		t.Fatalf("anonymous pull still works after anonymous-pull off:\n%s", last)
	}
	if !strings.Contains(strings.ToLower(last), "unauthorized") && !strings.Contains(strings.ToLower(last), "denied") &&
		!strings.Contains(strings.ToLower(last), "authentication required") {
		t.Errorf("refused anonymous pull does not say why:\n%s", last)
	}
	// Logged in, it works again.
	dc.must(pw+"\n", "login", hostB, "-u", "pusher", "--password-stdin")
	dc.must("", "pull", refB)
}

func testCrane(t *testing.T, caEnv, hostA, hostB, pw, tarPath string) {
	cr := client{t: t, bin: tool(t, "crane"), env: []string{"DOCKER_CONFIG=" + t.TempDir(), caEnv}}
	if out, err := cr.run("wrong-password\n", "auth", "login", hostA, "-u", "ops", "--password-stdin"); err == nil {
		// crane stores credentials without checking them: the first call
		// with them must fail instead.
		if out, err := cr.run("", "push", tarPath, hostA+"/crane/app:1"); err == nil {
			t.Fatalf("crane push with a wrong password succeeded:\n%s", out)
		}
		_ = out
	}
	cr.must(pw+"\n", "auth", "login", hostA, "-u", "ops", "--password-stdin")
	cr.must(pw+"\n", "auth", "login", hostB, "-u", "ops", "--password-stdin")
	cr.must("", "push", tarPath, hostA+"/crane/app:1")
	cr.must("", "pull", hostB+"/crane/app:1", filepath.Join(t.TempDir(), "pulled.tar"))
	cr.must("", "copy", hostA+"/crane/app:1", hostB+"/crane/app:2")
	if out := cr.must("", "ls", hostA+"/crane/app"); !strings.Contains(out, "1\n") || !strings.Contains(out, "2\n") {
		t.Errorf("crane ls = %q, want tags 1 and 2", out)
	}
	dgst := strings.TrimSpace(cr.must("", "digest", hostA+"/crane/app:2"))
	cr.must("", "delete", hostB+"/crane/app@"+dgst)
	if out, err := cr.run("", "manifest", hostA+"/crane/app:1"); err == nil {
		t.Errorf("manifest still there after crane delete:\n%s", out)
	}
}

func testRegctl(t *testing.T, caEnv, hostA, hostB, pw, tarPath string) {
	home := t.TempDir()
	rc := client{t: t, bin: tool(t, "regctl"), env: []string{"HOME=" + home, "REGCTL_CONFIG=" + filepath.Join(home, "regctl.json"), caEnv}}
	for _, h := range []string{hostA, hostB} {
		rc.must("", "registry", "set", "--tls", "enabled", h)
	}
	if out, err := rc.run("wrong-password\n", "registry", "login", hostA, "-u", "ops", "--pass-stdin"); err == nil {
		if out, err := rc.run("", "image", "import", hostA+"/regctl/app:1", tarPath); err == nil {
			t.Fatalf("regctl push with a wrong password succeeded:\n%s", out)
		}
		_ = out
	}
	for _, h := range []string{hostA, hostB} {
		rc.must(pw+"\n", "registry", "login", h, "-u", "ops", "--pass-stdin")
	}
	rc.must("", "image", "import", hostA+"/regctl/app:1", tarPath)
	rc.must("", "image", "export", hostB+"/regctl/app:1", filepath.Join(t.TempDir(), "out.tar"))
	rc.must("", "image", "copy", hostA+"/regctl/app:1", hostB+"/regctl/app:2")
	if out := rc.must("", "tag", "ls", hostA+"/regctl/app"); !strings.Contains(out, "1\n") || !strings.Contains(out, "2\n") {
		t.Errorf("regctl tag ls = %q, want tags 1 and 2", out)
	}
	rc.must("", "tag", "delete", hostB+"/regctl/app:2")
	if out := rc.must("", "tag", "ls", hostA+"/regctl/app"); strings.Contains(out, "2\n") {
		t.Errorf("tag 2 still listed after regctl tag delete: %q", out)
	}
}

func testSkopeo(t *testing.T, caEnv, hostA, hostB, pw, tarPath string) {
	auth := filepath.Join(t.TempDir(), "auth.json")
	sk := client{t: t, bin: tool(t, "skopeo"), env: []string{"REGISTRY_AUTH_FILE=" + auth, caEnv}}
	if out, err := sk.run("wrong-password\n", "login", "--tls-verify=true", "-u", "ops", "--password-stdin", hostA); err == nil {
		t.Fatalf("skopeo login with a wrong password succeeded:\n%s", out)
	}
	for _, h := range []string{hostA, hostB} {
		sk.must(pw+"\n", "login", "--tls-verify=true", "-u", "ops", "--password-stdin", h)
	}
	in := fmt.Sprintf("docker://%s/skopeo/app:1", hostA)
	sk.must("", "copy", "--dest-tls-verify=true", "docker-archive:"+tarPath, in)
	layout := filepath.Join(t.TempDir(), "layout")
	sk.must("", "copy", "--src-tls-verify=true", fmt.Sprintf("docker://%s/skopeo/app:1", hostB), "oci:"+layout+":app")
	sk.must("", "copy", "--src-tls-verify=true", "--dest-tls-verify=true", in, fmt.Sprintf("docker://%s/skopeo/app:2", hostB))
	if out := sk.must("", "list-tags", "--tls-verify=true", fmt.Sprintf("docker://%s/skopeo/app", hostA)); !strings.Contains(out, `"2"`) {
		t.Errorf("skopeo list-tags = %s, want tag 2", out)
	}
	sk.must("", "delete", "--tls-verify=true", fmt.Sprintf("docker://%s/skopeo/app:2", hostA))
	if out, err := sk.run("", "inspect", "--tls-verify=true", fmt.Sprintf("docker://%s/skopeo/app:2", hostB)); err == nil {
		t.Errorf("image still there after skopeo delete:\n%s", out)
	}
}
