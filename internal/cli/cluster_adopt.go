package cli

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/service/etcd"
	"github.com/ladder-dev/ladder/upgrade"
)

func newClusterAdoptCmd(e *env) *cobra.Command {
	var o adoptOpts
	c := &cobra.Command{
		Use:   "adopt",
		Short: "Take over a running etcd cluster that ladder did not create, to upgrade it",
		Long: `Adopt records a running etcd cluster that ladder did not create, so that
ladder plan, upgrade, status and restart work on it as on one it created.

--members lists every member of the cluster as NAME=CLIENT_URL, NAME being
the member's --name. ladder asks each member who it is and which release it
runs, checks that together they are the whole cluster, and reads its peer
URL from the cluster's member list. The local driver adopts members that
run on this machine as your user, on loopback URLs (http://127.0.0.1:PORT).

Each member's configuration is read from the process listening on its
client port: its command line, its ETCD_* environment and its working
folder (or its --config-file). Its data folder is --data-dir there (or
etcd's default, NAME.etcd in its working folder); --data-dirs
NAME=DIR,... gives the folders instead, or as a check: a folder that is
not the one the process uses is refused. Data folders stay where they are,
and ladder never deletes them.

Nothing is restarted: ladder takes over the processes as they run. The
first restart or upgrade of a member stops its process and starts it again
under ladder with its own command line, ETCD_* environment and working
folder, on the release's binary; its output then goes to
$LADDER_HOME/clusters/NAME/replicas/MEMBER/replica.log. Stop whatever
supervised the members before (a systemd unit, a script that restarts
them), or it will fight ladder.

Members that serve their clients over TLS (https:// URLs) are reached with
--ca (the CA that signed their certificates; default: the system's) and,
if they ask for client certificates (--client-cert-auth), --cert and --key.
ladder keeps the paths of these files, not copies: keep them in place.

--driver docker --containers NAME,... adopts members running in containers
on the engine DOCKER_HOST names, by container name. Each member's name,
data folder and client port come from its container: its process must be
etcd itself, its data folder on a volume or bind mount, its client port
published on this machine (-p 127.0.0.1::2379 is enough). Nothing is
restarted. Upgrading a member replaces its container by one of the same
name and configuration (command line, environment, mounts, networks and
aliases, host name, published ports, the engine-chosen one kept) running
ladder's image of the release (ladder-etcd:VERSION-BUILD, built from the
fetched binary). Docker members serving TLS are not adopted yet.

The releases the members run, and those to upgrade to, must be built first
(ladder releases fetch etcd VERSION).

To stop managing the cluster without touching its members: ladder cluster
forget. ladder cluster destroy stops the members too (their data folders,
volumes and networks stay).`,
		Example: `  ladder cluster adopt --cluster kv --service etcd \
      --members infra1=http://127.0.0.1:2379,infra2=http://127.0.0.1:22379,infra3=http://127.0.0.1:32379
  ladder cluster adopt --cluster kv --service etcd \
      --members infra1=http://127.0.0.1:2379,infra2=http://127.0.0.1:22379,infra3=http://127.0.0.1:32379 \
      --data-dirs infra1=/var/lib/etcd/infra1,infra2=/var/lib/etcd/infra2,infra3=/var/lib/etcd/infra3
  ladder cluster adopt --cluster kv --service etcd --members infra1=https://127.0.0.1:2379,... \
      --ca /etc/etcd/ca.crt --cert /etc/etcd/ladder.crt --key /etc/etcd/ladder.key
  ladder cluster adopt --cluster kv --service etcd --driver docker --containers etcd1,etcd2,etcd3
  ladder upgrade --cluster kv --to 3.7.3 --dry-run
  ladder upgrade --cluster kv --to 3.7.3 --yes`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error { return adoptCluster(e, o) },
	}
	o.cf.register(c)
	c.Flags().StringVar(&o.service, "service", "", "what the members run: etcd (required)")
	_ = c.RegisterFlagCompletionFunc("service", completeServices)
	c.Flags().StringVar(&o.driver, "driver", local.Name, "where the members run: local (processes on this machine) or docker (containers)")
	c.Flags().StringVar(&o.containers, "containers", "", "docker: the members' containers, as `NAME,...`")
	c.Flags().StringVar(&o.members, "members", "", "every member, as `NAME=CLIENT_URL,...` (required)")
	c.Flags().StringVar(&o.dataDirs, "data-dirs", "", "members' data folders, as `NAME=DIR,...` (default: read from each member's process)")
	c.Flags().StringVar(&o.tls.CA, "ca", "", "`FILE` of the CA certificates that signed TLS members' certificates (default: the system's)")
	c.Flags().StringVar(&o.tls.Cert, "cert", "", "client certificate `FILE`, for members that ask for one (--client-cert-auth)")
	c.Flags().StringVar(&o.tls.Key, "key", "", "`FILE` of the client certificate's key (kept where it is, never copied)")
	c.Flags().DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long to wait for the cluster to be settled once adopted")
	return c
}

