package upgrade_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

func TestPreflightRefusals(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(c *upgradetest.Cluster)
		version string
		want    error
	}{
		{name: "replica on an unexpected release", version: "2.1.1", want: upgrade.ErrUnexpectedVersion},
		{name: "schema newer than FROM knows", version: source, setup: func(c *upgradetest.Cluster) { c.SetSchema(5) }, want: upgrade.ErrSchemaTooNew},
		{name: "artifact missing", version: source, setup: func(c *upgradetest.Cluster) { c.RemoveArtifact("2.2.5") }, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := upgradetest.New("test", tt.version, 3)
			if tt.setup != nil {
				tt.setup(c)
			}
			p := makePlan(t, source, target)
			e, _ := engine(t, c, t.TempDir(), fastOptions())
			err := e.Run(context.Background(), p)
			var se *upgrade.StepError
			if !errors.As(err, &se) || se.Step != upgrade.HopStep(p.Hops[0], upgrade.StepPreflight).String() {
				t.Fatalf("run: %v, want a preflight failure", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("run: %v, want %v", err, tt.want)
			}
			for id, v := range c.Versions() {
				if v != tt.version || c.Restarts(id) != 0 {
					t.Errorf("%s touched by a refused preflight", id)
				}
			}
		})
	}
}
