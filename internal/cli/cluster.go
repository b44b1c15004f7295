package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/driver/swarm"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

func newClusterCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "Create, adopt, list, inspect, restart, forget and destroy clusters",
		Long: `A cluster is a set of reference registry replicas sharing a replicated
store. The local driver runs them as processes on this machine, with their
data, logs and pid files under $LADDER_HOME/clusters/NAME (default
~/.ladder). Every command takes --cluster NAME (default "default").`,
	}
	c.AddCommand(newClusterCreateCmd(e), newClusterConnectCmd(e), newClusterListCmd(e), newClusterStatusCmd(e), newRestartCmd(e, "ladder cluster restart"),
		newClusterDestroyCmd(e), newClusterSeedCmd(e), newRotateKeyCmd(e), newClusterAdoptCmd(e), newClusterForgetCmd(e),
		newRotateCertsCmd(e), newClusterTrustCmd(e))
	return c
}

func newClusterCreateCmd(e *env) *cobra.Command {
	var (
		cf       clusterFlag
		version  string
		replicas int
		password string
		pwFile   string
		pwStdin  bool
		anonPull bool
		drv      string
		build    string
		timeout  time.Duration
		api      apiCert
		nodes    []string
		blobs    blobFlags
		svc      string
	)
	c := &cobra.Command{
		Use:   "create",
		Short: "Start a new cluster of reference registry replicas",
		Long: `Create starts --replicas replicas of the reference registry at --version,
each with a member of the replicated store, and returns when every replica
is healthy and the store has settled.

--service etcd starts etcd members instead, each named by its replica id,
from the releases ladder builds and caches (ladder releases fetch etcd
3.5.35); etcd needs no admin password. With --driver docker each release
runs from an image built FROM scratch from its cached binary the first time
it is needed, ladder-etcd:VERSION-BUILD, BUILD naming the binary. An etcd
cluster ladder did not create is taken over with ladder cluster adopt.

The registry's admin password (user "admin": pushes, deletes, users,
backups, and ladder's own calls) comes from --admin-password-file FILE or
the first line of standard input with --admin-password-stdin; without
either, one is generated. Either way it is kept in a file readable only by
you, whose path is printed. A password is never taken on the command line.

Anyone may pull from the registry without logging in unless
--anonymous-pull=false (change it later with: ladder users anonymous-pull
on|off).

--driver swarm runs each replica as a service of one task on a Docker
Swarm (the engine DOCKER_HOST names must be a manager), placed on --nodes;
every node needs the release images (ladder images build, then docker save
| docker load on the others). Blobs are then best kept in an S3 bucket
that every node reaches (--blob-store); the keys come from the file
--blob-credentials names (mode 0600) or from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, never from the command line, and are given to the
replicas as a secret.

Every cluster gets its own certificate authority (ECDSA P-256; its key
stays in the cluster's folder, 0600, and no replica holds it), a
certificate for each replica (for 127.0.0.1, ::1, localhost and its
container's name) and one for ladder. The API is HTTPS; the store's client
and peer ports accept only certificates of this CA. ladder verifies every
connection against it ("ca" in 'ladder cluster status -o json').

--tls-cert and --tls-key serve the HTTPS API with your own certificate
instead (it must name 127.0.0.1 or the host clients use, and with --driver
docker the containers' names, ladder-CLUSTER-replica-N, by which replicas
ask each other); give the CA that issued it with --ca, so ladder and the
replicas can verify it. The store's ports keep the cluster's own CA.`,
		Example: `  ladder cluster create --version 2.1.4
  ladder cluster create --cluster kv --service etcd --version 3.5.35
  ladder cluster create --cluster kv --service etcd --driver docker --version 3.5.35
  ladder cluster create --cluster staging --version 3.0.1 --replicas 5
  ladder cluster create --version 3.1.2 --tls-cert api.crt --tls-key api.key --ca my-ca.crt
  ladder cluster create --driver swarm --nodes node-a,node-b,node-c --version 2.1.4 \
    --blob-store 's3://ladder-blobs?endpoint=http://10.0.0.5:7070&region=us-east-1' \
    --blob-credentials ~/.ladder/s3.keys --create-bucket`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if version == "" {
				return usageErr("--version is required: the release the replicas run, such as --version 3.1.2 (the releases there are: ladder catalog)")
			}
			if c.Flags().Changed("admin-password") {
				return usageErr("--admin-password is not accepted: a password on the command line is seen by every user of this machine; " +
					"use --admin-password-file FILE, or pipe it with --admin-password-stdin")
			}
			pw, err := adminPasswordFrom(e, pwFile, pwStdin)
			if err != nil {
				return err
			}
			if !anonPull && svc != service.RegistryName {
				return usageErr("--anonymous-pull is a setting of the registry, not of --service %s", svc)
			}
			d, err := newCluster(e, e.stdout, createOpts{cluster: cf.name, version: version, replicas: replicas,
				password: pw, driver: drv, build: build, timeout: timeout, service: svc, nodes: nodes, blobs: blobs,
				api: api.with(e.caFile)})
			if err != nil || anonPull {
				return err
			}
			return setAnonymousPull(e, d, cf.name, false)
		},
	}
	cf.register(c)
	c.Flags().StringVar(&version, "version", "", "release to run (required; see: ladder catalog)")
	c.Flags().IntVar(&replicas, "replicas", 3, "number of replicas")
	c.Flags().StringVar(&svc, "service", service.RegistryName, "what the replicas run: registry (the reference registry) or etcd (a release built by: ladder releases fetch etcd VERSION)")
	_ = c.RegisterFlagCompletionFunc("service", completeServices)
	c.Flags().StringVar(&password, "admin-password", "", "refused: use --admin-password-file or --admin-password-stdin")
	_ = c.Flags().MarkHidden("admin-password")
	c.Flags().StringVar(&pwFile, "admin-password-file", "", "`FILE` holding the registry's admin password (default: generated)")
	c.Flags().BoolVar(&pwStdin, "admin-password-stdin", false, "read the registry's admin password from the first line of standard input")
	c.Flags().BoolVar(&anonPull, "anonymous-pull", true, "registry: let anyone pull without logging in")
	c.Flags().StringVar(&drv, "driver", local.Name, "where replicas run: local, docker or swarm (images: ladder images build)")
	c.Flags().StringSliceVar(&nodes, "nodes", nil, "swarm: nodes to place replicas on, round robin: hostnames or LABEL=VALUE node labels (default: this engine's node)")
	blobs.register(c)
	_ = c.RegisterFlagCompletionFunc("driver", driverFlag)
	_ = c.RegisterFlagCompletionFunc("version", versionFlag)
	c.Flags().StringVar(&build, "build", "", "docker: the image build to run (see: ladder images build; default: the newest that holds --version)")
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the cluster to become healthy")
	c.Flags().StringVar(&api.cert, "tls-cert", "", "serve the HTTPS API with this certificate (PEM) instead of the cluster CA's; needs --tls-key and --ca")
	c.Flags().StringVar(&api.key, "tls-key", "", "the key (PEM) of --tls-cert")
	return c
}

