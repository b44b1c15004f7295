package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
)

// sleeper is a service whose replicas sleep: enough to adopt, restart and
// forget processes without a real program.
type sleeper struct{ bin string }

func (sleeper) Name() string { return "sleeper" }
func (s sleeper) Artifact(v string) (driver.Artifact, error) {
	return driver.Artifact{Version: v, Binary: s.bin, Program: "sleep"}, nil
}
func (sleeper) Ports() []string                                                  { return []string{"api", "peer"} }
func (sleeper) HealthPath() string                                               { return "/" }
func (sleeper) Command(driver.Artifact, driver.Placement) []string               { return []string{"300"} }
func (sleeper) JobCommand(driver.Artifact, driver.Job, []driver.Member) []string { return nil }
func (sleeper) PortConflict(int, string) bool                                    { return false }

// TestAdoptRestartForget: a process the driver did not start is adopted as
// it runs, restarted under the driver (its data folder kept where it is),
// and forgotten: the folder goes, the process and its data stay.
func TestAdoptRestartForget(t *testing.T) {
	bin, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep program")
	}
	ctx := context.Background()
	own := exec.Command(bin, "300")
	if err := own.Start(); err != nil {
		t.Fatal(err)
	}
	go own.Wait() //nolint:errcheck // reaped so that it is seen gone
	defer own.Process.Kill()
	data := t.TempDir()
	root := t.TempDir()
	svc := sleeper{bin: bin}
	d, err := Adopt(ctx, "adopted", svc, []Member{{ID: "m1", Version: "1.0.0", DataDir: data, PID: own.Process.Pid,
		Ports: map[string]int{"api": 1, "peer": 2}}}, Options{Home: root})
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	rec, err := home.ReadRecord(root, "adopted")
	if err != nil || !rec.Adopted || rec.Driver != Name {
		t.Fatalf("record %+v, %v: want an adopted local cluster", rec, err)
	}
	reps, _ := d.Replicas(ctx)
	if len(reps) != 1 || reps[0].PID != own.Process.Pid || !reps[0].Running {
		t.Fatalf("replicas after adopt: %+v, want m1 running as pid %d", reps, own.Process.Pid)
	}
	// Reopened, as a later command does.
	d, err = Open("adopted", svc, Options{Home: root})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Restart(ctx, "m1"); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	reps, _ = d.Replicas(ctx)
	if reps[0].PID == own.Process.Pid || !reps[0].Running {
		t.Fatalf("replicas after restart: %+v, want m1 running as a new process", reps)
	}
	started := reps[0].PID
	defer syscall.Kill(started, syscall.SIGKILL)
	if alive(replicaState{PID: own.Process.Pid, Started: mustStart(t, own.Process.Pid)}) {
		t.Error("the adopted process still runs after the restart")
	}
	if got := d.DataDir("m1"); got != data {
		t.Errorf("DataDir = %s, want the adopted folder %s", got, data)
	}
	if log, _ := os.ReadFile(d.LogPath("m1")); !strings.Contains(string(log), "adopted m1") || !strings.Contains(string(log), "starting m1") {
		t.Errorf("replica log:\n%s", log)
	}
	if err := d.Forget(); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if _, err := os.Stat(home.ClusterDir(root, "adopted")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster folder after forget: %v", err)
	}
	if procState(started) == 0 {
		t.Error("forget stopped the member")
	}
	if _, err := os.Stat(data); err != nil {
		t.Errorf("forget touched the data folder: %v", err)
	}
}

func mustStart(t *testing.T, pid int) uint64 {
	s, err := procStart(pid)
	if err != nil {
		return 1 // gone: any start time makes it not alive
	}
	return s
}

// TestForgetRefusesOwnedData: a cluster whose data is in its folder (one
// Create made) is never forgotten.
func TestForgetRefusesOwnedData(t *testing.T) {
	dir := t.TempDir()
	d := &Driver{name: "made", dir: dir, st: state{Replicas: []replicaState{{ID: "replica-1"}}}}
	if err := d.Forget(); !errors.Is(err, ErrOwnsData) || !strings.Contains(err.Error(), "ladder cluster destroy") {
		t.Fatalf("Forget = %v, want ErrOwnsData naming destroy", err)
	}
	if _, err := os.Stat(filepath.Join(dir)); err != nil {
		t.Errorf("refused forget removed the folder: %v", err)
	}
}

// TestAdoptRefusesBadMembers: names that cannot be folder names, a member
// twice, a missing port.
func TestAdoptRefusesBadMembers(t *testing.T) {
	svc := sleeper{bin: "/bin/true"}
	ok := Member{ID: "m1", Version: "1.0.0", DataDir: "/tmp", PID: os.Getpid(), Ports: map[string]int{"api": 1, "peer": 2}}
	tests := []struct {
		name    string
		members []Member
	}{
		{"none", nil},
		{"bad name", []Member{{ID: "../x", Version: "1.0.0", DataDir: "/tmp", PID: os.Getpid(), Ports: ok.Ports}}},
		{"twice", []Member{ok, ok}},
		{"no peer port", []Member{{ID: "m1", Version: "1.0.0", DataDir: "/tmp", PID: os.Getpid(), Ports: map[string]int{"api": 1}}}},
		{"relative data", []Member{{ID: "m1", Version: "1.0.0", DataDir: "data", PID: os.Getpid(), Ports: ok.Ports}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := Adopt(context.Background(), "c", svc, tc.members, Options{Home: root}); !errors.Is(err, driver.ErrInvalidSpec) {
				t.Fatalf("Adopt = %v, want ErrInvalidSpec", err)
			}
			if names := home.Clusters(root); len(names) != 0 {
				t.Errorf("refused adopt left %v", names)
			}
		})
	}
}
