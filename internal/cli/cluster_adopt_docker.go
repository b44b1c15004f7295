package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/service/etcd"
)

// adoptDocker adopts the etcd containers o.containers names, on the
// Docker engine DOCKER_HOST names: each member's name, data folder and
// client port are read from its container's command line, environment,
// mounts and published ports.
func adoptDocker(e *env, o adoptOpts, root string, svc driver.Service) error {
	names := strings.FieldsFunc(o.containers, func(r rune) bool { return r == ',' || r == ' ' })
	if len(names) == 0 {
		return usageErr("--containers is required with --driver docker: the containers of every member, e.g. --containers etcd1,etcd2,etcd3")
	}
	if o.members != "" || o.dataDirs != "" || o.tls != (etcd.ClientTLS{}) {
		return usageErr("with --driver docker, give the members' containers (--containers); ladder reads their names, data folders and client ports from them (--members, --data-dirs and TLS flags are for --driver local)")
	}
	cli, err := docker.NewClient()
	if err != nil {
		return err
	}
	defer cli.Close()
	if err := docker.Ping(e.ctx, cli); err != nil {
		return withHint(ExitFailed, err, "start the Docker engine, or point DOCKER_HOST at the one that runs the containers")
	}
	var (
		members   []docker.AdoptMember
		endpoints []string
		report    []adoptedMember
	)
	for _, n := range names {
		c, err := docker.InspectContainer(e.ctx, cli, n)
		if err != nil {
			return withCode(ExitUsage, fmt.Errorf("adopt cluster %s: %w", o.cf.name, err))
		}
		m, r, err := containerMember(o.cf.name, n, c)
		if err != nil {
			return err
		}
		endpoints = append(endpoints, r.ClientURL)
		members = append(members, m)
		report = append(report, r)
	}

	found, err := etcd.Inspect(e.ctx, endpoints, nil)
	if err != nil {
		return inspectContainersErr(o.cf.name, err, names, endpoints)
	}
	for i, f := range found {
		if err := checkContainerMember(o.cf.name, svc, names[i], members[i].ID, f); err != nil {
			return err
		}
		members[i].Version = f.Version
		report[i].Version, report[i].PeerURL = f.Version, strings.Join(f.PeerURLs, ",")
	}
	d, err := docker.Adopt(e.ctx, o.cf.name, svc, members, docker.Options{Home: root, Client: cli})
	if err != nil {
		return adoptErr(o.cf.name, err)
	}
	fmt.Fprintf(e.stderr, "cluster %s adopted: %d etcd members in containers, running as they were\n", o.cf.name, len(members))
	for _, r := range report {
		fmt.Fprintf(e.stderr, "  %s  etcd %s  %s  data %s  client %s\n", r.Name, r.Version, r.Config, r.DataDir, r.ClientURL)
	}
	return e.adopted(d, o, report)
}

// containerMember is the member container n, inspected as c, runs: its
// name, data folder and client URL. A container that a new one of the
// same configuration could not replace is refused.
func containerMember(cluster, n string, c docker.Container) (docker.AdoptMember, adoptedMember, error) {
	if !c.Running {
		return docker.AdoptMember{}, adoptedMember{}, withHint(ExitFailed, fmt.Errorf("adopt cluster %s: container %s is not running", cluster, n),
			fmt.Sprintf("start it (docker start %s) and adopt again", n))
	}
	if path.Base(c.Program) != "etcd" {
		return docker.AdoptMember{}, adoptedMember{}, usageErr("adopt cluster %s: container %s runs %s, not etcd itself: ladder adopts containers whose process is etcd", cluster, n, c.Program)
	}
	flags := etcd.ParseFlags(c.Args, c.Env)
	if flags["config-file"] != "" {
		return docker.AdoptMember{}, adoptedMember{}, usageErr("adopt cluster %s: container %s reads --config-file inside the container, which ladder does not adopt yet: give its settings as flags", cluster, n)
	}
	if flags.TLS() {
		return docker.AdoptMember{}, adoptedMember{}, usageErr("adopt cluster %s: container %s serves TLS, which ladder does not adopt on docker yet", cluster, n)
	}
	name := flags["name"]
	if name == "" {
		name = "default"
	}
	dataDir := flags.DataDir("/")
	if !c.OnMount(dataDir) {
		return docker.AdoptMember{}, adoptedMember{}, usageErr("adopt cluster %s: container %s keeps its data (%s) in its own filesystem, which a new container would not have: run it with a volume there", cluster, n, dataDir)
	}
	port, err := publishedClientPort(c, flags["listen-client-urls"])
	if err != nil {
		return docker.AdoptMember{}, adoptedMember{}, usageErr("adopt cluster %s: container %s: %v", cluster, n, err)
	}
	ep := "http://127.0.0.1:" + strconv.Itoa(port)
	return docker.AdoptMember{ID: name, Container: n, Port: port, DataDir: dataDir},
		adoptedMember{Name: name, ClientURL: ep, DataDir: dataDir, Config: "container " + n}, nil
}