// createOpts are the choices of a new cluster.
type createOpts struct {
	cluster  string
	version  string
	replicas int
	// password is the admin password; generated when empty.
	password string
	driver   string
	// build is the docker driver's image build ("": the newest).
	build   string
	timeout time.Duration
	// service names what the replicas run ("": the registry).
	service string
	// api is an operator's own certificate for the HTTPS API.
	api apiCert
	// nodes places a swarm cluster's replicas.
	nodes []string
	blobs blobFlags
}

// blobFlags choose where a new cluster keeps blobs.
type blobFlags struct {
	store, credentials string
	createBucket       bool
}

func (f *blobFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.store, "blob-store", "", "keep blobs in an S3 bucket: s3://BUCKET?endpoint=http(s)://HOST:PORT&region=REGION (default: a folder the replicas share)")
	c.Flags().StringVar(&f.credentials, "blob-credentials", "", "file (mode 0600) of AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines for --blob-store (default: those environment variables)")
	c.Flags().BoolVar(&f.createBucket, "create-bucket", false, "create the --blob-store bucket if missing; destroying the cluster then removes it")
}

// newCluster creates a cluster and waits until it has settled, printing
// its status to w.
func newCluster(e *env, w io.Writer, o createOpts) (driver.Driver, error) {
	c, err := o.check()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := c.prepare(e); err != nil {
		return nil, err
	}
	d, err := c.create(e)
	if err != nil {
		var ee *exitError
		if errors.Is(err, home.ErrClusterExists) || errors.Is(err, driver.ErrNoArtifact) ||
			errors.Is(err, driver.ErrInvalidSpec) || errors.As(err, &ee) {
			return nil, withCode(ExitUsage, err)
		}
		return nil, fmt.Errorf("create cluster %s: %w", o.cluster, err)
	}
	st, err := e.waitSettled(e.ctx, d, o.timeout)
	if err != nil {
		return nil, fmt.Errorf("create cluster %s: %w (inspect: ladder cluster status --cluster %s; remove: ladder cluster destroy --cluster %s)",
			o.cluster, err, o.cluster, o.cluster)
	}
	fmt.Fprintf(e.stderr, "cluster %s is up in %.1fs\n", o.cluster, time.Since(start).Seconds())
	if c.generated {
		fmt.Fprintf(e.stderr, "admin password (user admin) written to %s\n",
			filepath.Join(home.ClusterDir(c.root, o.cluster), service.AdminPasswordSecret))
	}
	if e.json() && w == e.stdout {
		return d, writeJSON(w, st)
	}
	printStatus(w, st)
	return d, nil
}

