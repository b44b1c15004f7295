package cli

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/registry"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRegistryUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"serve without flags", []string{"registry", "serve", "--release", "2.2.4"}, "missing required flags: --id"},
		{"serve unknown release", []string{"registry", "serve", "--release", "2.2.3", "--id", "r", "--cluster", "c",
			"--data", "d", "--blobs", "b", "--listen", "x:1", "--peer-listen", "x:2", "--client-listen", "x:3"}, "invalid --release"},
		{"migrate without endpoints", []string{"registry", "migrate", "--release", "3.0.1"}, "--endpoints is required"},
		{"migrate past the release", []string{"registry", "migrate", "--release", "3.0.1", "--endpoints", "http://x", "--to-schema", "6"}, "knows schemas 1 to 5"},
		{"migrate bad batch", []string{"registry", "migrate", "--release", "3.0.1", "--endpoints", "http://x", "--batch", "0"}, "invalid --batch"},
		{"unknown flag", []string{"registry", "migrate", "--nope"}, "unknown flag"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, ExitUsage, tc.want)
			}
		})
	}
}

func TestRegistrySeedAndMigrate(t *testing.T) {
	dir := t.TempDir()
	r, err := registry.Start(context.Background(), registry.Config{ID: "replica-1", Cluster: "cli", Release: "2.2.4",
		DataDir: filepath.Join(dir, "data"), BlobDir: filepath.Join(dir, "blobs"), Listen: freeAddr(t),
		PeerListen: freeAddr(t), ClientListen: freeAddr(t), TickMs: 10, ElectionMs: 100, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	ep := r.ClientURL()
	if code, out, errOut := run(t, "registry", "seed", "--endpoints", ep, "--repositories", "8"); code != ExitOK || !strings.Contains(out, "seeded 8 repositories at schema 4") {
		t.Fatalf("seed: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := run(t, "registry", "migrate", "--release", "3.0.1", "--endpoints", ep, "--to-schema", "5", "--batch", "5")
	if code != ExitOK || !strings.Contains(out, "migrate 4->5 manifests-by-digest: done: schema is now 5") ||
		!strings.Contains(out, "convert batch 2") || !strings.Contains(out, "store schema is 5") {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "registry", "migrate", "--release", "3.0.1", "--endpoints", ep)
	if code != ExitOK || !strings.Contains(out, "nothing to do") {
		t.Errorf("second migrate: exit %d\n%s", code, out)
	}
	code, _, errOut = run(t, "registry", "migrate", "--release", "2.2.4", "--endpoints", ep)
	if code != ExitFailed || !strings.Contains(errOut, "store schema 5 is newer than release 2.2.4 knows (4): run release 3.0.0 or later") {
		t.Errorf("migrate as an older release: exit %d, %s", code, errOut)
	}
}