// adoptOpts are the flags of ladder cluster adopt.
type adoptOpts struct {
	cf       clusterFlag
	service  string
	driver   string
	members  string
	dataDirs string
	// containers names the members' containers (docker).
	containers string
	tls        etcd.ClientTLS
	timeout    time.Duration
}

// namedValue is one NAME=VALUE of a list flag.
type namedValue struct{ name, value string }

// parseNamedList parses flag's "NAME=VALUE,NAME=VALUE" value; names are
// unique.
func parseNamedList(flag, s, valueKind string) ([]namedValue, error) {
	var out []namedValue
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, value, ok := strings.Cut(item, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || value == "" {
			return nil, usageErr("invalid %s entry %q: want NAME=%s (NAME is the member's --name)", flag, item, valueKind)
		}
		if seen[name] {
			return nil, usageErr("invalid %s: member %s given twice", flag, name)
		}
		seen[name] = true
		out = append(out, namedValue{name, value})
	}
	return out, nil
}

// loopbackPort checks that u is an http or https URL of this machine's
// loopback and returns its port; what names the URL in errors.
func loopbackPort(what, raw string) (int, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return 0, usageErr("%s: invalid URL %q: want http://127.0.0.1:PORT (https:// for TLS)", what, raw)
	}
	host, p := u.Hostname(), u.Port()
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return 0, usageErr("%s: URL %q has no port: want http://127.0.0.1:PORT", what, raw)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return 0, usageErr("%s: %s is not on this machine's loopback: the local driver adopts members reached at http://127.0.0.1:PORT", what, raw)
	}
	return port, nil
}

// adoptedMember is what adopt found of one member, for its report.
type adoptedMember struct {
	Name      string `json:"name"`
	Version   string `json:"version"`
	PID       int    `json:"pid"`
	ClientURL string `json:"client_url"`
	PeerURL   string `json:"peer_url"`
	DataDir   string `json:"data_dir"`
	// Config says where its configuration was read: "command line" or
	// the configuration file.
	Config string `json:"config"`
}

// adoptCluster adopts the running etcd cluster o describes, with the
// driver o names.
func adoptCluster(e *env, o adoptOpts) error {
	switch o.service {
	case service.EtcdName:
	case "":
		return usageErr("--service is required: ladder adopts etcd clusters (--service etcd)")
	default:
		return usageErr("unknown --service %q for adopt: ladder adopts etcd clusters (--service etcd); it creates the reference registry's with ladder cluster create", o.service)
	}
	switch o.driver {
	case local.Name:
		return adoptLocal(e, o)
	case docker.Name:
		root, svc, err := o.prepare()
		if err != nil {
			return err
		}
		return adoptDocker(e, o, root, svc)
	default:
		return usageErr("unknown --driver %q: use local (processes on this machine) or docker (containers, with --containers)", o.driver)
	}
}

