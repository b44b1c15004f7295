package docker

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// TestKeptPorts: a binding that left its host port to the engine gets the
// one the engine chose, on the same address; a fixed one stays as it is.
func TestKeptPorts(t *testing.T) {
	cp, pp := network.MustParsePort("2379/tcp"), network.MustParsePort("2380/tcp")
	lo := netip.MustParseAddr("127.0.0.1")
	any4 := netip.MustParseAddr("0.0.0.0")
	tests := []struct {
		name     string
		bindings network.PortMap
		actual   network.PortMap
		want     network.PortMap
	}{
		{name: "chosen by the engine",
			bindings: network.PortMap{cp: {{HostIP: lo}}},
			actual:   network.PortMap{cp: {{HostIP: lo, HostPort: "32768"}}},
			want:     network.PortMap{cp: {{HostIP: lo, HostPort: "32768"}}}},
		{name: "zero asks the engine too",
			bindings: network.PortMap{cp: {{HostIP: lo, HostPort: "0"}}},
			actual:   network.PortMap{cp: {{HostIP: lo, HostPort: "32768"}}},
			want:     network.PortMap{cp: {{HostIP: lo, HostPort: "32768"}}}},
		{name: "the one on the binding's address",
			bindings: network.PortMap{cp: {{HostIP: lo}}},
			actual:   network.PortMap{cp: {{HostIP: any4, HostPort: "40000"}, {HostIP: lo, HostPort: "32768"}}},
			want:     network.PortMap{cp: {{HostIP: lo, HostPort: "32768"}}}},
		{name: "no address takes the first",
			bindings: network.PortMap{cp: {{}}},
			actual:   network.PortMap{cp: {{HostIP: any4, HostPort: "40000"}, {HostIP: lo, HostPort: "32768"}}},
			want:     network.PortMap{cp: {{HostPort: "40000"}}}},
		{name: "fixed",
			bindings: network.PortMap{cp: {{HostIP: lo, HostPort: "2379"}}, pp: {{HostPort: "2380"}}},
			actual:   network.PortMap{cp: {{HostIP: lo, HostPort: "2379"}}, pp: {{HostIP: any4, HostPort: "2380"}}},
			want:     network.PortMap{cp: {{HostIP: lo, HostPort: "2379"}}, pp: {{HostPort: "2380"}}}},
		{name: "none", bindings: nil, want: network.PortMap{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			insp := &container.InspectResponse{HostConfig: &container.HostConfig{PortBindings: tc.bindings},
				NetworkSettings: &container.NetworkSettings{Ports: tc.actual}}
			if got := keptPorts(insp); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("keptPorts = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestImageVolumes: only the named volumes that neither a bind nor a
// mount of the container's configuration covers are named anew.
func TestImageVolumes(t *testing.T) {
	insp := &container.InspectResponse{
		HostConfig: &container.HostConfig{
			Binds:  []string{"/srv/etcd:/var/lib/etcd:rw"},
			Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: "conf", Target: "/etc/etcd/"}},
		},
		Mounts: []container.MountPoint{
			{Type: "volume", Name: "0f3c", Destination: "/data"},
			{Type: "bind", Source: "/srv/etcd", Destination: "/var/lib/etcd"},
			{Type: "volume", Name: "conf", Destination: "/etc/etcd"},
			{Type: "volume", Name: "", Destination: "/anonymous"},
			{Type: "tmpfs", Destination: "/tmp"},
		},
	}
	want := []mount.Mount{{Type: mount.TypeVolume, Source: "0f3c", Target: "/data"}}
	if got := imageVolumes(insp); !reflect.DeepEqual(got, want) {
		t.Errorf("imageVolumes = %v, want %v", got, want)
	}
}
