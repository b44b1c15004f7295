package faults

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/driver/swarm"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/internal/traffic"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// The plan every case runs: a hop that migrates nothing, then a major hop
// that migrates data.
const (
	from = "2.2.5"
	to   = "3.0.1"
)

var hops = []string{"2.2.5->2.3.2", "2.3.2->3.0.1"}

// stallAfter is the upgrades' --stall-after: the budget of a replica that
// is alive but not catching up, not of a frozen or dead one.
const stallAfter = 5 * time.Second

type fault string

const (
	freeze    fault = "freeze"
	kill      fault = "kill"
	restart   fault = "restart"
	partition fault = "partition"
)

type target string

const (
	replaced target = "replaced"
	follower target = "follower"
	leader   target = "leader"
)

// point is where a fault lands: when a step of a hop begins; for a roll
// step, the replica's position in the hop's roll.
type point struct {
	hop  int
	step string
	roll int
}

func (p point) String() string {
	s := fmt.Sprintf("hop%d/%s", p.hop+1, p.step)
	if p.step == upgrade.StepReplace || p.step == upgrade.StepWait {
		s += "#" + strconv.Itoa(p.roll+1)
	}
	return s
}

func (p point) rolls() bool { return p.step == upgrade.StepReplace || p.step == upgrade.StepWait }

// points lists every step of the plan.
func points() []point {
	var out []point
	for h, migrates := range []bool{false, true} {
		out = append(out, point{hop: h, step: upgrade.StepPreflight})
		if migrates {
			out = append(out, point{hop: h, step: upgrade.StepBackup})
		}
		for k := range 3 {
			out = append(out, point{hop: h, step: upgrade.StepReplace, roll: k}, point{hop: h, step: upgrade.StepWait, roll: k})
		}
		if migrates {
			out = append(out, point{hop: h, step: upgrade.StepMigrate})
		}
		out = append(out, point{hop: h, step: upgrade.StepFinalize})
	}
	return out
}

type fcase struct {
	driver string
	at     point
	fault  fault
	target target
}

func (c fcase) String() string {
	return fmt.Sprintf("%s %s %s at %s", c.driver, c.fault, c.target, c.at)
}

// matrix lists every case for the driver: each fault the driver can make,
// at every step, at each target (the replaced replica only for roll steps).
func matrix(drv string) []fcase {
	fs := []fault{freeze, kill, restart}
	if drv == docker.Name {
		fs = append(fs, partition)
	}
	var out []fcase
	for _, f := range fs {
		for _, p := range points() {
			for _, t := range []target{replaced, follower, leader} {
				if t == replaced && !p.rolls() {
					continue
				}
				out = append(out, fcase{driver: drv, at: p, fault: f, target: t})
			}
		}
	}
	return out
}

// result is one row of the table.
type result struct {
	c fcase
	// replica is the replica the fault hit.
	replica string
	// named is the time from the fault to the engine naming the replica;
	// negative when it never did (a restart behind its back that healed
	// before a probe saw it).
	named   time.Duration
	outcome string
	failed  int
	lost    []string
	err     error
}

// env is a ladder home and binary for one case.
type env struct {
	t    *testing.T
	bin  string
	home string
	name string
	drv  string
}

func newEnv(t *testing.T, drv string) *env {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return &env{t: t, bin: testbin.Ladder(t), home: t.TempDir(), name: "f-" + hex.EncodeToString(b), drv: drv}
}

func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, e.bin, args...)
	c.Env = append(os.Environ(), "LADDER_HOME="+e.home)
	return c
}

// ladder runs a command to its end: exit code and stderr.
func (e *env) ladder(args ...string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	var errb bytes.Buffer
	c.Stderr = &errb
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), errb.String()
	}
	if err != nil {
		return -1, err.Error()
	}
	return 0, errb.String()
}

