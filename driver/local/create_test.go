package local

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/service"
)

// TestCreateRetriesTakenPort: a port chosen for a new cluster is taken
// before its replica binds it (here by the test itself); Create starts over
// with other ports and the cluster comes up.
func TestCreateRetriesTakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	calls := 0
	opts := Options{Home: t.TempDir(), StartTimeout: 30 * time.Second,
		pickPorts: func(n int) ([]int, error) {
			calls++
			ports, err := freePorts(n)
			if calls == 1 && err == nil {
				ports[1] = taken.Addr().(*net.TCPAddr).Port // replica-1's peer port
			}
			return ports, err
		}}
	ctx := context.Background()
	d, err := Create(ctx, driver.Spec{Cluster: "retry", Service: service.Registry{Binary: testbin.Ladder(t)}, Version: "3.1.2", Replicas: 3}, opts)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer d.Destroy(ctx)
	if calls != 2 {
		t.Fatalf("ports chosen %d times, want 2 (one retry)", calls)
	}
	reps, err := d.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reps {
		if !r.Running {
			t.Errorf("%s not running after the retry", r.ID)
		}
	}
}
