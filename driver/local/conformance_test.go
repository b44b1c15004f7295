package local_test

import (
	"context"
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
		return drivertest.Create(t, "conformance", 2*time.Minute, func(ctx context.Context, name string) (*local.Driver, error) {
			return local.Create(ctx, drivertest.Spec(name, version, testbin.Ladder(t)), local.Options{Home: t.TempDir(), StopGrace: 5 * time.Second})
		})
	})
}
