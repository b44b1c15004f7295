package etcd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCachePath(t *testing.T) {
	tests := []struct {
		name    string
		version string
		want    string
		wantErr bool
	}{
		{name: "plain", version: "3.6.16", want: "3.6.16"},
		{name: "leading v", version: "v3.7.3", want: "3.7.3"},
		{name: "pre-release", version: "3.7.0-rc.0", want: "3.7.0-rc.0"},
		{name: "two parts", version: "3.6", wantErr: true},
		{name: "not etcd 3", version: "2.3.8", wantErr: true},
		{name: "path escape", version: "3.6.16/../../x", wantErr: true},
		{name: "empty", version: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := CachePath("/cache", tc.version)
			if tc.wantErr {
				if !errors.Is(err, ErrVersion) {
					t.Fatalf("CachePath(%q) = %v, want ErrVersion", tc.version, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join("/cache", "etcd", tc.want)
			if b.Version != tc.want || b.Etcd != filepath.Join(dir, "etcd") || b.Etcdctl != filepath.Join(dir, "etcdctl") {
				t.Errorf("CachePath(%q) = %+v", tc.version, b)
			}
		})
	}
}

func TestReleasesSorted(t *testing.T) {
	rs := Releases()
	for i := 1; i < len(rs); i++ {
		if !versionLess(rs[i-1], rs[i]) {
			t.Errorf("releases out of order: %s before %s", rs[i-1], rs[i])
		}
	}
	for _, want := range []string{"3.5.20", "3.5.35", "3.6.11", "3.6.16", "3.7.3"} {
		found := false
		for _, r := range rs {
			found = found || r == want
		}
		if !found {
			t.Errorf("built-in releases lack %s", want)
		}
	}
}

// A cached release is returned without building: with no go command on
// PATH, Fetch would fail if it tried.
func TestFetchCachedNeedsNoBuild(t *testing.T) {
	cache := t.TempDir()
	want, err := CachePath(cache, "3.6.16")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(want.Etcd), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{want.Etcd, want.Etcdctl} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", "")
	got, err := Fetch(context.Background(), cache, "v3.6.16", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("Fetch = %+v, want %+v", got, want)
	}
}

// An incomplete cache folder (one binary missing) is not a cached release.
func TestCachedIncomplete(t *testing.T) {
	cache := t.TempDir()
	b, _ := CachePath(cache, "3.7.3")
	if err := os.MkdirAll(filepath.Dir(b.Etcd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.Etcd, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Cached(cache, "3.7.3"); !errors.Is(err, ErrNotCached) {
		t.Errorf("Cached with etcdctl missing = %v, want ErrNotCached", err)
	}
}

// A release folder with etcd and the reason etcdctl is missing is cached,
// without etcdctl.
func TestCachedWithoutEtcdctl(t *testing.T) {
	cache := t.TempDir()
	b, _ := CachePath(cache, "3.5.20")
	if err := os.MkdirAll(filepath.Dir(b.Etcd), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.Etcd, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	why := "resolve etcdctl: go get go.etcd.io/etcd/etcdctl/v3@v3.5.20: exit status 1"
	if err := os.WriteFile(filepath.Join(filepath.Dir(b.Etcd), etcdctlMissingFile), []byte(why+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Cached(cache, "3.5.20")
	if err != nil {
		t.Fatal(err)
	}
	if got.Etcd != b.Etcd || got.Etcdctl != "" || got.EtcdctlMissing != why {
		t.Errorf("Cached = %+v; want etcd, no etcdctl, and why", got)
	}
}

func TestFetchWithoutGo(t *testing.T) {
	t.Setenv("PATH", "")
	_, err := Fetch(context.Background(), t.TempDir(), "3.6.16", nil)
	if err == nil || !strings.Contains(err.Error(), "Go toolchain") {
		t.Errorf("Fetch without go = %v, want an error naming the Go toolchain", err)
	}
}

// A second taker of the lock waits until the first releases it.
func TestLockFileExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	ctx := context.Background()
	unlock, err := lockFile(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := lockFile(ctx, path, discardLogger())
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("second lockFile returned %v while the lock was held", err)
	case <-time.After(3 * lockPoll):
	}
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("second lockFile after release: %v", err)
	}

	// A waiter gives up when its context ends.
	unlock, err = lockFile(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := lockFile(cctx, path, discardLogger()); !errors.Is(err, context.Canceled) {
		t.Errorf("lockFile with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestTail(t *testing.T) {
	var lines []string
	for i := range 30 {
		lines = append(lines, strings.Repeat("x", i))
	}
	got := tail(strings.Join(lines, "\n")+"\n", 3)
	want := "…\n" + strings.Join(lines[27:], "\n")
	if got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
}

// TestFetchReleases builds (or finds cached) the releases the end-to-end
// tests use: LADDER_ETCD_VERSIONS (space separated) or 3.5.35, 3.6.16 and
// 3.7.3, into LADDER_ETCD_CACHE. Minutes per release when not cached.
func TestFetchReleases(t *testing.T) {
	requireEtcdTests(t)
	versions := strings.Fields(os.Getenv("LADDER_ETCD_VERSIONS"))
	if len(versions) == 0 {
		versions = []string{"3.5.35", "3.6.16", "3.7.3"}
	}
	cache := testCacheDir(t)
	for _, v := range versions {
		b, err := Fetch(t.Context(), cache, v, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t.Context(), b.Etcd, b.Version); err != nil {
			t.Errorf("cached %s: %v", v, err)
		}
		if b.Etcdctl == "" {
			t.Logf("etcd %s cached without etcdctl: %s", v, b.EtcdctlMissing)
		} else if err := verify(t.Context(), b.Etcdctl, b.Version); err != nil {
			t.Errorf("cached %s: %v", v, err)
		}
	}
}

// A release the module proxy does not serve fails with the go command's
// own words.
func TestFetchUnknownRelease(t *testing.T) {
	requireEtcdTests(t)
	_, err := Fetch(t.Context(), t.TempDir(), "3.5.999", testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "resolve etcd") || !strings.Contains(err.Error(), "v3.5.999") {
		t.Fatalf("Fetch(3.5.999) = %v, want a resolve error naming the version", err)
	}
	t.Logf("error as a person sees it:\n%v", err)
}
