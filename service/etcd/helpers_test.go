package etcd

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// requireEtcdTests skips tests that build or run real etcd releases
// unless LADDER_ETCD_TESTS=1.
func requireEtcdTests(t *testing.T) {
	t.Helper()
	if os.Getenv("LADDER_ETCD_TESTS") != "1" {
		t.Skip("builds and runs real etcd releases (minutes): set LADDER_ETCD_TESTS=1 (and LADDER_ETCD_CACHE to keep the builds)")
	}
}

// testCacheDir is the release cache of the real-etcd tests:
// LADDER_ETCD_CACHE, or ladder-releases under the user's cache folder.
func testCacheDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("LADDER_ETCD_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("find a cache folder (set LADDER_ETCD_CACHE): %v", err)
	}
	return filepath.Join(d, "ladder-releases")
}

// testLogger logs through t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