// creation is a cluster on its way to being made.
type creation struct {
	o    createOpts
	root string
	svc  driver.Service
	spec driver.Spec
	// generated: ladder made up the admin password.
	generated bool
	// plain: the cluster runs without TLS (plainHTTPEnv).
	plain bool
	// ca is a registry cluster's CA, unless plain.
	ca *pki.CA
	// bs is the blob store --blob-store names, if it names one.
	bs *blobStore
}

// check checks the choices of a new cluster before anything is made, and
// returns what making it takes.
func (o createOpts) check() (*creation, error) {
	if _, err := parseVersion("--version", o.version); err != nil {
		return nil, err
	}
	if o.replicas < 1 || o.replicas > driver.MaxReplicas {
		return nil, usageErr("invalid --replicas %d: use 1 to %d (3 or 5 tolerate a failed replica)", o.replicas, driver.MaxReplicas)
	}
	if err := home.ValidateName(o.cluster); err != nil {
		return nil, usageErr("%w", err)
	}
	root, err := home.Dir()
	if err != nil {
		return nil, err
	}
	svc, err := newService(o.service)
	if err != nil {
		return nil, err
	}
	if svc.Name() == service.EtcdName && o.driver == docker.Name {
		// Each etcd release is its own binary: its image is built from
		// the cached binary when first needed, named by that binary.
		if o.build != "" {
			return nil, usageErr("--build names images of the reference registry; etcd's images are built from the releases ladder fetched (ladder releases fetch etcd %s)", o.version)
		}
		o.build = docker.BuildPerRelease
	}
	spec, generated := o.spec(svc)
	if o.blobs.store == "" && (o.blobs.credentials != "" || o.blobs.createBucket) {
		return nil, usageErr("--blob-credentials and --create-bucket go with --blob-store")
	}
	if err := home.CheckNew(root, o.cluster); err != nil {
		return nil, withCode(ExitUsage, err)
	}
	return &creation{o: o, root: root, svc: svc, spec: spec, generated: generated,
		plain: os.Getenv(plainHTTPEnv) == "1"}, nil
}

// spec is the driver's spec of the new cluster. A registry's holds its
// admin password, generated when none was given; generated says so.
func (o createOpts) spec(svc driver.Service) (spec driver.Spec, generated bool) {
	spec = driver.Spec{Cluster: o.cluster, Service: svc, Version: o.version, Replicas: o.replicas, Timeout: o.timeout}
	if svc.Name() == service.RegistryName {
		generated = o.password == ""
		if generated {
			o.password = home.GeneratePassword()
		}
		spec.Secrets = map[string][]byte{service.AdminPasswordSecret: []byte(o.password + "\n")}
	}
	return spec, generated
}

// prepare makes, into the spec, what a registry's replicas are given
// besides their release: the cluster's certificates (unless plain) and
// the blob store.
func (c *creation) prepare(e *env) error {
	if c.svc.Name() == service.RegistryName && !c.plain {
		ca, err := newTrust(c.o.cluster, c.o.replicas, c.spec.Secrets)
		if err != nil {
			return fmt.Errorf("create cluster %s: %w", c.o.cluster, err)
		}
		c.ca = ca
		if err := c.o.api.add(c.spec.Secrets); err != nil {
			return err
		}
	}
	if c.o.blobs.store == "" {
		return nil
	}
	if c.svc.Name() != service.RegistryName {
		return usageErr("--blob-store is where the registry keeps blobs: it goes with --service %s", service.RegistryName)
	}
	bs, err := prepareBlobStore(e.ctx, e.stderr, c.o.blobs.store, c.o.blobs.credentials, c.o.blobs.createBucket)
	if err != nil {
		return err
	}
	c.bs = bs
	c.spec.Service = service.Registry{BlobStore: bs.loc.String()}
	c.spec.Secrets[service.BlobCredentialsSecret] = bs.keys.Format()
	return nil
}

