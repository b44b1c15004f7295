package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPrunerReclaimsAbandonedUploads leaves 10,000 abandoned uploads in the
// blob folder of a running replica and waits for its pruner to remove
// them all, while a fresh upload stays.
func TestPrunerReclaimsAbandonedUploads(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a replica")
	}
	cfgs := testCluster(t, "prune", "3.1.2", 1)
	cfgs[0].UploadMaxAge = 2 * time.Second
	dir := filepath.Join(cfgs[0].BlobDir, "uploads")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	old := time.Now().Add(-time.Hour)
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("%048x", i))
		if err := os.WriteFile(p, []byte("abandoned"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	fresh := filepath.Join(dir, "fresh-upload")
	reps, err := tryStartAll(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reps[0].Close() })
	// Keep one upload busy: written to now and then, it is never idle.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			_ = os.WriteFile(fresh, []byte("busy"), 0o644)
			time.Sleep(200 * time.Millisecond)
		}
	}()
	start := time.Now()
	waitFor(t, time.Minute, "the pruner to remove 10,000 uploads", func() (bool, string) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false, err.Error()
		}
		return len(entries) <= 1, fmt.Sprintf("%d uploads left", len(entries))
	})
	t.Logf("pruner reclaimed %d abandoned uploads within %s of the replica's start", n, time.Since(start).Round(10*time.Millisecond))
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the busy upload was pruned: %v", err)
	}
}
