package cli

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/ladder-dev/ladder/driver/docker"
)

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestAdoptRefusals: adopt refuses what it cannot take over, before it
// records anything, saying what is wrong and what to do. No etcd needed.
func TestAdoptRefusals(t *testing.T) {
	dead := "http://127.0.0.1:" + strconv.Itoa(closedPort(t))
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"no service", []string{"--members", "a=" + dead}, ExitUsage, []string{"--service is required", "--service etcd"}},
		{"registry", []string{"--service", "registry", "--members", "a=" + dead}, ExitUsage, []string{"ladder adopts etcd clusters"}},
		{"docker without containers", []string{"--service", "etcd", "--driver", "docker", "--members", "a=" + dead}, ExitUsage,
			[]string{"--containers is required with --driver docker"}},
		{"containers without docker", []string{"--service", "etcd", "--containers", "etcd1"}, ExitUsage,
			[]string{"--containers names docker containers: it goes with --driver docker"}},
		{"unknown driver", []string{"--service", "etcd", "--driver", "swarm", "--members", "a=" + dead}, ExitUsage, []string{`unknown --driver "swarm"`}},
		{"no members", []string{"--service", "etcd"}, ExitUsage, []string{"--members is required", "NAME=CLIENT_URL"}},
		{"no equals", []string{"--service", "etcd", "--members", "http://127.0.0.1:2379"}, ExitUsage,
			[]string{`invalid --members entry "http://127.0.0.1:2379"`, "NAME=CLIENT_URL"}},
		{"empty name", []string{"--service", "etcd", "--members", "=http://127.0.0.1:2379"}, ExitUsage, []string{"NAME=CLIENT_URL"}},
		{"twice", []string{"--service", "etcd", "--members", "a=http://127.0.0.1:1,a=http://127.0.0.1:2"}, ExitUsage, []string{"member a given twice"}},
		{"no port", []string{"--service", "etcd", "--members", "a=http://127.0.0.1"}, ExitUsage, []string{"has no port"}},
		{"not a url", []string{"--service", "etcd", "--members", "a=127.0.0.1:2379"}, ExitUsage, []string{"invalid URL", "http://127.0.0.1:PORT"}},
		{"remote", []string{"--service", "etcd", "--members", "a=http://10.1.2.3:2379"}, ExitUsage, []string{"not on this machine's loopback"}},
		{"https unreachable", []string{"--service", "etcd", "--members", "a=" + strings.Replace(dead, "http:", "https:", 1)}, ExitFailed,
			[]string{"member a at https://", "does not answer", "connection refused"}},
		{"key without certificate", []string{"--service", "etcd", "--members", "a=" + dead, "--key", "k.pem"}, ExitUsage,
			[]string{"a client certificate needs its key: give both"}},
		{"missing CA file", []string{"--service", "etcd", "--members", "a=" + dead, "--ca", "/nonexistent/ca.crt"}, ExitUsage,
			[]string{"read CA certificates", "/nonexistent/ca.crt"}},
		{"data dir of no member", []string{"--service", "etcd", "--members", "a=" + dead, "--data-dirs", "b=/tmp"}, ExitUsage,
			[]string{"--data-dirs names b, which is not in --members"}},
		{"unreachable", []string{"--service", "etcd", "--members", "a=" + dead}, ExitFailed,
			[]string{"member a at " + dead + " does not answer", "connection refused", "Start member a, or correct its client URL in --members"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("LADDER_HOME", t.TempDir())
			code, _, errOut := run(t, append([]string{"cluster", "adopt", "--cluster", "kv"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if code, out, _ := run(t, "cluster", "list"); code != ExitOK || strings.Contains(out, "kv") {
				t.Errorf("a refused adopt left a cluster behind: exit %d\n%s", code, out)
			}
		})
	}
}

// TestAdoptRefusalJSON: with -o json the refusal is a JSON object on
// stdout with the hint.
func TestAdoptRefusalJSON(t *testing.T) {
	t.Setenv("LADDER_HOME", t.TempDir())
	dead := "http://127.0.0.1:" + strconv.Itoa(closedPort(t))
	code, out, _ := run(t, "cluster", "adopt", "--cluster", "kv", "--service", "etcd", "--members", "a="+dead, "-o", "json")
	if code != ExitFailed || !strings.Contains(out, `"hint": "start member a`) || !strings.Contains(out, `"exit": 1`) {
		t.Errorf("exit %d, stdout:\n%s", code, out)
	}
}

// TestForgetUnknownCluster: forget of a cluster with no record says so.
func TestForgetUnknownCluster(t *testing.T) {
	t.Setenv("LADDER_HOME", t.TempDir())
	code, _, errOut := run(t, "cluster", "forget", "--cluster", "nope")
	if code != ExitUsage || !strings.Contains(errOut, `no such cluster "nope"`) {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}

// TestPublishedClientPort: the host port an adopted container's etcd
// client port is reached at, or why there is none.
func TestPublishedClientPort(t *testing.T) {
	tests := []struct {
		name   string
		ports  map[string][]string
		listen string
		want   int
		err    string
	}{
		{"default port on loopback", map[string][]string{"2379/tcp": {"127.0.0.1:32768"}}, "", 32768, ""},
		{"all interfaces", map[string][]string{"2379/tcp": {"0.0.0.0:2379"}}, "http://0.0.0.0:2379", 2379, ""},
		{"other port", map[string][]string{"4001/tcp": {"127.0.0.1:4001"}}, "http://0.0.0.0:4001,http://0.0.0.0:2379", 4001, ""},
		{"only on another address", map[string][]string{"2379/tcp": {"10.0.0.5:2379"}}, "", 0, "not published on this machine's loopback"},
		{"not published", nil, "", 0, "-p 127.0.0.1::2379"},
		{"no port in URL", nil, "http://0.0.0.0", 0, "has no port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := publishedClientPort(docker.Container{Ports: tc.ports}, tc.listen)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

func TestOnMount(t *testing.T) {
	c := docker.Container{Mounts: []string{"/var/lib/etcd", "/certs"}}
	for path, want := range map[string]bool{"/var/lib/etcd": true, "/var/lib/etcd/m1": true, "/var/lib/etcdx": false, "/default.etcd": false} {
		if got := c.OnMount(path); got != want {
			t.Errorf("OnMount(%s) = %v, want %v", path, got, want)
		}
	}
}
