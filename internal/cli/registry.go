package cli

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/registry"
)

func newRegistryCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "registry",
		Short: "Run the reference registry: a replica, a migration job, demo data",
		Long: `The reference registry is a small replicated container registry that
ladder upgrades in its demos and tests. Each replica runs a member of a
replicated store (embedded etcd) and serves the OCI distribution API at /v2/,
a status API at /api/v1/, /health and a web UI at /.

You rarely run these commands by hand: 'ladder cluster create' starts
replicas with 'registry serve', and 'ladder upgrade' runs 'registry migrate'
as a one-off job of the target release.`,
	}
	c.AddCommand(newRegistryServeCmd(e), newRegistryMigrateCmd(e), newRegistrySeedCmd(e), newRegistryGCCmd(e))
	return c
}

// releaseFlag resolves --release: the flag, else the stamped release.
func releaseFlag(release string) (string, int, error) {
	if release == "" {
		release = registry.StampedRelease
	}
	if release == "" {
		return "", 0, usageErr("--release is required: this binary is not stamped with a release")
	}
	schema, err := registry.SchemaOf(release)
	if err != nil {
		return "", 0, usageErr("invalid --release %q: %v", release, err)
	}
	return release, schema, nil
}

func parseLevel(flag, s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, usageErr("invalid %s %q: use debug, info, warn or error", flag, s)
	}
	return l, nil
}

func newRegistryServeCmd(e *env) *cobra.Command {
	var (
		cfg          registry.Config
		passwordFile string
		logLevel     string
		etcdLevel    string
	)
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run one replica of the reference registry until stopped",
		Long: `Serve runs one replica: a member of the replicated store, and an HTTP
server with the OCI API (/v2/), the status API (/api/v1/status, /cluster,
/stats, /backup), /health and the web UI (/).

Every replica of a cluster gets the same --cluster and --initial-cluster
(every member as id=peer-URL) and its own --id, --data and ports; all share
--blobs. A replica whose --data already holds store data restarts with it
and ignores --initial-cluster.

A fresh cluster starts at the schema of --release. A replica refuses to
start when the stored schema is newer than its release knows, and says
which release it needs. /health answers 200 once the member has joined, has
a leader and the store is open.

Exit status: 0 when stopped by SIGTERM or SIGINT, 2 for invalid flags,
5 when a listen address is taken (a driver creating a cluster then picks
other ports), 1 for any other failure.

It runs until SIGTERM or SIGINT, then stops gracefully (HTTP first, then the
store member). Logs go to stderr.`,
		Example: `  # a single-replica registry on this machine
  ladder registry serve --id replica-1 --cluster demo --release 2.2.4 \
    --data /var/lib/ladder/replica-1 --blobs /var/lib/ladder/blobs \
    --listen 127.0.0.1:5001 --peer-listen 127.0.0.1:2380 --client-listen 127.0.0.1:2379 \
    --admin-password-file ./admin-password

  # one of three replicas
  ladder registry serve --id replica-2 --cluster demo --release 2.2.4 \
    --data ./r2 --blobs ./blobs --listen 127.0.0.1:5002 \
    --peer-listen 127.0.0.1:2382 --client-listen 127.0.0.1:2392 \
    --initial-cluster replica-1=http://127.0.0.1:2381,replica-2=http://127.0.0.1:2382,replica-3=http://127.0.0.1:2383`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			var missing []string
			for _, f := range []string{"id", "cluster", "data", "blobs", "listen", "peer-listen", "client-listen"} {
				if !c.Flags().Changed(f) {
					missing = append(missing, "--"+f)
				}
			}
			if len(missing) > 0 {
				return usageErr("missing required flags: %s", strings.Join(missing, ", "))
			}
			release, _, err := releaseFlag(cfg.Release)
			if err != nil {
				return err
			}
			cfg.Release = release
			level, err := parseLevel("--log-level", logLevel)
			if err != nil {
				return err
			}
			var zl zapcore.Level
			if err := zl.UnmarshalText([]byte(etcdLevel)); err != nil {
				return usageErr("invalid --store-log-level %q: use debug, info, warn or error", etcdLevel)
			}
			cfg.EtcdLogLevel = &zl
			if passwordFile != "" {
				b, err := os.ReadFile(passwordFile)
				if err != nil {
					return usageErr("read --admin-password-file: %v", err)
				}
				cfg.AdminPassword = strings.TrimRight(string(b), "\r\n")
			}
			cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
			if cfg.AdminPassword == "" {
				cfg.Logger.Warn("no admin password: pushes, deletes and backups are refused")
			}
			if err := registry.Serve(e.ctx, cfg); err != nil {
				switch {
				case errors.Is(err, registry.ErrInvalid):
					return withCode(ExitUsage, err)
				case errors.Is(err, syscall.EADDRINUSE):
					return withCode(registry.ExitAddrInUse, err)
				}
				return err
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&cfg.ID, "id", "", "replica identity, also the store member name (e.g. replica-1)")
	f.StringVar(&cfg.Cluster, "cluster", "", "cluster name, shared by every replica")
	f.StringVar(&cfg.Release, "release", "", "release this replica runs as (default: the binary's stamped release)")
	f.StringVar(&cfg.DataDir, "data", "", "this replica's data folder (store data in DATA/store)")
	f.StringVar(&cfg.BlobDir, "blobs", "", "blob folder shared by every replica (with --blob-store: uploads in progress only)")
	f.StringVar(&cfg.BlobStore, "blob-store", "", "keep blobs in an S3 bucket: s3://BUCKET?endpoint=http(s)://HOST:PORT&region=REGION")
	f.StringVar(&cfg.BlobCredentials, "blob-credentials", "", "file (mode 0600) with AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines for --blob-store (default: those environment variables)")
	f.StringVar(&cfg.Listen, "listen", "", "HTTP address, host:port")
	f.StringVar(&cfg.PeerListen, "peer-listen", "", "store peer address, host:port")
	f.StringVar(&cfg.ClientListen, "client-listen", "", "store client address, host:port")
	f.StringVar(&cfg.AdvertiseHost, "advertise-host", "", "host name given to peers and clients (default: the host of each listen address)")
	f.StringVar(&cfg.InitialCluster, "initial-cluster", "", "every member as id=http://host:peer-port, comma-separated (default: this replica alone)")
	f.StringToStringVar(&cfg.APIMembers, "api-members", nil, "every replica's API as id=host:port, comma-separated: the only addresses replicas ask each other at")
	f.StringVar(&passwordFile, "admin-password-file", "", "file holding the admin password (user \"admin\") for pushes, deletes and backups")
	f.DurationVar(&cfg.UploadMaxAge, "upload-max-age", registry.DefaultUploadMaxAge, "prune uploads that received nothing for this long (negative: never)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&etcdLevel, "store-log-level", "error", "lowest level of the store member's own logs to pass on")
	f.UintVar(&cfg.TickMs, "tick-ms", 100, "store heartbeat interval in milliseconds")
	f.UintVar(&cfg.ElectionMs, "election-ms", 1000, "store election timeout in milliseconds")
	f.StringVar(&cfg.TLS.CertFile, "tls-cert", "", "this replica's certificate (PEM), issued by --tls-ca: HTTPS on the API, mutual TLS on the store's ports")
	f.StringVar(&cfg.TLS.KeyFile, "tls-key", "", "the key of --tls-cert (PEM)")
	f.StringVar(&cfg.TLS.CAFile, "tls-ca", "", "the cluster's CA (PEM): store clients and peers must present a certificate it issued")
	f.StringVar(&cfg.TLS.APICertFile, "api-cert", "", "serve the HTTPS API with this certificate instead of --tls-cert (an operator's own)")
	f.StringVar(&cfg.TLS.APIKeyFile, "api-key", "", "the key of --api-cert (PEM)")
	f.StringVar(&cfg.TLS.APICAFile, "api-ca", "", "the CA that issued --api-cert, for replicas asking each other")
	_ = f.MarkHidden("tick-ms")
	_ = f.MarkHidden("election-ms")
	return c
}

// storeTLSFlags are a store client's certificate flags, named as etcdctl
// names them.
type storeTLSFlags struct{ cert, key, cacert string }

func (t *storeTLSFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&t.cert, "cert", "", "client certificate (PEM) issued by the cluster's CA: the store's ports require one")
	c.Flags().StringVar(&t.key, "key", "", "the key of --cert (PEM)")
	c.Flags().StringVar(&t.cacert, "cacert", "", "the cluster's CA (PEM), to verify the store's members")
}