func (e *env) must(args ...string) {
	e.t.Helper()
	if code, stderr := e.ladder(args...); code != 0 {
		e.t.Fatalf("ladder %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
}

// open binds the cluster's driver in this process, to hurt replicas.
func (e *env) open() driver.Driver {
	e.t.Helper()
	rec, err := home.ReadRecord(e.home, e.name)
	if err != nil {
		e.t.Fatal(err)
	}
	var d driver.Driver
	switch rec.Driver {
	case local.Name:
		d, err = local.Open(e.name, service.Registry{}, local.Options{Home: e.home})
	case swarm.Name:
		d, err = swarm.Open(context.Background(), e.name, service.Registry{}, swarm.Options{Home: e.home})
	default:
		d, err = docker.Open(e.name, service.Registry{}, docker.Options{Home: e.home})
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// upgradeRun is a `ladder upgrade -o json` process read event by event.
type upgradeRun struct {
	cmd    *exec.Cmd
	events chan upgrade.Event
	stderr bytes.Buffer
	done   chan struct{}
	code   int
}

func (e *env) startUpgrade() *upgradeRun {
	e.t.Helper()
	c := e.cmd(context.Background(), "upgrade", "--cluster", e.name, "--to", to, "--yes", "-o", "json",
		"--stall-after", stallAfter.String())
	stdout, err := c.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	u := &upgradeRun{cmd: c, events: make(chan upgrade.Event, 4096), done: make(chan struct{})}
	c.Stderr = &u.stderr
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev upgrade.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				u.events <- ev
			}
		}
		close(u.events)
		err := c.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			u.code = ee.ExitCode()
		}
		close(u.done)
	}()
	e.t.Cleanup(func() {
		_ = c.Process.Kill()
		<-u.done
	})
	return u
}

// cluster is a seeded cluster with images pushed, and what it held.
type cluster struct {
	e        *env
	d        driver.Driver
	urls     []string
	password string
	tls      *tls.Config        // how the tests trust the cluster
	images   map[string]v1.Hash // tag → digest pushed before the upgrade
	rows     map[string]int     // rows per table before
}

// The docker release images, built once per test process; clusters run
// that build, whatever else other programs build on the engine.
var (
	imagesOnce  sync.Once
	imagesBuild string
)

func newCluster(t *testing.T, drv string) *cluster {
	e := newEnv(t, drv)
	create := []string{"cluster", "create", "--cluster", e.name, "--version", from, "--driver", drv}
	if drv != local.Name {
		imagesOnce.Do(func() {
			out, err := e.cmd(context.Background(), "images", "build", "--versions", from+",2.3.2,"+to, "-o", "json").Output()
			var res struct{ Build string }
			if err == nil {
				err = json.Unmarshal(out, &res)
			}
			if err != nil || res.Build == "" {
				t.Fatalf("build images: %v: %s", err, out)
			}
			imagesBuild = res.Build
		})
		create = append(create, "--build", imagesBuild)
	}
	e.must(create...)
	t.Cleanup(func() {
		if code, stderr := e.ladder("cluster", "destroy", "--cluster", e.name); code != 0 {
			t.Errorf("destroy: exit %d: %s", code, stderr)
		}
	})
	e.must("cluster", "seed", "--cluster", e.name, "--repositories", "20")
	c := &cluster{e: e, d: e.open(), images: map[string]v1.Hash{}}
	rec, err := home.ReadRecord(e.home, e.name)
	if err != nil {
		t.Fatal(err)
	}
	if c.password, err = rec.Secret(service.AdminPasswordSecret); err != nil {
		t.Fatal(err)
	}
	if c.tls, err = service.ClientTLS(rec.Secrets, nil, false); err != nil {
		t.Fatal(err)
	}
	reps, err := c.d.Replicas(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reps {
		c.urls = append(c.urls, r.URL)
		tag := fmt.Sprintf("before-%d", i)
		dg, err := traffic.Push(context.Background(), c.tls, r.URL, "faults/images", tag, c.password, 10*time.Second)
		if err != nil {
			t.Fatalf("push %s through %s: %v", tag, r.ID, err)
		}
		c.images[tag] = dg
	}
	if c.rows, err = registry.Stats(context.Background(), pki.HTTPClient(c.tls, 10*time.Second), c.urls[0]); err != nil {
		t.Fatal(err)
	}
	return c
}

// reopen binds the driver again: the upgrade, in another process, has
// moved replicas to new processes since.
func (c *cluster) reopen() { c.d = c.e.open() }

// leader returns the replica that leads now, or "".
func (c *cluster) leader(ctx context.Context) string {
	reps, err := c.d.Replicas(ctx)
	if err != nil {
		return ""
	}
	st, _ := service.RegistryApp{Cluster: c.e.name, TLS: c.tls}.Status(ctx, reps)
	return st.Leader()
}

// pick resolves a target when the step ref begins; the leader may take a
// moment to be known again (an election under way).
func (c *cluster) pick(ctx context.Context, t target, ref upgrade.StepRef) string {
	var lead string
	_ = poll.For(ctx, 10*time.Second, 100*time.Millisecond, func() (bool, error) {
		lead = c.leader(ctx)
		return lead != "", nil
	})
	switch t {
	case replaced:
		return ref.Replica
	case leader:
		return lead
	}
	for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
		if id != lead && id != ref.Replica {
			return id
		}
	}
	return ""
}

