package docker

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Names of the engine objects a cluster owns.
func (d *Driver) network() string             { return "ladder-" + d.name }
func (d *Driver) sharedVolume() string        { return "ladder-" + d.name + "-shared" }
func (d *Driver) dataVolume(id string) string { return "ladder-" + d.name + "-" + id + "-data" }

func (d *Driver) labels(extra map[string]string) map[string]string {
	l := map[string]string{LabelCluster: d.name}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

func (d *Driver) graceSeconds() int {
	return max(1, int(d.opts.StopGrace.Round(time.Second)/time.Second))
}

func httpURL(port int) string { return "http://" + apiAddr(port) }

// apiAddr is where this machine reaches a replica's published API port.
func apiAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePort returns a free loopback port for the engine to publish on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