// config is the store client's TLS configuration; nil when no flag is set
// (a store without TLS).
func (t storeTLSFlags) config() (*tls.Config, error) {
	if t.cert == "" && t.key == "" && t.cacert == "" {
		return nil, nil
	}
	if t.cert == "" || t.key == "" || t.cacert == "" {
		return nil, usageErr("--cert, --key and --cacert go together: the store's ports verify a client certificate")
	}
	return pki.ClientConfig(pki.ClientOptions{CAFiles: []string{t.cacert}, CertFile: t.cert, KeyFile: t.key})
}

// storeClient connects to the store at endpoints (comma-separated URLs).
func storeClient(endpoints string, tf storeTLSFlags) (*clientv3.Client, error) {
	tc, err := tf.config()
	if err != nil {
		return nil, err
	}
	var eps []string
	for _, ep := range strings.Split(endpoints, ",") {
		if ep = strings.TrimSpace(ep); ep != "" {
			eps = append(eps, ep)
		}
	}
	if len(eps) == 0 {
		return nil, usageErr("--endpoints is required: the store client URLs, e.g. http://127.0.0.1:2379")
	}
	// Keepalives notice a member that stopped answering (frozen) on a
	// connection already open, so the client moves to another member.
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, TLS: tc,
		DialKeepAliveTime: 2 * time.Second, DialKeepAliveTimeout: 2 * time.Second, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		MaxCallSendMsgSize: 16 << 20, MaxCallRecvMsgSize: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("connect to the store at %s: %w", endpoints, err)
	}
	return cli, nil
}

