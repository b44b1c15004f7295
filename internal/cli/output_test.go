package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONEverywhere: with -o json every command prints JSON on stdout and
// nothing else, errors included ({"error", "hint", "exit"}), and exits with
// the code the JSON names.
func TestJSONEverywhere(t *testing.T) {
	t.Setenv("LADDER_HOME", t.TempDir())
	tests := []struct {
		name string
		args []string
		exit int
	}{
		{"version", []string{"version"}, 0},
		{"catalog", []string{"catalog"}, 0},
		{"check supported", []string{"check", "2.1.4", "2.2.5"}, 0},
		{"check refused", []string{"check", "2.1.4", "2.3.2"}, 3},
		{"check bad version", []string{"check", "2.1", "2.2.5"}, 2},
		{"plan", []string{"plan", "2.1.4", "3.1.2"}, 0},
		{"plan refused", []string{"plan", "3.1.2", "2.1.4"}, 3},
		{"cluster list, none", []string{"cluster", "list"}, 0},
		{"cluster status, no such cluster", []string{"cluster", "status", "--cluster", "nope"}, 2},
		{"cluster create, bad version", []string{"cluster", "create", "--version", "latest"}, 2},
		{"cluster create, no replicas", []string{"cluster", "create", "--version", "2.2.5", "--replicas", "0"}, 2},
		{"cluster seed, no cluster", []string{"cluster", "seed", "--cluster", "nope"}, 2},
		{"cluster destroy, no cluster", []string{"cluster", "destroy", "--cluster", "nope"}, 2},
		{"restart, neither flag", []string{"restart", "--cluster", "nope"}, 2},
		{"cluster restart, both flags", []string{"cluster", "restart", "--rolling", "--replica", "replica-1"}, 2},
		{"upgrade, no target", []string{"upgrade"}, 2},
		{"upgrade, no cluster", []string{"upgrade", "--to", "3.1.2", "--cluster", "nope"}, 2},
		{"status, no cluster", []string{"status", "--cluster", "nope"}, 2},
		{"demo, bad release", []string{"demo", "--from", "x"}, 2},
		{"images build, unknown release", []string{"images", "build", "--versions", "9.9.9"}, 2},
		{"registry serve, missing flags", []string{"registry", "serve"}, 2},
		{"registry migrate, no endpoints", []string{"registry", "migrate"}, 2},
		{"unknown flag", []string{"plan", "--frobnicate"}, 2},
		{"unknown command", []string{"frobnicate"}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := run(t, append(tc.args, "-o", "json")...)
			if code != tc.exit {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.exit, stderr)
			}
			dec := json.NewDecoder(strings.NewReader(stdout))
			n := 0
			var last map[string]any
			for dec.More() {
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatalf("stdout is not JSON (%v):\n%s", err, stdout)
				}
				last, _ = v.(map[string]any)
				n++
			}
			if n == 0 {
				t.Fatalf("nothing on stdout; stderr:\n%s", stderr)
			}
			if _, result := last["supported"]; code != 0 && !result {
				if last == nil || last["error"] == "" || last["exit"] != float64(code) {
					t.Errorf("the error is not {error, hint, exit} with exit %d: %s", code, stdout)
				}
			}
		})
	}
}