// prepare checks that the cluster's name is valid and free, and returns
// ladder's home and the service the members run.
func (o adoptOpts) prepare() (string, driver.Service, error) {
	if err := home.ValidateName(o.cf.name); err != nil {
		return "", nil, usageErr("%w", err)
	}
	root, err := home.Dir()
	if err != nil {
		return "", nil, err
	}
	if err := home.CheckNew(root, o.cf.name); err != nil {
		return "", nil, withCode(ExitUsage, err)
	}
	svc, err := newService(o.service)
	if err != nil {
		return "", nil, err
	}
	return root, svc, nil
}

// adoptLocal adopts members running as processes of this machine, each
// read from the process listening on its client port.
func adoptLocal(e *env, o adoptOpts) error {
	ms, err := parseLocalMembers(o)
	if err != nil {
		return err
	}
	root, svc, err := o.prepare()
	if err != nil {
		return err
	}
	var tlsConf *tls.Config
	if ms.useTLS {
		if tlsConf, err = clientTLS(&o.tls); err != nil {
			return err
		}
	}
	found, err := etcd.Inspect(e.ctx, ms.endpoints, tlsConf)
	if err != nil {
		return ms.inspectErr(o.cf.name, err)
	}
	var members []local.Member
	var report []adoptedMember
	for i, m := range ms.given {
		member, r, err := adoptProcess(o.cf.name, svc, m, found[i], ms.dirOf)
		if err != nil {
			return err
		}
		members = append(members, member)
		report = append(report, r)
	}

	d, err := local.Adopt(e.ctx, o.cf.name, svc, members, local.Options{Home: root})
	if err != nil {
		return adoptErr(o.cf.name, err)
	}
	if ms.useTLS {
		if err := writeClientTLS(o.cf.name, o.tls); err != nil {
			_ = d.Forget()
			return err
		}
	}
	fmt.Fprintf(e.stderr, "cluster %s adopted: %d etcd members, running as they were\n", o.cf.name, len(members))
	for _, r := range report {
		fmt.Fprintf(e.stderr, "  %s  etcd %s  pid %d  data %s  configuration: %s\n", r.Name, r.Version, r.PID, r.DataDir, r.Config)
	}
	return e.adopted(d, o, report)
}

// localMembers are the members --members and --data-dirs give.
type localMembers struct {
	given []namedValue
	// endpoints are the members' client URLs, in the order given.
	endpoints []string
	// dirOf holds the data folders --data-dirs gives, made absolute.
	dirOf map[string]string
	// useTLS is set when a member is reached over TLS.
	useTLS bool
}

// parseLocalMembers reads the flags of the local driver: every member's
// client URL, on loopback, and the data folders given for some of them.
func parseLocalMembers(o adoptOpts) (localMembers, error) {
	if o.containers != "" {
		return localMembers{}, usageErr("--containers names docker containers: it goes with --driver docker")
	}
	if o.members == "" {
		return localMembers{}, usageErr("--members is required: every member of the cluster as NAME=CLIENT_URL, e.g. --members infra1=http://127.0.0.1:2379,infra2=http://127.0.0.1:22379")
	}
	given, err := parseNamedList("--members", o.members, "CLIENT_URL")
	if err != nil {
		return localMembers{}, err
	}
	dirs, err := parseNamedList("--data-dirs", o.dataDirs, "DIR")
	if err != nil {
		return localMembers{}, err
	}
	if len(given) > driver.MaxReplicas {
		return localMembers{}, usageErr("--members: %d members: ladder manages clusters of 1 to %d", len(given), driver.MaxReplicas)
	}
	ms := localMembers{given: given, dirOf: map[string]string{}, useTLS: o.tls != (etcd.ClientTLS{})}
	names := map[string]bool{}
	for _, m := range given {
		if _, err := loopbackPort("--members "+m.name, m.value); err != nil {
			return localMembers{}, err
		}
		names[m.name] = true
		ms.useTLS = ms.useTLS || strings.HasPrefix(m.value, "https://")
		ms.endpoints = append(ms.endpoints, strings.TrimRight(m.value, "/"))
	}
	for _, d := range dirs {
		if !names[d.name] {
			return localMembers{}, usageErr("--data-dirs names %s, which is not in --members", d.name)
		}
		abs, err := filepath.Abs(d.value)
		if err != nil {
			return localMembers{}, usageErr("--data-dirs %s: %v", d.name, err)
		}
		ms.dirOf[d.name] = abs
	}
	return ms, nil
}

