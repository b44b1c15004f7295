package docker_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/testbin"
	"github.com/ladder-dev/ladder/service"
)

func TestImageRef(t *testing.T) {
	tests := []struct {
		name, version, want string
	}{
		{name: "release", version: "2.2.4", want: "ladder-registry:2.2.4-0a1b2c3d4e5f"},
		{name: "pre-release", version: "3.2.0-rc.1", want: "ladder-registry:3.2.0-rc.1-0a1b2c3d4e5f"},
		{name: "build metadata", version: "1.0.0+build.5", want: "ladder-registry:1.0.0_build.5-0a1b2c3d4e5f"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := docker.ImageRef(service.RegistryName, tc.version, "0a1b2c3d4e5f"); got != tc.want {
				t.Errorf("ImageRef(%q) = %q, want %q", tc.version, got, tc.want)
			}
		})
	}
}

func TestIsStatic(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ladder binary; skipped with -short")
	}
	static, err := docker.IsStatic(testbin.Ladder(t))
	if err != nil || !static {
		t.Errorf("IsStatic(ladder built with CGO_ENABLED=0) = %v, %v; want true", static, err)
	}
	if static, err := docker.IsStatic("/bin/sh"); err == nil && static {
		t.Logf("/bin/sh is static here; no dynamic case to check")
	} else if err != nil {
		t.Logf("inspect /bin/sh: %v", err)
	}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.IsStatic(notELF); err == nil {
		t.Errorf("IsStatic of a script: no error")
	}
}

func TestModuleRoot(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := docker.ModuleRoot(wd)
	if root == "" || filepath.Base(wd) != "docker" || root != filepath.Dir(filepath.Dir(wd)) {
		t.Errorf("ModuleRoot(%s) = %q, want the module's root", wd, root)
	}
	if got := docker.ModuleRoot(t.TempDir()); got != "" {
		t.Errorf("ModuleRoot(a temporary folder) = %q, want \"\"", got)
	}
}
