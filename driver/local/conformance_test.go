package local_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/drivertest"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/testbin"
)

// TestMain is the package's: it removes the ladder binary the tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real replicas; skipped with -short")
	}
	drivertest.Run(t, func(t *testing.T, version string) driver.Driver {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		d, err := local.Create(ctx, drivertest.Spec("conformance-"+hex.EncodeToString(b), version, testbin.Ladder(t)),
			local.Options{Home: t.TempDir(), StopGrace: 5 * time.Second})
		if err != nil {
			t.Fatalf("create cluster: %v", err)
		}
		t.Cleanup(func() {
			if err := d.Destroy(context.Background()); err != nil {
				t.Errorf("destroy cluster: %v", err)
			}
		})
		return d
	})
}
