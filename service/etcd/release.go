package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// releases are the etcd releases whose server and etcdctl modules the Go
// module proxy serves (both are needed to build), oldest first. Patch
// lists have gaps: the proxy serves no etcdctl module for 3.5.23, 3.5.31,
// 3.5.32, 3.6.12 or 3.6.13, and nothing for some other patches (3.5.24,
// 3.5.26 among them). For 3.5.20 it serves etcdctl but not the checksum of
// the etcdutl module etcdctl imports, so 3.5.20 builds without etcdctl.
var releases = []string{
	"3.5.0", "3.5.5", "3.5.7", "3.5.8", "3.5.9", "3.5.10", "3.5.11", "3.5.12", "3.5.15", "3.5.16",
	"3.5.20", "3.5.21", "3.5.33", "3.5.34", "3.5.35",
	"3.6.0", "3.6.4", "3.6.5", "3.6.8", "3.6.11", "3.6.14", "3.6.15", "3.6.16",
	"3.7.0", "3.7.1", "3.7.2", "3.7.3",
}

// Releases returns the built-in list of etcd releases, oldest first.
func Releases() []string { return append([]string(nil), releases...) }

// Binaries are the programs of one etcd release.
type Binaries struct {
	Version string
	Etcd    string // path of the etcd server
	// Etcdctl is the path of etcdctl, or "" when the module proxy could
	// not provide its modules (EtcdctlMissing says why). ladder itself
	// needs only the server.
	Etcdctl string
	// EtcdctlMissing is why etcdctl could not be built ("" when it was).
	EtcdctlMissing string
}

// etcdctlMissingFile, in a release folder, holds why etcdctl could not be
// built; its presence makes the folder complete without etcdctl.
const etcdctlMissingFile = "etcdctl.missing"

var versionRE = regexp.MustCompile(`^v?(3\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$`)

// normalize returns version without a leading "v", or an error if it is
// not an etcd 3.x release version.
func normalize(version string) (string, error) {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return "", fmt.Errorf("%w: %q (want MAJOR.MINOR.PATCH of etcd 3, such as 3.6.16)", ErrVersion, version)
	}
	return m[1], nil
}

// CachePath returns where Fetch keeps the binaries of version under
// cacheDir: cacheDir/etcd/<version>/{etcd,etcdctl}. The files exist only
// once Fetch has built them.
func CachePath(cacheDir, version string) (Binaries, error) {
	v, err := normalize(version)
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Join(cacheDir, "etcd", v)
	return Binaries{Version: v, Etcd: filepath.Join(dir, "etcd"), Etcdctl: filepath.Join(dir, "etcdctl")}, nil
}

// Cached returns the binaries of version if Fetch has built them under
// cacheDir, and ErrNotCached otherwise.
func Cached(cacheDir, version string) (Binaries, error) {
	b, err := CachePath(cacheDir, version)
	if err != nil {
		return Binaries{}, err
	}
	notCached := fmt.Errorf("%w: etcd %s in %s (fetch it first)", ErrNotCached, b.Version, cacheDir)
	if !executable(b.Etcd) {
		return Binaries{}, notCached
	}
	if executable(b.Etcdctl) {
		return b, nil
	}
	why, err := os.ReadFile(filepath.Join(filepath.Dir(b.Etcd), etcdctlMissingFile))
	if err != nil {
		return Binaries{}, notCached
	}
	b.Etcdctl, b.EtcdctlMissing = "", strings.TrimSpace(string(why))
	return b, nil
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o100 != 0
}

