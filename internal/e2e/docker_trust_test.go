package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/driver/docker"
)

// dockerCLI skips the test without a Docker CLI and engine (fails instead
// with LADDER_REQUIRE_DOCKER=1).
func dockerCLI(t *testing.T) {
	t.Helper()
	cli, err := docker.NewClient()
	if err == nil {
		err = docker.Ping(context.Background(), cli)
		cli.Close()
	}
	if err == nil {
		_, err = exec.LookPath("docker")
	}
	if err != nil {
		if os.Getenv("LADDER_REQUIRE_DOCKER") == "1" {
			t.Fatalf("docker: %v (LADDER_REQUIRE_DOCKER=1)", err)
		}
		t.Skipf("docker: %v; skipping", err)
	}
}

// TestDockerTrust: `ladder cluster trust --docker` installs the cluster's
// CA in /etc/docker/certs.d for every replica; the Docker CLI then logs
// in, pushes and pulls over HTTPS with no insecure-registries setting;
// --undo and destroy remove exactly what trust installed.
func TestDockerTrust(t *testing.T) {
	t.Parallel()
	dockerCLI(t)
	e := newEnv(t)
	const name = "trust"
	var built struct{ Build string }
	if err := json.Unmarshal([]byte(e.must("images", "build", "--versions", "3.1.2", "-o", "json")), &built); err != nil || built.Build == "" {
		t.Fatalf("images build: %v", err)
	}
	e.must("cluster", "create", "--cluster", name, "--version", "3.1.2", "--driver", "docker", "--build", built.Build)
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			e.run("cluster", "destroy", "--cluster", name)
		}
	})
	// Leave the engine's configuration as found: certs.d itself too.
	if _, err := os.Stat("/etc/docker/certs.d"); os.IsNotExist(err) {
		t.Cleanup(func() { _ = os.Remove("/etc/docker/certs.d") })
	}
	var res struct{ Installed []string }
	if err := json.Unmarshal([]byte(e.must("cluster", "trust", "--docker", "--cluster", name, "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	st := e.status(name)
	if len(res.Installed) != len(st.Replicas) {
		t.Fatalf("installed %v for %d replicas", res.Installed, len(st.Replicas))
	}
	t.Cleanup(func() {
		for _, f := range res.Installed {
			_ = os.Remove(f)
			_ = os.Remove(filepath.Dir(f))
		}
	})
	ca, err := os.ReadFile(filepath.Join(e.home, "clusters", name, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range res.Installed {
		host := strings.TrimPrefix(st.Replicas[i].URL, "https://")
		if want := filepath.Join("/etc/docker/certs.d", host, "ca.crt"); f != want {
			t.Errorf("installed %s, want %s", f, want)
		}
		if got, err := os.ReadFile(f); err != nil || !bytes.Equal(got, ca) {
			t.Errorf("%s: %v; does not hold the cluster's CA", f, err)
		}
	}

	// The Docker CLI, with a configuration of its own (no login of the
	// user's is touched), through two different replicas.
	cfg := t.TempDir()
	dockerRun := func(stdin string, args ...string) string {
		t.Helper()
		c := exec.Command("docker", args...)
		c.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
		c.Stdin = strings.NewReader(stdin)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	push := strings.TrimPrefix(st.Replicas[0].URL, "https://")
	pull := strings.TrimPrefix(st.Replicas[1].URL, "https://")
	ctxDir := t.TempDir()
	_ = os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY hello /hello\n"), 0o644)
	_ = os.WriteFile(filepath.Join(ctxDir, "hello"), []byte(name+" "+e.home+"\n"), 0o644)
	ref := push + "/trust/hello:1"
	dockerRun("", "build", "-q", "-t", ref, ctxDir)
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref, pull+"/trust/hello:1").Run() })
	pw := e.password(name)
	for _, h := range []string{push, pull} {
		dockerRun(pw+"\n", "login", "--username", "admin", "--password-stdin", h)
	}
	// Engines treat 127.0.0.0/8 as an insecure registry by default and
	// then do not read certs.d: say so, since the push below then proves
	// the CA was installed, not that the daemon verified with it.
	if info := dockerRun("", "info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}"); strings.Contains(info, "127.0.0.0") {
		t.Logf("this engine treats 127.0.0.0/8 as insecure (%s): it skips verifying the replicas at %s and %s whatever certs.d holds", strings.TrimSpace(info), push, pull)
	}
	dockerRun("", "push", ref)
	out := dockerRun("", "pull", pull+"/trust/hello:1")
	if !strings.Contains(out, "trust/hello:1") {
		t.Errorf("docker pull: %s", out)
	}

	// --undo removes what trust installed; trust again, then destroy
	// removes it too.
	e.must("cluster", "trust", "--docker", "--undo", "--cluster", name)
	for _, f := range res.Installed {
		if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
			t.Errorf("after --undo, %s: %v", filepath.Dir(f), err)
		}
	}
	e.must("cluster", "trust", "--docker", "--cluster", name)
	e.must("cluster", "destroy", "--cluster", name)
	destroyed = true
	for _, f := range res.Installed {
		if _, err := os.Stat(filepath.Dir(f)); !os.IsNotExist(err) {
			t.Errorf("after destroy, %s: %v", filepath.Dir(f), err)
		}
	}
}
