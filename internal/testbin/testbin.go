// Package testbin builds the ladder binary once per test process, for tests
// that start real replica processes.
package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once sync.Once
	path string
	err  error
	out  []byte
)

// Ladder returns the path of a freshly built ladder binary. The build is
// shared by every test of the process and removed when the process exits
// (tests call Cleanup from TestMain).
func Ladder(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		var dir string
		dir, err = os.MkdirTemp("", "ladder-bin-")
		if err != nil {
			return
		}
		path = filepath.Join(dir, "ladder")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/ladder")
		cmd.Dir = moduleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("build ladder: %v\n%s", err, out)
	}
	return path
}

// Cleanup removes the built binary.
func Cleanup() {
	if path != "" {
		os.RemoveAll(filepath.Dir(path))
	}
}

func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