// hurt injects f into replica id and returns what heals it, as an operator
// would before running the command again (nil: nothing to heal; ladder
// itself restarts a replica whose process is gone).
func (c *cluster) hurt(ctx context.Context, f fault, id string) (func(), error) {
	switch f {
	case freeze:
		fz := c.d.(driver.Freezer)
		return func() { _ = fz.Thaw(context.Background(), id) }, fz.Freeze(ctx, id)
	case kill:
		if dd, ok := c.d.(*docker.Driver); ok {
			return nil, dd.Kill(ctx, id)
		}
		if sd, ok := c.d.(*swarm.Driver); ok {
			return nil, sd.Kill(ctx, id)
		}
		pid, err := c.pid(ctx, id)
		if err != nil {
			return nil, err
		}
		return nil, syscall.Kill(pid, syscall.SIGKILL)
	case restart:
		if dd, ok := c.d.(*docker.Driver); ok {
			timeout := 10
			_, err := dd.Client().ContainerRestart(ctx, dd.ContainerName(id), containerRestart(timeout))
			return nil, err
		}
		if sd, ok := c.d.(*swarm.Driver); ok {
			// docker restart of the task's container, behind the swarm's
			// back as well as ladder's.
			reps, err := sd.Replicas(ctx)
			if err != nil {
				return nil, err
			}
			for _, r := range reps {
				if r.ID == id && r.Container != "" {
					_, err := sd.Client().ContainerRestart(ctx, r.Container, containerRestart(10))
					return nil, err
				}
			}
			return nil, fmt.Errorf("%s has no container", id)
		}
		pid, err := c.pid(ctx, id)
		if err != nil {
			return nil, err
		}
		return nil, restartBehind(ctx, pid)
	case partition:
		dd := c.d.(*docker.Driver)
		return func() { _ = dd.Reconnect(context.Background(), id) }, dd.Disconnect(ctx, id)
	}
	return nil, fmt.Errorf("no such fault %q", f)
}

func (c *cluster) pid(ctx context.Context, id string) (int, error) {
	reps, err := c.d.Replicas(ctx)
	if err != nil {
		return 0, err
	}
	for _, r := range reps {
		if r.ID == id && r.Running {
			return r.PID, nil
		}
	}
	return 0, fmt.Errorf("%s is not running", id)
}

// restartBehind restarts a local replica's process as a supervisor would,
// behind ladder's back: SIGTERM, then the same program with the same
// arguments and environment, in a session of its own, logging where it
// logged.
func restartBehind(ctx context.Context, pid int) error {
	argv, err := procStrings(pid, "cmdline")
	if err != nil {
		return err
	}
	env, err := procStrings(pid, "environ")
	if err != nil {
		return err
	}
	logPath, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/2", pid))
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	if err := poll.For(ctx, 30*time.Second, 20*time.Millisecond, func() (bool, error) {
		return syscall.Kill(pid, 0) != nil, nil
	}); err != nil {
		return fmt.Errorf("pid %d did not stop: %w", pid, err)
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }()
	return nil
}