// create makes the cluster, then records its blob store and, for the
// registry, keeps its CA's key; a cluster whose key cannot be kept is
// destroyed. On failure the bucket this command created is removed.
func (c *creation) create(e *env) (driver.Driver, error) {
	d, err := createCluster(e.ctx, e.stderr, c.o, c.root, c.spec)
	if err == nil && c.bs != nil {
		err = recordBlobStore(c.root, c.o.cluster, c.bs)
	}
	if err == nil && c.svc.Name() == service.RegistryName {
		if err = c.keepTrust(); err != nil {
			_ = d.Destroy(context.WithoutCancel(e.ctx))
		}
	}
	if err != nil && c.bs != nil && c.bs.created {
		if rmErr := registry.RemoveBucket(context.WithoutCancel(e.ctx), c.bs.loc, c.bs.keys); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	return d, err
}

// keepTrust keeps the CA's key in the cluster's folder, for rotate-certs,
// or marks a plain cluster there.
func (c *creation) keepTrust() error {
	dir := home.ClusterDir(c.root, c.o.cluster)
	if c.plain {
		return os.WriteFile(filepath.Join(dir, plainMarker), []byte("a cluster without TLS, for measurements only\n"), 0o600)
	}
	return writeCAKey(dir, c.ca)
}

// waitSettled waits until every replica is healthy and the store has
// settled, with the engine's progress-aware wait: up to timeout while
// replicas make progress, and at most the default stall time without.
func (e *env) waitSettled(ctx context.Context, d driver.Driver, timeout time.Duration) (upgrade.Status, error) {
	app, err := e.observer(d)
	if err != nil {
		return upgrade.Status{}, err
	}
	defer closeApp(app)
	opts := upgrade.DefaultOptions()
	opts.MaxWait = timeout
	return upgrade.WaitSettled(ctx, d, app, opts, nil, nil)
}

// unsettledReason says in one line why a status is not settled.
func unsettledReason(st upgrade.Status) string { return strings.Join(st.Unsettled(), "; ") }

func newClusterStatusCmd(e *env) *cobra.Command {
	var (
		cf clusterFlag
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show replicas, versions, leader and per-table readiness",
		Long: `Status asks every replica for its state and shows: the cluster's version
(or "mixed"), the store's schema, each replica's health, UI, leader and
applied index, and for every table whether it is ready on all replicas and
which replicas lag.

The JSON form (-o json) is a stable contract for scripts: cluster, version,
schema_version, ca (the CA certificate that verifies the replicas' URLs,
for curl --cacert and other clients), replicas[{id, version, healthy, ui,
url, leader, applied_index, pid}], store{settled, tables[{db, name, ready,
lagging}]}.`,
		Example: `  ladder cluster status
  ladder cluster status --cluster staging -o json
  curl --cacert "$(ladder cluster status -o json | jq -r .ca)" "$(ladder cluster status -o json | jq -r '.replicas[0].url')/health"`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			d, rec, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			st, err := e.clusterStatus(e.ctx, d)
			if err != nil {
				return err
			}
			if e.json() {
				return writeJSON(e.stdout, clusterStatusJSON{Status: st, CA: caPath(rec)})
			}
			printStatus(e.stdout, st)
			return nil
		},
	}
	cf.register(c)
	return c
}