func newRegistryMigrateCmd(e *env) *cobra.Command {
	var (
		release   string
		endpoints string
		toSchema  int
		batch     int
		tf        storeTLSFlags
	)
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Migrate the store's data to a newer schema (one-off job)",
		Long: `Migrate runs the release's data migrations, from the schema stored in the
store up to --to-schema (default: the newest schema the release knows).

Each migration converts rows in batches of --batch; every batch commits with
a checkpoint, so a migration stopped half-way resumes where it stopped when
run again, and gives the same result. Before recording the new schema, a
migration checks every row again, so rows written meanwhile in the old
layout are converted too. Replicas keep serving throughout: releases that
know the new schema read both layouts until it is recorded.

It prints one line per batch and per migration, and exits 0 when done, also
when there was nothing to do.`,
		Example: `  ladder registry migrate --release 3.0.1 --endpoints https://127.0.0.1:2379 --to-schema 5 \
    --cert client.crt --key client.key --cacert ca.crt
  ladder registry migrate --release 3.1.2 --endpoints http://10.0.0.1:2379,http://10.0.0.2:2379 --batch 1000 -o json`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			rel, known, err := releaseFlag(release)
			if err != nil {
				return err
			}
			if toSchema == 0 {
				toSchema = known
			}
			if toSchema < 1 || toSchema > known {
				return usageErr("invalid --to-schema %d: release %s knows schemas 1 to %d", toSchema, rel, known)
			}
			if batch < 1 {
				return usageErr("invalid --batch %d: must be at least 1", batch)
			}
			cli, err := storeClient(endpoints, tf)
			if err != nil {
				return err
			}
			defer cli.Close()
			st, err := registry.OpenStore(e.ctx, cli, registry.StoreOptions{Release: rel})
			if err != nil {
				return err
			}
			start := time.Now()
			progress := func(p registry.Progress) {
				if e.json() {
					_ = writeJSONLine(e.stdout, p)
					return
				}
				fmt.Fprintln(e.stdout, progressLine(p, time.Since(start)))
			}
			if err := st.Migrate(e.ctx, registry.MigrateOptions{To: toSchema, Batch: batch, Progress: progress}); err != nil {
				return err
			}
			if !e.json() {
				fmt.Fprintf(e.stdout, "store schema is %d (release %s knows %d)\n", st.Schema(), rel, known)
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&release, "release", "", "release whose migrations to run (default: the binary's stamped release)")
	f.StringVar(&endpoints, "endpoints", "", "store client URLs, comma-separated")
	f.IntVar(&toSchema, "to-schema", 0, "schema to reach (default: the newest the release knows)")
	f.IntVar(&batch, "batch", registry.DefaultBatch, "rows per batch (one transaction and checkpoint each)")
	tf.register(c)
	return c
}

func progressLine(p registry.Progress, elapsed time.Duration) string {
	secs := fmt.Sprintf("[%5.1fs]", elapsed.Seconds())
	if p.Migration == "" {
		return fmt.Sprintf("%s %s", secs, p.Message)
	}
	head := fmt.Sprintf("%s migrate %d->%d %s:", secs, p.From, p.To, p.Migration)
	switch p.Phase {
	case "done":
		return fmt.Sprintf("%s done: %s (%d rows read, %d changed, %d batches)", head, p.Message, p.Rows, p.Changed, p.Batches)
	default:
		if p.Message != "" {
			return fmt.Sprintf("%s %s", head, p.Message)
		}
		return fmt.Sprintf("%s %s batch %d: %d rows read, %d changed", head, p.Phase, p.Batches, p.Rows, p.Changed)
	}
}

func newRegistrySeedCmd(e *env) *cobra.Command {
	var (
		endpoints string
		repos     int
		release   string
		tf        storeTLSFlags
	)
	c := &cobra.Command{
		Use:   "seed",
		Short: "Fill a registry store with realistic demo metadata",
		Long: `Seed writes repositories, manifests, tags, blob links and events into the
store, in the layout of its current schema, as pushes would. The same
--repositories always gives the same names and digests, so a demo can check
that an upgrade loses nothing (compare 'GET /api/v1/stats' before and after).
Only metadata is written: the blobs themselves are not.`,
		Example: `  ladder registry seed --endpoints http://127.0.0.1:2379 --repositories 200`,
		Args:    exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if repos < 1 {
				return usageErr("invalid --repositories %d: must be at least 1", repos)
			}
			cli, err := storeClient(endpoints, tf)
			if err != nil {
				return err
			}
			defer cli.Close()
			st, err := registry.OpenStore(e.ctx, cli, registry.StoreOptions{Release: release})
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(e.stderr, nil))
			if err := registry.SeedStore(e.ctx, st, repos, log); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "seeded %d repositories at schema %d\n", repos, st.Schema())
			return nil
		},
	}
	c.Flags().StringVar(&endpoints, "endpoints", "", "store client URLs, comma-separated")
	c.Flags().IntVar(&repos, "repositories", 20, "number of repositories")
	c.Flags().StringVar(&release, "release", "", "release to write as (drivers pass it when they run seed as a job); default: the store's schema")
	tf.register(c)
	return c
}

// writeJSONLine prints v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
