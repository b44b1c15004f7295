package etcd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
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

// ReadConfigFile reads the flags of an etcd configuration file
// (--config-file): YAML whose keys are the flags' names. etcd ignores its
// command line and environment when it is given one, and so does this.
// Nested sections (client-transport-security) are read by their keys.
func ReadConfigFile(path string) (Flags, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read etcd configuration: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read etcd configuration %s: %w", path, err)
	}
	f := Flags{}
	var add func(m map[string]any)
	add = func(m map[string]any) {
		for k, v := range m {
			switch v := v.(type) {
			case map[string]any:
				add(v)
			case nil:
			default:
				f[k] = fmt.Sprint(v)
			}
		}
	}
	add(m)
	return f, nil
}

// TLS reports whether the member serves its clients over TLS.
func (f Flags) TLS() bool {
	return strings.Contains(f["listen-client-urls"], "https://") || f["cert-file"] != "" || f["auto-tls"] == "true"
}
