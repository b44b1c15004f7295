package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// TestMeasureHopAgainstScript compares, in one run, the hop ladder takes to
// roll three replicas to a patch release (no migration) with the floor: a
// script that replaces the same replicas, followers first, and polls every
// 10 ms until each is healthy and the store settled. Five pairs, in turns
// (A B A B …), each on fresh clusters; it reports medians and ranges, and
// the time from ladder's start to its first event. A measurement, not a
// check: it runs only with LADDER_MEASURE=1.
func TestMeasureHopAgainstScript(t *testing.T) {
	if os.Getenv("LADDER_MEASURE") != "1" {
		t.Skip("measurement: set LADDER_MEASURE=1 to run")
	}
	const from, to, pairs = "2.2.4", "2.2.5", 5
	e := newEnv(t)
	var hop, script, first []time.Duration
	for i := range pairs {
		a, b := fmt.Sprintf("ladder-%d", i), fmt.Sprintf("script-%d", i)
		e.createCluster(a, from)
		e.createCluster(b, from)

		// A: ladder, its hop from the journal.
		start := time.Now()
		c := e.cmd(context.Background(), "upgrade", "--cluster", a, "--to", to, "--yes", "-o", "json")
		stdout, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		c.Stderr = &errb
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var hopTime time.Duration
		firstSeen := false
		for sc.Scan() {
			var ev upgrade.Event
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue
			}
			if !firstSeen {
				first, firstSeen = append(first, time.Since(start)), true
			}
			if ev.Type == upgrade.EventHopDone {
				hopTime = time.Duration(ev.Fields["duration"].(float64))
			}
		}
		if err := c.Wait(); err != nil {
			t.Fatalf("ladder upgrade: %v\n%s", err, errb.String())
		}
		hop = append(hop, hopTime)

		// B: the script.
		d, err := local.Open(b, service.Registry{Binary: e.bin}, local.Options{Home: e.home})
		if err != nil {
			t.Fatal(err)
		}
		app := service.RegistryApp{Cluster: b, TLS: e.tls(b)}
		settled := func(id string) error {
			return poll.For(context.Background(), 2*time.Minute, 10*time.Millisecond, func() (bool, error) {
				reps, err := d.Replicas(context.Background())
				if err != nil {
					return false, nil
				}
				st, _ := app.Status(context.Background(), reps)
				rs, _ := st.Replica(id)
				return rs.Healthy && rs.Version == to && st.Store.Settled, nil
			})
		}
		reps, _ := d.Replicas(context.Background())
		st, _ := app.Status(context.Background(), reps)
		ids := []string{}
		for _, r := range reps {
			ids = append(ids, r.ID)
		}
		start = time.Now()
		for _, id := range upgrade.RollOrder(st, ids) {
			if err := d.Replace(context.Background(), id, to); err != nil {
				t.Fatal(err)
			}
			if err := settled(id); err != nil {
				t.Fatalf("script: %s: %v", id, err)
			}
		}
		script = append(script, time.Since(start))
		t.Logf("pair %d: ladder's hop %s, the script %s, first event after %s", i+1,
			hop[i].Round(time.Millisecond), script[i].Round(time.Millisecond), first[i].Round(time.Millisecond))
		e.must("cluster", "destroy", "--cluster", a)
		e.must("cluster", "destroy", "--cluster", b)
	}
	var ratio []float64
	for i := range hop {
		ratio = append(ratio, float64(hop[i])/float64(script[i]))
	}
	t.Logf("ladder's hop: %s; the script: %s; ratio: %s; first event: %s",
		spread(hop), spread(script), spreadF(ratio), spread(first))
}

func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("median %s (%s–%s)", s[len(s)/2].Round(10*time.Millisecond), s[0].Round(10*time.Millisecond), s[len(s)-1].Round(10*time.Millisecond))
}

func spreadF(fs []float64) string {
	s := slices.Clone(fs)
	slices.Sort(s)
	return strings.TrimSpace(fmt.Sprintf("median %.2f (%.2f–%.2f)", s[len(s)/2], s[0], s[len(s)-1]))
}