// inspectContainersErr explains why etcd.Inspect could not take the
// members of the containers given as a whole cluster.
func inspectContainersErr(cluster string, err error, names, endpoints []string) error {
	var (
		missing     *etcd.MissingMembersError
		unreachable *etcd.UnreachableError
	)
	switch {
	case errors.As(err, &unreachable):
		n := names[slices.Index(endpoints, unreachable.Endpoint)]
		return withHint(ExitFailed, fmt.Errorf("adopt cluster %s: container %s at %w", cluster, n, err),
			fmt.Sprintf("see why with: docker logs %s", n))
	case errors.As(err, &missing):
		return withHint(ExitUsage, fmt.Errorf("adopt cluster %s: %w", cluster, err),
			"give the containers of every member in --containers: ladder upgrades a cluster whole")
	default:
		return withCode(ExitUsage, fmt.Errorf("adopt cluster %s: %w", cluster, err))
	}
}

// checkContainerMember refuses the member container n runs, as the
// cluster describes it (f), when it is not the member id its --name says,
// is a learner, or runs a release ladder has not fetched.
func checkContainerMember(cluster string, svc driver.Service, n, id string, f etcd.Found) error {
	if f.Name != id {
		return usageErr("adopt cluster %s: container %s runs member %q, but its --name says %q", cluster, n, f.Name, id)
	}
	if f.Learner {
		return withCode(ExitRefused, fmt.Errorf("adopt cluster %s: member %s is a learner: promote it first (etcdctl member promote %x)", cluster, f.Name, f.ID))
	}
	if _, err := svc.Artifact(f.Version); err != nil {
		return withHint(ExitUsage, fmt.Errorf("adopt cluster %s: member %s runs etcd %s: %w", cluster, f.Name, f.Version, err),
			fmt.Sprintf("ladder replaces members with images of the releases it fetched: build it first with: ladder releases fetch etcd %s", f.Version))
	}
	return nil
}

// publishedClientPort returns the host port, reachable on 127.0.0.1, that
// the container's etcd client port (from listenURLs, etcd's default 2379)
// is published on.
func publishedClientPort(c docker.Container, listenURLs string) (int, error) {
	port := "2379"
	if listenURLs != "" {
		first, _, _ := strings.Cut(listenURLs, ",")
		u, err := url.Parse(first)
		if err != nil || u.Port() == "" {
			return 0, fmt.Errorf("its --listen-client-urls %q has no port", listenURLs)
		}
		port = u.Port()
	}
	for _, hp := range c.Ports[port+"/tcp"] {
		host, p, err := net.SplitHostPort(hp)
		if err != nil {
			continue
		}
		ip := net.ParseIP(host)
		if ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
			return strconv.Atoi(p)
		}
	}
	return 0, fmt.Errorf("its client port %s is not published on this machine's loopback: ladder reaches members there (run it with -p 127.0.0.1::%s)", port, port)
}