// clientTLS makes the paths of t's files absolute, since ladder keeps the
// paths and not the files, and returns the configuration that reaches TLS
// members.
func clientTLS(t *etcd.ClientTLS) (*tls.Config, error) {
	for _, p := range []*string{&t.CA, &t.Cert, &t.Key} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return nil, usageErr("%v", err)
			}
			*p = abs
		}
	}
	conf, err := t.Config()
	if err != nil {
		return nil, usageErr("--ca, --cert, --key: %v", err)
	}
	return conf, nil
}

// inspectErr explains why etcd.Inspect could not take the members given
// as a whole cluster, and what to do about it.
func (ms localMembers) inspectErr(cluster string, err error) error {
	var (
		missing     *etcd.MissingMembersError
		unreachable *etcd.UnreachableError
	)
	switch {
	case errors.As(err, &unreachable):
		m := ms.given[slices.Index(ms.endpoints, unreachable.Endpoint)]
		hint := fmt.Sprintf("start member %s, or correct its client URL in --members (check it with: etcdctl --endpoints %s endpoint status)", m.name, m.value)
		if isTLSMismatch(unreachable.Err) {
			hint = fmt.Sprintf("member %s speaks TLS differently from how ladder asked: give https:// URLs for TLS members, with --ca (and --cert, --key if they ask for client certificates)", m.name)
		}
		return withHint(ExitFailed, fmt.Errorf("adopt cluster %s: member %s at %w", cluster, m.name, err), hint)
	case errors.As(err, &missing):
		return withHint(ExitUsage, fmt.Errorf("adopt cluster %s: %w", cluster, err),
			"give every member of the cluster in --members: ladder upgrades a cluster whole (see them with: etcdctl member list)")
	default:
		return withCode(ExitUsage, fmt.Errorf("adopt cluster %s: %w", cluster, err))
	}
}

// adoptProcess checks member m, as the cluster describes it (f), and the
// process listening on its client port, and reads from that process how
// ladder is to run the member: its command line, environment, working
// folder and data folder.
func adoptProcess(cluster string, svc driver.Service, m namedValue, f etcd.Found, dirOf map[string]string) (local.Member, adoptedMember, error) {
	if err := checkFound(cluster, m, f); err != nil {
		return local.Member{}, adoptedMember{}, err
	}
	peerPort, err := loopbackPort("member "+m.name+"'s peer URL", f.PeerURLs[0])
	if err != nil {
		return local.Member{}, adoptedMember{}, err
	}
	clientPort, _ := loopbackPort("", m.value)
	if _, err := svc.Artifact(f.Version); err != nil {
		return local.Member{}, adoptedMember{}, withHint(ExitUsage, fmt.Errorf("adopt cluster %s: member %s runs etcd %s: %w", cluster, m.name, f.Version, err),
			fmt.Sprintf("ladder restarts members with the release they run: build it first with: ladder releases fetch etcd %s", f.Version))
	}
	proc, err := etcdProcess(cluster, m, clientPort)
	if err != nil {
		return local.Member{}, adoptedMember{}, err
	}
	flags, config, err := processConfig(cluster, m, proc)
	if err != nil {
		return local.Member{}, adoptedMember{}, err
	}
	scheme := "http"
	if strings.HasPrefix(m.value, "https://") {
		scheme = "https"
	}
	if flags.TLS() != (scheme == "https") {
		return local.Member{}, adoptedMember{}, usageErr("adopt cluster %s: member %s at %s: its TLS configuration and the URL's scheme differ: give the URL it serves its clients at", cluster, m.name, m.value)
	}
	dir, err := processDataDir(cluster, m, proc, flags, dirOf)
	if err != nil {
		return local.Member{}, adoptedMember{}, err
	}
	own := &local.OwnCommand{Args: proc.Args[1:], Dir: proc.Cwd, Scheme: scheme, Env: etcdEnv(proc.Env)}
	member := local.Member{ID: m.name, Version: f.Version, DataDir: dir, PID: proc.PID, Own: own,
		Ports: map[string]int{service.EtcdPortClient: clientPort, service.EtcdPortPeer: peerPort}}
	r := adoptedMember{Name: m.name, Version: f.Version, PID: proc.PID, ClientURL: m.value,
		PeerURL: f.PeerURLs[0], DataDir: dir, Config: config}
	return member, r, nil
}