// Fetch returns the etcd and etcdctl binaries of version, building them
// from the Go module proxy into cacheDir/etcd/<version>/ if they are not
// there yet.
//
// `go install` cannot build etcd (its modules use replace directives), so
// Fetch builds in a scratch module: go get the server module at the
// release and go build it, then the same for etcdctl. The builds are
// static (CGO_ENABLED=0) and path-trimmed, so they run in images FROM
// scratch. Each takes minutes on a small machine, hence the cache:
//
//   - idempotent: a cached release returns at once;
//   - exclusive: a lock file (cacheDir/etcd/<version>.lock, flock) makes a
//     second Fetch of the same release wait for the first and then use its
//     result; the lock dies with its holder;
//   - atomic: the build goes to a temporary folder next to the cache, is
//     checked (etcd --version must report the release) and is renamed into
//     place, so a release folder is either complete or absent.
//
// etcd is required. etcdctl is not: when the proxy cannot provide its
// modules (a proxy may serve the server of a release but not every module
// etcdctl imports, as with 3.5.20's etcdutl), Fetch logs a warning, keeps
// the reason in the release folder and returns Etcdctl "" with
// EtcdctlMissing set; remove the release folder to try again.
//
// It needs the Go toolchain on PATH. A failed build returns an error that
// ends with the tail of the go command's output.
func Fetch(ctx context.Context, cacheDir, version string, log *slog.Logger) (Binaries, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := CachePath(cacheDir, version)
	if err != nil {
		return Binaries{}, err
	}
	if c, err := Cached(cacheDir, b.Version); err == nil {
		return c, nil
	}
	root := filepath.Join(cacheDir, "etcd")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(root, b.Version+".lock"), log)
	if err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
	}
	defer unlock()
	// Another Fetch may have finished while this one waited for the lock.
	if c, err := Cached(cacheDir, b.Version); err == nil {
		return c, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: building etcd needs the Go toolchain: %w", b.Version, err)
	}
	tmp, err := os.MkdirTemp(root, ".build-"+b.Version+"-")
	if err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
	}
	defer os.RemoveAll(tmp)
	mod := filepath.Join(tmp, "mod")
	out := filepath.Join(tmp, "out")
	for _, d := range []string{mod, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
		}
	}

	start := time.Now()
	log.Info("building etcd release", "version", b.Version, "cache", root)
	run := func(what string, args ...string) error {
		t0 := time.Now()
		if err := runGo(ctx, goBin, mod, args); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		log.Info("etcd build step done", "version", b.Version, "step", what, "seconds", time.Since(t0).Round(100*time.Millisecond).Seconds())
		return nil
	}
	build := func(name, module string) error {
		if err := run("resolve "+name, "get", module+"@v"+b.Version); err != nil {
			return err
		}
		if err := run("build "+name, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(out, name), module); err != nil {
			return err
		}
		return verify(ctx, filepath.Join(out, name), b.Version)
	}
	if err := run("create scratch module", "mod", "init", "ladder.invalid/etcd-build"); err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
	}
	if err := build("etcd", "go.etcd.io/etcd/server/v3"); err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
	}
	if err := build("etcdctl", "go.etcd.io/etcd/etcdctl/v3"); err != nil {
		if ctx.Err() != nil {
			return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, err)
		}
		log.Warn("etcdctl could not be built; caching etcd without it", "version", b.Version, "error", err)
		if werr := os.WriteFile(filepath.Join(out, etcdctlMissingFile), []byte(err.Error()+"\n"), 0o644); werr != nil {
			return Binaries{}, fmt.Errorf("fetch etcd %s: %w", b.Version, werr)
		}
	}
	if err := os.Rename(out, filepath.Dir(b.Etcd)); err != nil {
		return Binaries{}, fmt.Errorf("fetch etcd %s: move build into the cache: %w", b.Version, err)
	}
	log.Info("etcd release cached", "version", b.Version, "dir", filepath.Dir(b.Etcd), "seconds", time.Since(start).Round(time.Second).Seconds())
	return Cached(cacheDir, b.Version)
}

// goOutputTail is how many lines of a failed go command's output an error
// carries.
const goOutputTail = 15

// runGo runs the go command in dir for a static, reproducible build that
// ignores any workspace and never switches toolchains.
func runGo(ctx context.Context, goBin, dir string, args []string) error {
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOTOOLCHAIN=local")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(buf.String(), goOutputTail))
	}
	return nil
}

// verify checks that the program at path (etcd or etcdctl) runs and
// reports version.
func verify(ctx context.Context, path, version string) error {
	arg, want := "--version", "etcd Version: "+version
	if filepath.Base(path) == "etcdctl" {
		arg, want = "version", "etcdctl version: "+version
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, path, arg).CombinedOutput()
	if err != nil {
		return fmt.Errorf("check %s %s: %w\n%s", filepath.Base(path), arg, err, tail(string(out), goOutputTail))
	}
	if !strings.Contains(string(out), want+"\n") {
		return fmt.Errorf("check %s %s: %w: want %q in\n%s", filepath.Base(path), arg, ErrWrongBuild, want, tail(string(out), goOutputTail))
	}
	return nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"…"}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// lockPoll is how often lockFile retries a lock another process holds.
const lockPoll = 250 * time.Millisecond

// lockFile takes an exclusive flock on path, waiting while another process
// holds it (logging once), until ctx ends. The lock is released by the
// returned function or when the process exits.
func lockFile(ctx context.Context, path string, log *slog.Logger) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !logged {
			log.Info("another fetch is building this release; waiting for it", "lock", path)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, context.Cause(ctx))
		case <-time.After(lockPoll):
		}
	}
}
