package etcd

import (
	"path/filepath"
	"strings"
)

// Flags are the configuration flags a running etcd was started with, by
// name without dashes ("data-dir"), read from its command line and, for a
// flag the command line does not give, from its ETCD_* environment, as
// etcd itself reads them.
type Flags map[string]string

// ParseFlags reads the flags of an etcd command line (args after the
// program) and environment. Both "--name value" and "--name=value" forms
// are read; a flag followed by another flag, or last, is a boolean "true".
func ParseFlags(args, env []string) Flags {
	f := Flags{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(name, "="); ok {
			f[k] = v
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			f[name] = args[i+1]
			i++
			continue
		}
		f[name] = "true"
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "ETCD_") {
			continue
		}
		name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(k, "ETCD_"), "_", "-"))
		if _, given := f[name]; !given {
			f[name] = v
		}
	}
	return f
}

// DataDir returns the member's data folder: --data-dir, or etcd's default
// "NAME.etcd" ("default.etcd" without --name), relative to cwd, the
// process's working folder.
func (f Flags) DataDir(cwd string) string {
	dir := f["data-dir"]
	if dir == "" {
		name := f["name"]
		if name == "" {
			name = "default"
		}
		dir = name + ".etcd"
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(cwd, dir)
	}
	return filepath.Clean(dir)
}

// placementFlags are the flags ladder sets itself when it starts a member
// (service.Etcd.Command): the member's identity, data and addresses.
var placementFlags = map[string]bool{
	"name": true, "data-dir": true, "listen-client-urls": true, "advertise-client-urls": true,
	"listen-peer-urls": true, "initial-advertise-peer-urls": true, "initial-cluster": true,
	"initial-cluster-state": true, "initial-cluster-token": true,
}

// Dropped lists, sorted, the names of the flags ladder does not give a
// member it restarts: every flag but those of its identity, data and
// addresses. Names only: a value may be something not to print.
func (f Flags) Dropped() []string {
	var out []string
	for _, k := range sortedKeys(f) {
		if !placementFlags[k] {
			out = append(out, "--"+k)
		}
	}
	return out
}