func procStrings(pid int, file string) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), nil
}

// run runs case fc on a new cluster and returns its row.
func run(t *testing.T, fc fcase) (res result) {
	res = result{c: fc, named: -1}
	c := newCluster(t, fc.driver)
	ctx := context.Background()
	var seen []upgrade.Event
	upgradeStart := time.Now()
	defer func() {
		// A case that failed, or took long (a wait that ran to its end),
		// leaves what the upgrade said and the replicas' last words.
		if res.err != nil || time.Since(upgradeStart) > slowCase {
			logEvents(t, seen)
			c.logTails()
		}
	}()
	client := &traffic.Client{URLs: c.urls, Repo: "faults/traffic", Password: c.password, Interval: 150 * time.Millisecond, TLS: c.tls}
	tctx, stopTraffic := context.WithCancel(ctx)
	var twg sync.WaitGroup
	twg.Go(func() { client.Run(tctx) })
	defer func() {
		stopTraffic()
		twg.Wait()
	}()

	u := c.e.startUpgrade()
	orders := map[string][]string{}
	var hurtAt, doneAt time.Time
	var heal func()
	for ev := range u.events {
		seen = append(seen, ev)
		ref, _ := upgrade.ParseStep(ev.Step)
		switch {
		case ev.Type == upgrade.EventNote && ev.Fields["order"] != nil:
			for _, id := range ev.Fields["order"].([]any) {
				orders[ev.Hop] = append(orders[ev.Hop], id.(string))
			}
		case ev.Type == upgrade.EventStepStart && hurtAt.IsZero() && reached(fc.at, ref, orders):
			c.reopen()
			res.replica = c.pick(ctx, fc.target, ref)
			if res.replica == "" {
				res.err = fmt.Errorf("no %s at %s", fc.target, ev.Step)
				break
			}
			// The replica may be between its stop and its start (the
			// one being replaced): hurt it once it runs.
			var h func()
			err := poll.For(ctx, 10*time.Second, 50*time.Millisecond, func() (bool, error) {
				c.reopen()
				var err error
				h, err = c.hurt(ctx, fc.fault, res.replica)
				return err == nil, nil
			})
			if err != nil {
				h, err = c.hurt(ctx, fc.fault, res.replica)
			}
			if err != nil {
				res.err = fmt.Errorf("%s %s: %w", fc.fault, res.replica, err)
				break
			}
			hurtAt, heal = time.Now(), h
		case !hurtAt.IsZero() && res.named < 0 && ev.Replica == res.replica &&
			(ev.Type == upgrade.EventStall || ev.Type == upgrade.EventFault || ev.Type == upgrade.EventFailed):
			res.named = ev.Time.Sub(hurtAt)
		case ev.Type == upgrade.EventDone:
			doneAt = ev.Time
		}
	}
	<-u.done
	switch {
	case res.err != nil:
		return res
	case hurtAt.IsZero():
		res.err = fmt.Errorf("the upgrade ended (exit %d) before %s: %s", u.code, fc.at, u.stderr.String())
		return res
	case u.code == 0 && res.named < 0 && !doneAt.IsZero() && doneAt.Before(hurtAt):
		// The replica ran only after ladder's last look at the cluster
		// (the hurt waits for it to run): a fault after the upgrade, which
		// this case cannot judge. Heal it and check the data.
		res.outcome = "fault landed after the upgrade ended"
		if heal != nil {
			heal()
		}
	case u.code == 0:
		res.outcome = "finished"
	default:
		if !strings.Contains(u.stderr.String(), res.replica) {
			res.err = fmt.Errorf("stopped with exit %d without naming %s:\n%s", u.code, res.replica, u.stderr.String())
			return res
		}
		res.outcome = fmt.Sprintf("stopped (exit %d), then finished", u.code)
		if heal != nil {
			heal()
		}
		if code, stderr := c.e.ladder("upgrade", "--cluster", c.e.name, "--to", to, "--yes"); code != 0 {
			res.err = fmt.Errorf("the same command again: exit %d:\n%s", code, stderr)
			return res
		}
	}
	stopTraffic()
	twg.Wait()
	c.reopen()
	st := client.Stats()
	res.failed = st.FailedReads + st.FailedWrites
	res.lost = c.lost(ctx, client)
	return res
}