// checkFound refuses a member whose name is not the one given for it, a
// learner, or one with other than a single peer URL.
func checkFound(cluster string, m namedValue, f etcd.Found) error {
	if f.Name != m.name {
		return usageErr("adopt cluster %s: the member at %s is named %q, not %q: give NAME as the member's --name", cluster, m.value, f.Name, m.name)
	}
	if f.Learner {
		return withCode(ExitRefused, fmt.Errorf("adopt cluster %s: member %s is a learner: promote it first (etcdctl member promote %x)", cluster, m.name, f.ID))
	}
	if len(f.PeerURLs) != 1 {
		return usageErr("adopt cluster %s: member %s has peer URLs %v: ladder adopts members with one peer URL", cluster, m.name, f.PeerURLs)
	}
	return nil
}

// etcdProcess is the process of this user listening on member m's client
// port, which must be etcd itself.
func etcdProcess(cluster string, m namedValue, port int) (local.Process, error) {
	proc, err := local.ProcessOn(port)
	if err != nil {
		return local.Process{}, withHint(ExitUsage, fmt.Errorf("adopt cluster %s: member %s answers at %s, but %w", cluster, m.name, m.value, err),
			"the local driver adopts members running on this machine as your user")
	}
	if len(proc.Args) == 0 || !strings.HasPrefix(filepath.Base(proc.Args[0]), "etcd") {
		return local.Process{}, usageErr("adopt cluster %s: member %s: the process listening at %s (pid %d) runs %q, not etcd itself: ladder adopts etcd processes (not a wrapper or a proxy)",
			cluster, m.name, m.value, proc.PID, strings.Join(proc.Args[:min(1, len(proc.Args))], ""))
	}
	return proc, nil
}

// processConfig reads member m's configuration from its process: its
// command line and ETCD_* environment, or the --config-file they name. It
// also says where it was read.
func processConfig(cluster string, m namedValue, proc local.Process) (etcd.Flags, string, error) {
	flags := etcd.ParseFlags(proc.Args[1:], proc.Env)
	cf := flags["config-file"]
	if cf == "" {
		return flags, "command line", nil
	}
	if !filepath.IsAbs(cf) {
		cf = filepath.Join(proc.Cwd, cf)
	}
	flags, err := etcd.ReadConfigFile(cf)
	if err != nil {
		return nil, "", fmt.Errorf("adopt cluster %s: member %s: %w", cluster, m.name, err)
	}
	return flags, cf, nil
}

