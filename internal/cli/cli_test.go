package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

// run executes the CLI in-process and returns its exit code and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read golden file (run go test ./internal/cli -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/cli -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"plan-multi-hop.txt", []string{"plan", "2.1.4", "3.1.2"}, ExitOK},
		{"plan-multi-hop.json", []string{"plan", "2.1.4", "3.1.2", "-o", "json"}, ExitOK},
		{"plan-no-change.txt", []string{"plan", "2.2.4", "2.2.4"}, ExitOK},
		{"plan-prerelease.json", []string{"plan", "3.0.1", "3.2.0-rc.1", "--allow-prerelease", "-o", "json"}, ExitOK},
		{"check-skip-minor.txt", []string{"check", "2.1.4", "2.3.2"}, ExitRefused},
		{"check-skip-minor.json", []string{"check", "2.1.4", "2.3.2", "-o", "json"}, ExitRefused},
		{"check-major-warning.txt", []string{"check", "2.2.5", "3.0.1"}, ExitOK},
		{"catalog.txt", []string{"catalog"}, ExitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			golden(t, tc.name, out)
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		errPart string
	}{
		{"check supported", []string{"check", "2.2.4", "2.2.5"}, ExitOK, ""},
		{"check no-change", []string{"check", "2.2.4", "v2.2.4"}, ExitOK, ""},
		{"check downgrade", []string{"check", "2.2.5", "2.2.4"}, ExitRefused, ""},
		{"check pre-release without opt-in", []string{"check", "3.1.2", "3.2.0-rc.1"}, ExitRefused, ""},
		{"check pre-release with opt-in", []string{"check", "3.1.2", "3.2.0-rc.1", "--allow-prerelease"}, ExitOK, ""},
		{"check invalid version", []string{"check", "2.2", "2.3.0"}, ExitUsage, "expected all three"},
		{"check name as version", []string{"check", "2.2.4", "latest"}, ExitUsage, "a name, not a version"},
		{"check leading zero", []string{"check", "02.1.0", "2.2.0"}, ExitUsage, "leading zero"},
		{"check empty", []string{"check", "", "2.2.0"}, ExitUsage, "empty"},
		{"check missing argument", []string{"check", "2.2.4"}, ExitUsage, "takes 2 arguments"},
		{"check bad output", []string{"check", "2.2.4", "2.2.5", "-o", "yaml"}, ExitUsage, "invalid --output"},
		{"check unknown flag", []string{"check", "--frobnicate"}, ExitUsage, "unknown flag"},
		{"plan downgrade", []string{"plan", "3.1.2", "2.3.2"}, ExitRefused, "downgrade"},
		{"plan unknown target", []string{"plan", "2.2.4", "2.2.3"}, ExitRefused, "not a release"},
		{"plan pre-release", []string{"plan", "3.1.2", "3.2.0-rc.1"}, ExitRefused, "--allow-prerelease"},
		{"plan missing catalog file", []string{"plan", "2.2.4", "2.2.5", "--catalog", "/nonexistent/c.yaml"}, ExitUsage, "read catalog"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := run(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.code, errOut)
			}
			if tc.errPart != "" && !strings.Contains(errOut, tc.errPart) {
				t.Fatalf("stderr %q does not say %q", errOut, tc.errPart)
			}
		})
	}
}

func TestCheckJSONPath(t *testing.T) {
	_, out, _ := run(t, "check", "2.3.2", "3.1.2", "-o", "json")
	var r checkResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Supported || r.Kind != "major-upgrade-skipping-minor" || strings.Join(r.Path, ",") != "2.3.2,3.0.1,3.1.2" {
		t.Fatalf("got %+v", r)
	}
	if len(r.Findings) == 0 || !r.Findings[0].Mandatory || r.Findings[0].Check == "" {
		t.Fatalf("findings: %+v", r.Findings)
	}
}

func TestCatalogFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "releases.yaml")
	if err := os.WriteFile(p, []byte("releases:\n  - 1.0.0\n  - 1.1.3\n  - version: 1.1.0\n    notes: x\n  - 2.0.0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, "catalog", "--catalog", p, "-o", "json")
	var c catalogJSON
	if code != 0 || json.Unmarshal([]byte(out), &c) != nil || strings.Join(c.Releases, ",") != "1.0.0,1.1.0,1.1.3,2.0.0" {
		t.Fatalf("exit %d, catalog %+v", code, c)
	}
	code, out, _ = run(t, "plan", "1.0.0", "2.0.0", "--catalog", p, "-o", "json")
	var pj planJSON
	if code != 0 || json.Unmarshal([]byte(out), &pj) != nil || strings.Join(pj.Path, ",") != "1.0.0,1.1.3,2.0.0" {
		t.Fatalf("exit %d, plan %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(bad, []byte("releases:\n  - 1.0\n"), 0o600)
	if code, _, errOut := run(t, "catalog", "--catalog", bad); code != ExitUsage || !strings.Contains(errOut, "releases[0]") {
		t.Fatalf("bad catalog: exit %d, %s", code, errOut)
	}
}
