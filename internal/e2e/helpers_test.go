package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/poll"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// env is one test's ladder home and binary.
type env struct {
	t    *testing.T
	bin  string
	home string
}

func newEnv(t *testing.T) *env {
	if testing.Short() {
		t.Skip("end-to-end test with real processes: skipped in -short mode")
	}
	e := &env{t: t, bin: testbin.Ladder(t), home: t.TempDir()}
	return e
}

func (e *env) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, e.bin, args...)
	c.Env = append(os.Environ(), "LADDER_HOME="+e.home)
	c.Stdin = nil
	return c
}

// run runs ladder to its end and returns the exit code and output.
func (e *env) run(args ...string) (int, string, string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := e.cmd(ctx, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("run ladder %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// must runs ladder and fails the test unless it exits 0.
func (e *env) must(args ...string) string {
	e.t.Helper()
	code, out, errOut := e.run(args...)
	if code != 0 {
		e.t.Fatalf("ladder %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// ExitLockedForTests is ladder's exit code for a command refused by the
// upgrade lock.
const ExitLockedForTests = 4

// createCluster creates a cluster and destroys it when the test ends.
func (e *env) createCluster(name, version string) {
	e.t.Helper()
	e.must("cluster", "create", "--cluster", name, "--version", version)
	e.t.Cleanup(func() {
		// A test that killed an upgrade leaves the cluster's lock to its
		// lease: destroy is refused (exit 4) until the lease ends.
		var code int
		var errOut string
		_ = poll.For(context.Background(), time.Minute, time.Second, func() (bool, error) {
			code, _, errOut = e.run("cluster", "destroy", "--cluster", name)
			return code != ExitLockedForTests, nil
		})
		if code != 0 && !strings.Contains(errOut, "no such cluster") {
			e.t.Errorf("destroy %s: %s", name, errOut)
		}
	})
}

func (e *env) status(name string) upgrade.Status {
	e.t.Helper()
	var st upgrade.Status
	if err := json.Unmarshal([]byte(e.must("cluster", "status", "--cluster", name, "-o", "json")), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) password(name string) string {
	e.t.Helper()
	rec, err := home.ReadRecord(e.home, name)
	if err != nil {
		e.t.Fatal(err)
	}
	pw, err := rec.Secret(service.AdminPasswordSecret)
	if err != nil {
		e.t.Fatal(err)
	}
	return pw
}

// tls is how the tests trust cluster name, as ladder does: its CA and
// ladder's client certificate.
func (e *env) tls(name string) *tls.Config {
	e.t.Helper()
	rec, err := home.ReadRecord(e.home, name)
	if err != nil {
		e.t.Fatal(err)
	}
	tc, err := service.ClientTLS(rec.Secrets, nil, false)
	if err != nil {
		e.t.Fatal(err)
	}
	return tc
}

// replicaKeyPins lists, comma-separated, the SHA-256 of each replica
// certificate's public key of cluster name, base64: Chromium's
// --ignore-certificate-errors-spki-list.
func (e *env) replicaKeyPins(name string) string {
	e.t.Helper()
	rec, err := home.ReadRecord(e.home, name)
	if err != nil {
		e.t.Fatal(err)
	}
	var pins []string
	for secret, path := range rec.Secrets {
		if !strings.HasPrefix(secret, "replica-") || !strings.HasSuffix(secret, ".crt") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			e.t.Fatal(err)
		}
		b, _ := pem.Decode(data)
		if b == nil {
			e.t.Fatalf("%s: no PEM certificate", path)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			e.t.Fatal(err)
		}
		sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
		pins = append(pins, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return strings.Join(pins, ",")
}

// upgradeRun is a `ladder upgrade -o json` process whose events are read
// as they come.
type upgradeRun struct {
	cmd    *exec.Cmd
	events chan upgrade.Event
	stderr *bytes.Buffer
	done   chan struct{}
	code   int
}

func (e *env) startUpgrade(args ...string) *upgradeRun {
	e.t.Helper()
	c := e.cmd(context.Background(), append([]string{"upgrade", "--yes", "-o", "json"}, args...)...)
	stdout, err := c.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	u := &upgradeRun{cmd: c, events: make(chan upgrade.Event, 1024), stderr: &bytes.Buffer{}, done: make(chan struct{})}
	c.Stderr = u.stderr
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
		if ee, ok := err.(*exec.ExitError); ok {
			u.code = ee.ExitCode()
			if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
				u.code = 128 + int(st.Signal())
			}
		}
		close(u.done)
	}()
	e.t.Cleanup(func() {
		_ = c.Process.Kill()
		<-u.done
	})
	return u
}

// until reads events until match returns true; false if the run ended first.
func (u *upgradeRun) until(t *testing.T, match func(upgrade.Event) bool) (upgrade.Event, bool) {
	t.Helper()
	timeout := time.After(4 * time.Minute)
	for {
		select {
		case ev, ok := <-u.events:
			if !ok {
				return upgrade.Event{}, false
			}
			if match(ev) {
				return ev, true
			}
		case <-timeout:
			t.Fatalf("no matching event within 4 minutes; stderr:\n%s", u.stderr)
		}
	}
}

// wait drains the events and returns the exit code.
func (u *upgradeRun) wait() int {
	for range u.events {
	}
	<-u.done
	return u.code
}

func stepStart(prefix, suffix string) func(upgrade.Event) bool {
	return func(ev upgrade.Event) bool {
		return ev.Type == upgrade.EventStepStart && strings.HasPrefix(ev.Step, prefix) && strings.HasSuffix(ev.Step, suffix)
	}
}