// processDataDir is the data folder member m's process runs on, which
// must be the one --data-dirs gives for it, if it gives one, and hold an
// etcd member.
func processDataDir(cluster string, m namedValue, proc local.Process, flags etcd.Flags, dirOf map[string]string) (string, error) {
	dir := flags.DataDir(proc.Cwd)
	if want, ok := dirOf[m.name]; ok {
		if !sameDir(want, dir) {
			return "", usageErr("adopt cluster %s: --data-dirs gives %s for member %s, but its process (pid %d) uses %s: give the folder the member runs on",
				cluster, want, m.name, proc.PID, dir)
		}
		dir = want
	}
	if st, err := os.Stat(filepath.Join(dir, "member", "wal")); err != nil || !st.IsDir() {
		return "", usageErr("adopt cluster %s: %s holds no etcd member (no member/wal folder): give member %s's data folder with --data-dirs %s=DIR",
			cluster, dir, m.name, m.name)
	}
	return dir, nil
}

// etcdEnv keeps the ETCD_* variables of a process's environment: the
// configuration ladder restarts the member with.
func etcdEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "ETCD_") {
			out = append(out, kv)
		}
	}
	return out
}

// adoptErr is the error of a driver's Adopt: a usage error when what was
// given cannot be adopted as it is.
func adoptErr(cluster string, err error) error {
	if errors.Is(err, home.ErrClusterExists) || errors.Is(err, driver.ErrInvalidSpec) || errors.Is(err, driver.ErrNoArtifact) {
		return withCode(ExitUsage, err)
	}
	return fmt.Errorf("adopt cluster %s: %w", cluster, err)
}

// sameDir reports whether a and b are the same folder.
func sameDir(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func newClusterForgetCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:   "forget",
		Short: "Stop managing an adopted or connected cluster, leaving its members running",
		Long: `Forget removes ladder's record of a cluster and leaves the cluster alone:
its members keep running, on their data, where they are. It is the reverse
of ladder cluster adopt (and of ladder cluster connect, which it undoes in
this ladder home only). It is refused while an upgrade or a restart of the
cluster runs.

A cluster ladder created keeps its data in ladder's folder, so it cannot
be forgotten: delete it with ladder cluster destroy.

Members ladder restarted keep running after forget; their output, which
went to the cluster folder, is no longer kept.`,
		Example: `  ladder cluster forget --cluster kv`,
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			d, rec, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			root, err := home.Dir()
			if err != nil {
				return err
			}
			err = e.withLock(e.ctx, d, rec, "forget", func() error {
				if rec.Dir != "" {
					// Connected: the cluster's folder belongs to another home.
					return os.RemoveAll(home.ClusterDir(root, cf.name))
				}
				f, ok := d.(interface{ Forget() error })
				if !ok || !rec.Adopted {
					return withCode(ExitUsage, fmt.Errorf("forget cluster %s: ladder created it and keeps its data: delete it with: ladder cluster destroy --cluster %s", cf.name, cf.name))
				}
				if err := f.Forget(); err != nil {
					if errors.Is(err, local.ErrOwnsData) {
						return withCode(ExitUsage, err)
					}
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "cluster %s forgotten: its members keep running\n", cf.name)
			if e.json() {
				return writeJSON(e.stdout, map[string]any{"cluster": cf.name, "forgotten": true})
			}
			return nil
		},
	}
	cf.register(c)
	return c
}

// adopted waits until an adopted cluster has settled and reports it: next
// steps on stderr, the members and status on stdout (JSON with -o json).
func (e *env) adopted(d driver.Driver, o adoptOpts, report []adoptedMember) error {
	st, err := e.waitSettled(e.ctx, d, o.timeout)
	if err != nil {
		return fmt.Errorf("cluster %s adopted, but it is not settled: %w (inspect: ladder cluster status --cluster %s)", o.cf.name, err, o.cf.name)
	}
	fmt.Fprintf(e.stderr, "next: ladder upgrade --cluster %s --to VERSION --dry-run (the plan), then without --dry-run\n", o.cf.name)
	if e.json() {
		return writeJSON(e.stdout, struct {
			Cluster string          `json:"cluster"`
			Adopted bool            `json:"adopted"`
			Members []adoptedMember `json:"members"`
			Status  upgrade.Status  `json:"status"`
		}{o.cf.name, true, report, st})
	}
	printStatus(e.stdout, st)
	return nil
}