// slowCase is how long a case runs before it logs what happened: most
// take one or two minutes.
const slowCase = 5 * time.Minute

// logEvents logs the upgrade's events, one line each.
func logEvents(t *testing.T, evs []upgrade.Event) {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == upgrade.EventWaitProgress {
			continue
		}
		fmt.Fprintf(&b, "%s %-12s %-40s %-9s %s\n", ev.Time.Format("15:04:05.000"), ev.Type, ev.Step, ev.Replica, ev.Message)
	}
	t.Logf("the upgrade's events:\n%s", b.String())
}

// logTails logs the last lines each replica logged, for a case that
// failed.
func (c *cluster) logTails() {
	lt, ok := c.d.(driver.LogTailer)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c.reopen()
	for _, id := range []string{"replica-1", "replica-2", "replica-3"} {
		c.e.t.Logf("%s's log, last lines:\n%s", id, lt.LogTail(ctx, id, 40))
	}
}

// reached reports whether the step starting is the case's point.
func reached(p point, ref upgrade.StepRef, orders map[string][]string) bool {
	if ref.Hop != hops[p.hop] || ref.Name != p.step {
		return false
	}
	return !p.rolls() || slices.Index(orders[ref.Hop], ref.Replica) == p.roll
}

// lost lists what was acknowledged and cannot be read back on every
// replica: a tag written during the upgrade (manifest and blobs), an image
// pushed before, a seeded row.
func (c *cluster) lost(ctx context.Context, client *traffic.Client) []string {
	if _, err := settled(ctx, c); err != nil {
		return []string{"cluster not settled after the upgrade: " + err.Error()}
	}
	v := client.Verify(ctx)
	out := append([]string(nil), v.Missing...)
	for _, u := range c.urls {
		for tag, dg := range c.images {
			if err := traffic.Readable(ctx, c.tls, u, "faults/images", tag, dg, 10*time.Second); err != nil {
				out = append(out, "faults/images:"+tag+"@"+u)
			}
		}
		rows, err := registry.Stats(ctx, pki.HTTPClient(c.tls, 10*time.Second), u)
		if err != nil {
			out = append(out, "rows@"+u+": "+err.Error())
			continue
		}
		for table, n := range c.rows {
			if table != registry.TableEvents && rows[table] < n {
				out = append(out, fmt.Sprintf("%s@%s: %d rows, %d before", table, u, rows[table], n))
			}
		}
	}
	return out
}

// settled waits, with the engine's wait, for the cluster to settle.
func settled(ctx context.Context, c *cluster) (upgrade.Status, error) {
	opts := upgrade.DefaultOptions()
	opts.MaxWait = 2 * time.Minute
	return upgrade.WaitSettled(ctx, c.d, service.RegistryApp{Cluster: c.e.name, TLS: c.tls}, opts, nil, nil)
}

// table formats results as the run's table.
func table(rows []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-44s  %-9s  %-9s  %-34s  %-6s  %s\n", "CASE", "REPLICA", "NAMED IN", "OUTCOME", "FAILED", "LOST")
	for _, r := range rows {
		named := "-"
		if r.named >= 0 {
			named = r.named.Round(100 * time.Millisecond).String()
		}
		outcome := r.outcome
		if r.err != nil {
			outcome = "ERROR: " + strings.SplitN(r.err.Error(), "\n", 2)[0]
		}
		fmt.Fprintf(&b, "%-44s  %-9s  %-9s  %-34s  %-6d  %d\n", r.c, r.replica, named, outcome, r.failed, len(r.lost))
	}
	return b.String()
}
