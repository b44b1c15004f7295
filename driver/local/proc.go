package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// alive reports whether r's process runs: its pid is a live (not zombie)
// process that started when r's did. A pid the kernel has given to
// another process since has another start time, so a recycled pid is
// never taken for the replica and never signalled.
func alive(r replicaState) bool {
	if r.PID <= 0 || r.Started == 0 {
		return false
	}
	if st := procState(r.PID); st == 0 || st == 'Z' || st == 'X' {
		return false
	}
	started, err := procStart(r.PID)
	return err == nil && started == r.Started
}

// procStat returns the fields of /proc/PID/stat after the parenthesised
// command name: fields[0] is the state (field 3 of proc(5)).
func procStat(pid int) ([][]byte, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name may hold spaces and parentheses; it ends at the
	// last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, fmt.Errorf("read /proc/%d/stat: no command name", pid)
	}
	return bytes.Fields(stat[i+1:]), nil
}

// procState returns the state letter of process pid (R, S, T, Z, ...), or
// 0 if it cannot be read.
func procState(pid int) byte {
	f, err := procStat(pid)
	if err != nil || len(f) == 0 || len(f[0]) == 0 {
		return 0
	}
	return f[0][0]
}

// procStart returns the start time of process pid in clock ticks since
// boot (field 22 of proc(5)).
func procStart(pid int) (uint64, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	if len(f) < 20 {
		return 0, fmt.Errorf("read /proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(string(f[19]), 10, 64)
}

// envReplica is the environment variable every replica process gets:
// "<cluster folder>#<replica id>#<token>".
const envReplica = "LADDER_REPLICA"

// replicaEnv is r's entry of envReplica.
func (d *Driver) replicaEnv(r *replicaState) string {
	return envReplica + "=" + d.dir + "#" + r.ID + "#" + r.Token
}

func newToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// locate reports whether r's process runs. When the recorded pid is not
// r's process (never recorded, or the process was restarted by someone
// else with r's environment), it looks for the process that carries r's
// token and adopts it. d.mu is held, or r is a copy.
func (d *Driver) locate(r *replicaState) bool {
	if alive(*r) {
		return true
	}
	if r.Token == "" {
		return false
	}
	want := d.replicaEnv(r)
	for _, pid := range processes(func(env []string) bool { return slices.Contains(env, want) }) {
		if started, err := procStart(pid); err == nil {
			r.PID, r.Started = pid, started
			return alive(*r)
		}
	}
	return false
}

// processes lists the pids of this user's processes whose environment
// satisfies match. Processes it may not read are skipped.
func processes(match func(env []string) bool) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || len(data) == 0 {
			continue
		}
		if match(strings.Split(string(bytes.TrimRight(data, "\x00")), "\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// strays lists the processes of this cluster's replicas (of replica id
// only, if id is not ""), by the cluster folder in their environment,
// whatever the state file says.
func (d *Driver) strays(id string) []int {
	prefix := envReplica + "=" + d.dir + "#"
	if id != "" {
		prefix += id + "#"
	}
	return processes(func(env []string) bool {
		return slices.ContainsFunc(env, func(v string) bool { return strings.HasPrefix(v, prefix) })
	})
}

// stopStrays stops every process of replica id (every replica, if id is
// "") that is not the one r records: one a crash left behind, or one
// someone started again by hand from an older environment. Only one
// process may be the replica, and it holds the replica's data and ports.
func (d *Driver) stopStrays(ctx context.Context, id string, r *replicaState) error {
	for _, pid := range d.strays(id) {
		if r != nil && pid == r.PID && alive(*r) {
			continue
		}
		stray := replicaState{ID: fmt.Sprintf("%s (stray pid %d)", id, pid), PID: pid}
		stray.Started, _ = procStart(pid)
		d.opts.Logger.Warn("stopping a stray process of the cluster", "replica", id, "pid", pid)
		if err := d.stop(ctx, &stray); err != nil {
			return err
		}
	}
	return nil
}

// Find returns the folder of the local cluster whose replica listens on
// port of this machine, as the replica's environment names it: where the
// cluster's state lives, in whichever ladder home created it.
func Find(port int) (string, error) {
	for _, pid := range listeners(port) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		for _, v := range strings.Split(string(env), "\x00") {
			if rest, ok := strings.CutPrefix(v, envReplica+"="); ok {
				dir, _, _ := strings.Cut(rest, "#")
				return dir, nil
			}
		}
	}
	return "", fmt.Errorf("no replica of a local cluster listens on port %d of this machine", port)
}

// listeners returns the pids of this user's processes listening on TCP
// port, found through the sockets' inodes in /proc/net/tcp{,6} and the
// processes' file descriptors.
func listeners(port int) []int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			// local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
			if len(fields) < 10 || fields[3] != "0A" {
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			if p, err := strconv.ParseInt(hexPort, 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fields[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && inodes[link] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
