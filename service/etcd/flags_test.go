package etcd

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		cwd     string
		dataDir string
		tls     bool
	}{
		{"spaced", []string{"--name", "m1", "--data-dir", "/var/lib/etcd/m1", "--snapshot-count", "100"}, nil, "/",
			"/var/lib/etcd/m1", false},
		{"equals and single dash", []string{"-name=m1", "--data-dir=d", "--debug"}, nil, "/srv",
			"/srv/d", false},
		{"default folder", []string{"--name", "infra2"}, nil, "/home/op", "/home/op/infra2.etcd", false},
		{"no name", nil, nil, "/w", "/w/default.etcd", false},
		{"environment", []string{"--name", "m1"}, []string{"ETCD_DATA_DIR=/e", "ETCD_QUOTA_BACKEND_BYTES=1", "HOME=/root"}, "/",
			"/e", false},
		{"command line wins", []string{"--data-dir", "/c"}, []string{"ETCD_DATA_DIR=/e"}, "/", "/c", false},
		{"tls", []string{"--listen-client-urls", "https://127.0.0.1:1", "--cert-file", "c"}, nil, "/", "/default.etcd", true},
		{"tls from the environment", nil, []string{"ETCD_CERT_FILE=/c"}, "/", "/default.etcd", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := ParseFlags(tc.args, tc.env)
			if got := f.DataDir(tc.cwd); got != tc.dataDir {
				t.Errorf("DataDir = %s, want %s", got, tc.dataDir)
			}
			if got := f.TLS(); got != tc.tls {
				t.Errorf("TLS = %v, want %v", got, tc.tls)
			}
		})
	}
}

func FuzzParseFlags(f *testing.F) {
	f.Add("--name\x00m1\x00--data-dir=x", "ETCD_NAME=y")
	f.Fuzz(func(t *testing.T, args, env string) {
		fl := ParseFlags(splitNUL(args), splitNUL(env))
		_ = fl.DataDir("/")
		_ = fl.TLS()
	})
}

func splitNUL(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func TestReadConfigFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etcd.yaml")
	conf := "name: infra1\ndata-dir: /var/lib/etcd\nlisten-client-urls: https://127.0.0.1:2379\n" +
		"snapshot-count: 100\nclient-transport-security:\n  cert-file: /etc/etcd/m.crt\n  client-cert-auth: true\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := ReadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.DataDir("/x") != "/var/lib/etcd" || f["name"] != "infra1" || f["snapshot-count"] != "100" || !f.TLS() || f["client-cert-auth"] != "true" {
		t.Errorf("flags %v", f)
	}
	if _, err := ReadConfigFile(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Error("a missing configuration file read without error")
	}
}
