package etcd

import (
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		cwd     string
		dataDir string
		dropped []string
	}{
		{"spaced", []string{"--name", "m1", "--data-dir", "/var/lib/etcd/m1", "--snapshot-count", "100"}, nil, "/",
			"/var/lib/etcd/m1", []string{"--snapshot-count"}},
		{"equals and single dash", []string{"-name=m1", "--data-dir=d", "--debug"}, nil, "/srv",
			"/srv/d", []string{"--debug"}},
		{"default folder", []string{"--name", "infra2"}, nil, "/home/op", "/home/op/infra2.etcd", nil},
		{"no name", nil, nil, "/w", "/w/default.etcd", nil},
		{"environment", []string{"--name", "m1"}, []string{"ETCD_DATA_DIR=/e", "ETCD_QUOTA_BACKEND_BYTES=1", "HOME=/root"}, "/",
			"/e", []string{"--quota-backend-bytes"}},
		{"command line wins", []string{"--data-dir", "/c"}, []string{"ETCD_DATA_DIR=/e"}, "/", "/c", nil},
		{"placement flags kept out", []string{"--listen-client-urls", "http://127.0.0.1:1", "--initial-cluster", "a=b",
			"--initial-cluster-state", "new", "--initial-cluster-token", "t", "--advertise-client-urls", "x",
			"--listen-peer-urls", "y", "--initial-advertise-peer-urls", "z"}, nil, "/", "/default.etcd", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := ParseFlags(tc.args, tc.env)
			if got := f.DataDir(tc.cwd); got != tc.dataDir {
				t.Errorf("DataDir = %s, want %s", got, tc.dataDir)
			}
			if got := f.Dropped(); !slices.Equal(got, tc.dropped) {
				t.Errorf("Dropped = %v, want %v", got, tc.dropped)
			}
		})
	}
}

func FuzzParseFlags(f *testing.F) {
	f.Add("--name\x00m1\x00--data-dir=x", "ETCD_NAME=y")
	f.Fuzz(func(t *testing.T, args, env string) {
		fl := ParseFlags(splitNUL(args), splitNUL(env))
		_ = fl.DataDir("/")
		_ = fl.Dropped()
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