// printStatus writes a cluster status as a table.
func printStatus(w io.Writer, st upgrade.Status) {
	settled := "settled"
	if !st.Store.Settled {
		settled = "NOT settled: " + unsettledReason(st)
	}
	if st.ClusterVersion != "" {
		fmt.Fprintf(w, "cluster %s  version %s  cluster version %s  store %s\n\n", st.Cluster, st.Version, st.ClusterVersion, settled)
	} else {
		fmt.Fprintf(w, "cluster %s  version %s  schema %d  store %s\n\n", st.Cluster, st.Version, st.SchemaVersion, settled)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tVERSION\tHEALTH\tUI\tROLE\tAPPLIED\tPID\tURL")
	for _, r := range st.Replicas {
		health := yesNo(r.Healthy, "ok", "DOWN")
		if r.Error != "" {
			health = "DOWN (" + r.Error + ")"
		}
		role := "follower"
		switch {
		case r.Error != "":
			role = "-"
		case r.Leader:
			role = "leader"
		case !r.Voter:
			role = "learner"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.ID, r.Version, health, yesNo(r.UI, "ok", "-"), role, r.AppliedIndex, r.PID, r.URL)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tREVISION\tREADY\tLAGGING")
	for _, t := range st.Store.Tables {
		lag := "-"
		if len(t.Lagging) > 0 {
			lag = strings.Join(t.Lagging, ",")
		}
		fmt.Fprintf(tw, "%s/%s\t%d\t%s\t%s\n", t.DB, t.Name, t.Revision, yesNo(t.Ready, "yes", "NO"), lag)
	}
	tw.Flush()
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func newClusterDestroyCmd(e *env) *cobra.Command {
	var cf clusterFlag
	c := &cobra.Command{
		Use:   "destroy",
		Short: "Stop every replica and delete the cluster and its data",
		Long: `Destroy stops every replica and removes everything the cluster owns: its
processes or containers, volumes, network and folder. It is refused while
an upgrade or a rolling restart of the cluster runs.

It also removes the CA files 'ladder cluster trust --docker' installed.

A cluster whose removal was cut short (its record gone, its folder, a
process or an engine object left) is finished off by running destroy again.`,
		Example: `  ladder cluster destroy --cluster staging`,
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if err := home.ValidateName(cf.name); err != nil {
				return usageErr("%w", err)
			}
			root, err := home.Dir()
			if err != nil {
				return err
			}
			if _, err := home.ReadRecord(root, cf.name); errors.Is(err, home.ErrNoCluster) {
				return removeLeftovers(e, root, cf.name, err)
			}
			d, rec, err := openCluster(cf.name)
			if err != nil {
				return err
			}
			removeBucket, err := bucketToRemove(rec)
			if err != nil {
				return fmt.Errorf("destroy cluster %s: %w", cf.name, err)
			}
			err = e.withLock(e.ctx, d, rec, "destroy", func() error {
				if _, err := undoDockerTrust(home.ClusterDir(root, cf.name)); err != nil {
					return err
				}
				if err := d.Destroy(e.ctx); err != nil {
					return err
				}
				if removeBucket != nil {
					if err := removeBucket(e.ctx); err != nil {
						return err
					}
				}
				// A cluster connected from another home has its folder
				// there, and its record here.
				return os.RemoveAll(home.ClusterDir(root, cf.name))
			})
			var ee *exitError
			if errors.As(err, &ee) {
				return err
			}
			if err != nil {
				return fmt.Errorf("destroy cluster %s: %w (run the same command again to finish)", cf.name, err)
			}
			fmt.Fprintf(e.stderr, "cluster %s destroyed\n", cf.name)
			if e.json() {
				return writeJSON(e.stdout, map[string]any{"cluster": cf.name, "destroyed": true})
			}
			return nil
		},
	}
	cf.register(c)
	return c
}

// removeLeftovers finishes a cluster whose record is gone: its folder, a
// process started for it, or its containers, volumes and network. With
// nothing left, it says there is no such cluster (noCluster).
func removeLeftovers(e *env, root, name string, noCluster error) error {
	_, statErr := os.Stat(home.ClusterDir(root, name))
	folder := statErr == nil
	if err := local.Remove(e.ctx, name, local.Options{Home: root}); err != nil {
		return fmt.Errorf("remove what is left of cluster %s: %w", name, err)
	}
	engine := false
	if cli, err := docker.NewClient(); err == nil {
		defer cli.Close()
		if docker.Ping(e.ctx, cli) == nil {
			left, err := docker.Leftovers(e.ctx, cli, name)
			if err != nil {
				return err
			}
			if engine = left != ""; engine {
				if err := docker.Remove(e.ctx, name, docker.Options{Home: root, Client: cli}); err != nil {
					return fmt.Errorf("remove what is left of cluster %s on the engine (%s): %w", name, left, err)
				}
			}
			left, err = swarm.Leftovers(e.ctx, cli, name)
			if err != nil {
				return err
			}
			if left != "" {
				engine = true
				if err := swarm.Remove(e.ctx, name, swarm.Options{Home: root, Client: cli}); err != nil {
					return fmt.Errorf("remove what is left of cluster %s on the swarm (%s): %w", name, left, err)
				}
			}
		}
	}
	if !folder && !engine {
		return withCode(ExitUsage, noCluster)
	}
	fmt.Fprintf(e.stderr, "cluster %s: removed what was left of it\n", name)
	if e.json() {
		return writeJSON(e.stdout, map[string]any{"cluster": name, "destroyed": true, "leftovers": true})
	}
	return nil
}
