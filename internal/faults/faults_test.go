package faults

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/driver/swarm"
	"github.com/ladder-dev/ladder/internal/swarmtest"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/upgrade"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// A case spends most of its time waiting on its cluster: run four at
	// once unless -test.parallel says otherwise.
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set(strconv.Itoa(max(4, runtime.GOMAXPROCS(0))))
	}
	code := m.Run()
	if !swarmtest.Leave() {
		code = 1
	}
	testbin.Cleanup()
	os.Exit(code)
}

func containerRestart(timeout int) client.ContainerRestartOptions {
	return client.ContainerRestartOptions{Timeout: &timeout}
}

// sample is the fixed sample of the matrix that every test run covers:
// each fault, each target, steps of both hops, both drivers.
var sample = []fcase{
	{driver: local.Name, at: point{hop: 0, step: upgrade.StepWait, roll: 0}, fault: freeze, target: follower},
	{driver: local.Name, at: point{hop: 1, step: upgrade.StepPreflight}, fault: kill, target: leader},
	{driver: local.Name, at: point{hop: 1, step: upgrade.StepReplace, roll: 1}, fault: restart, target: replaced},
	{driver: local.Name, at: point{hop: 1, step: upgrade.StepMigrate}, fault: freeze, target: leader},
	{driver: local.Name, at: point{hop: 0, step: upgrade.StepFinalize}, fault: kill, target: follower},
	{driver: docker.Name, at: point{hop: 1, step: upgrade.StepWait, roll: 0}, fault: freeze, target: follower},
	{driver: docker.Name, at: point{hop: 0, step: upgrade.StepReplace, roll: 1}, fault: partition, target: follower},
	{driver: local.Name, at: point{hop: 1, step: upgrade.StepReplace, roll: 2}, fault: kill, target: replaced},
}

// swarmSample is the sample on the swarm driver: a frozen follower while
// the engine waits, the leader killed at preflight (the swarm starts a new
// task on its own), a replica restarted behind ladder's back as it is
// replaced.
var swarmSample = []fcase{
	{driver: swarm.Name, at: point{hop: 1, step: upgrade.StepWait, roll: 0}, fault: freeze, target: follower},
	{driver: swarm.Name, at: point{hop: 1, step: upgrade.StepPreflight}, fault: kill, target: leader},
	{driver: swarm.Name, at: point{hop: 0, step: upgrade.StepReplace, roll: 1}, fault: restart, target: replaced},
}

// TestSwarmSample runs the swarm sample; with LADDER_SWARM_TESTS=1 only,
// as it makes the engine a swarm for a few minutes.
func TestSwarmSample(t *testing.T) {
	if os.Getenv("LADDER_SWARM_TESTS") != "1" {
		t.Skip("the swarm sample of the fault matrix runs with LADDER_SWARM_TESTS=1")
	}
	runCases(t, swarmSample)
}

func TestSample(t *testing.T) {
	if testing.Short() {
		t.Skip("upgrades real clusters: skipped with -short")
	}
	runCases(t, sample)
}

// TestMatrix runs every case for both drivers.
func TestMatrix(t *testing.T) {
	if os.Getenv("LADDER_FAULT_TESTS") != "1" {
		t.Skip("the full fault matrix runs with LADDER_FAULT_TESTS=1 (an hour or more)")
	}
	var cases []fcase
	drivers := []string{local.Name, docker.Name}
	if os.Getenv("LADDER_SWARM_TESTS") == "1" {
		drivers = append(drivers, swarm.Name)
	}
	for _, drv := range drivers {
		if only := os.Getenv("LADDER_FAULT_DRIVER"); only != "" && only != drv {
			continue
		}
		cases = append(cases, matrix(drv)...)
	}
	runCases(t, cases)
}

// runCases runs each case in a subtest, prints the table, and fails the
// cases that neither finished nor stopped cleanly and then finished, or
// that lost a write.
func runCases(t *testing.T, cases []fcase) {
	var (
		mu   sync.Mutex
		rows []result
	)
	t.Cleanup(func() {
		slices.SortFunc(rows, func(a, b result) int { return strings.Compare(a.c.String(), b.c.String()) })
		out := table(rows) + summary(rows)
		t.Log("\n" + out)
		if path := os.Getenv("LADDER_FAULT_REPORT"); path != "" {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	for _, fc := range cases {
		if fc.driver == docker.Name && !dockerAnswers(t) {
			continue
		}
		if fc.driver == swarm.Name {
			swarmtest.Engine(t)
		}
		t.Run(strings.ReplaceAll(fc.String(), " ", "_"), func(t *testing.T) {
			t.Parallel()
			r := run(t, fc)
			mu.Lock()
			rows = append(rows, r)
			mu.Unlock()
			switch {
			case r.err != nil:
				t.Error(r.err)
			case len(r.lost) > 0:
				t.Errorf("lost %d acknowledged writes: %s", len(r.lost), strings.Join(r.lost, "; "))
			}
		})
	}
}

// summary gives, per driver, the time to name a frozen or killed replica
// (median and range) and a replica restarted behind ladder's back, alive
// but starting again (how many within --stall-after + 2s, the longest).
func summary(rows []result) string {
	var b strings.Builder
	for _, drv := range []string{local.Name, docker.Name, swarm.Name} {
		var named, alive []time.Duration
		for _, r := range rows {
			switch {
			case r.c.driver != drv || r.named < 0:
			case r.c.fault == freeze || r.c.fault == kill:
				named = append(named, r.named)
			case r.c.fault == restart:
				alive = append(alive, r.named)
			}
		}
		round := func(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }
		if len(named) > 0 {
			slices.Sort(named)
			fmt.Fprintf(&b, "%s: replica named after a freeze or a kill: median %s, range %s–%s (%d cases)\n",
				drv, round(named[len(named)/2]), round(named[0]), round(named[len(named)-1]), len(named))
		}
		if len(alive) > 0 {
			slices.Sort(alive)
			within := 0
			for _, d := range alive {
				if d <= stallAfter+2*time.Second {
					within++
				}
			}
			fmt.Fprintf(&b, "%s: replica restarted behind ladder's back named: %d of %d within --stall-after + 2s (%s), median %s, longest %s\n",
				drv, within, len(alive), round(stallAfter+2*time.Second), round(alive[len(alive)/2]), round(alive[len(alive)-1]))
		}
	}
	return b.String()
}

var dockerChecked, dockerOK bool

// dockerAnswers reports whether an engine answers; without one the docker
// cases skip, with a message, unless LADDER_REQUIRE_DOCKER=1 makes that a
// failure.
func dockerAnswers(t *testing.T) bool {
	if !dockerChecked {
		dockerChecked = true
		if cli, err := docker.NewClient(); err == nil {
			dockerOK = docker.Ping(t.Context(), cli) == nil
			cli.Close()
		}
		if !dockerOK {
			if os.Getenv("LADDER_REQUIRE_DOCKER") == "1" {
				t.Fatal("no Docker engine answers, and LADDER_REQUIRE_DOCKER=1")
			}
			t.Log("no Docker engine answers: the docker cases are skipped")
		}
	}
	return dockerOK
}
