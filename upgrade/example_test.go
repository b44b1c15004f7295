package upgrade_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/upgrade"
	"github.com/ladder-dev/ladder/upgrade/upgradetest"
)

// Example shows how a command wires the engine: open the cluster's
// journal, resume an unfinished upgrade's plan if there is one, run, and
// print progress from events.
func Example() {
	dir, _ := os.MkdirTemp("", "journal")
	defer os.RemoveAll(dir)
	cluster := upgradetest.New("demo", "2.2.5", 3) // a real command uses a driver and the registry's App

	j, err := journal.Open(filepath.Join(dir, "demo"))
	if err != nil {
		panic(err)
	}
	p, resuming, err := upgrade.Unfinished(j)
	if err != nil {
		panic(err)
	}
	if !resuming {
		p, err = plan.Make(catalog.Builtin(), policy.MustParse("2.2.5"), policy.MustParse("3.0.1"), plan.Options{})
		if err != nil {
			panic(err)
		}
	}
	opts := upgrade.DefaultOptions()
	opts.PollInterval = time.Millisecond // the fake cluster moves on every probe
	e := &upgrade.Engine{
		Driver: cluster, App: cluster.App(), Journal: j, Options: opts,
		OnEvent: func(ev upgrade.Event) {
			switch ev.Type {
			case upgrade.EventHopStart, upgrade.EventDone:
				fmt.Println(ev.Message)
			}
		},
	}
	err = e.Run(context.Background(), p)
	var se *upgrade.StepError
	switch {
	case errors.As(err, &se):
		fmt.Println(se, "\nnext:", se.Hint)
	case err != nil:
		fmt.Println(err)
	}
	sum, _ := upgrade.Summarize(j)
	fmt.Println(sum.State, sum.Version, len(sum.Hops), "hops")
	// Output:
	// hop 1 of 2: 2.2.5 → 2.3.2
	// hop 2 of 2: 2.3.2 → 3.0.1
	// demo runs 3.0.1
	// done 3.0.1 2 hops
}
