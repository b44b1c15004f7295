package local

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
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
