package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config describes one replica. The CLI's `ladder registry serve` flags map
// onto it one to one.
type Config struct {
	ID      string // replica identity and etcd member name
	Cluster string // cluster name, the etcd initial-cluster token
	Release string // release the replica runs as (catalog.Builtin())
	DataDir string // the replica's own folder; etcd data in DataDir/store
	BlobDir string // blob folder shared by every replica
	// BlobStore, if set, keeps finished blobs in an S3 bucket instead of
	// BlobDir, which then holds only uploads in progress:
	// s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION (ParseS3URL).
	BlobStore string
	// BlobCredentials is the file of the blob store's keys (S3Credentials);
	// empty: the environment's.
	BlobCredentials string

	Listen       string // HTTP host:port (port 0 picks one)
	PeerListen   string // etcd peer host:port
	ClientListen string // etcd client host:port
	// AdvertiseHost is the host name given to peers and clients; default:
	// the host of each listen address (or the machine's host name when
	// that is a wildcard).
	AdvertiseHost string
	// InitialCluster lists every member as id=peerURL,...; default: this
	// replica alone. Ignored by etcd when DataDir already holds data.
	InitialCluster string
	// APIMembers maps every replica's id to the host:port of its API, as
	// the cluster's record has it; /api/v1/cluster asks only these, never
	// a URL read from the store. Empty: a row's URL must be on its store
	// member's host.
	APIMembers map[string]string
	// AdminPassword guards /api/v1/backup and OCI pushes (user "admin").
	// Empty refuses both.
	AdminPassword string
	// UploadMaxAge is how long an upload may receive nothing before it is
	// pruned (default DefaultUploadMaxAge; negative: never).
	UploadMaxAge time.Duration

	Logger *slog.Logger
	// EtcdLogLevel is the lowest etcd log level passed on to Logger
	// (default zapcore.ErrorLevel).
	EtcdLogLevel *zapcore.Level
	// TickMs and ElectionMs tune raft (default 100 and 1000).
	TickMs, ElectionMs uint
	// UnsafeNoFsync turns fsync off (tests only).
	UnsafeNoFsync bool
	// HTTPClient asks the peers for /api/v1/cluster (default: 2 s timeout,
	// trusting CAFile when TLS is on).
	HTTPClient *http.Client

	// TLS (see TLSConfig): without CertFile the replica speaks plain HTTP
	// on every port, which only tests and in-process tools use.
	TLS TLSConfig
}

// TLSConfig is a replica's certificates. With them, the HTTP API is HTTPS
// and the store's client and peer ports require a client certificate the
// cluster's CA issued: nobody without one reads or writes the store.
type TLSConfig struct {
	// CertFile and KeyFile are the replica's own certificate (server and
	// client use), issued by CAFile.
	CertFile, KeyFile string
	// CAFile is the cluster's CA: it verifies the store's clients and
	// peers, and the other replicas' APIs.
	CAFile string
	// APICertFile and APIKeyFile, when set, serve the HTTP API instead of
	// CertFile (an operator's own certificate); APICAFile verifies them
	// when replicas ask each other.
	APICertFile, APIKeyFile, APICAFile string
}

// Enabled says whether the replica speaks TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

func (t TLSConfig) scheme() string {
	if t.Enabled() {
		return "https://"
	}
	return "http://"
}

// Replica is a running replica. Start returns it serving HTTP (with /health
// answering 503) while its member joins the cluster; Ready is closed once
// it serves the store.
type Replica struct {
	cfg     Config
	known   int
	log     *slog.Logger
	etcd    *embed.Etcd
	httpSrv *http.Server
	fresh   freshConns
	hc      *http.Client

	httpURL, clientURL, peerURL string
	localClientURL              string

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	cli   atomic.Pointer[clientv3.Client]
	store atomic.Pointer[Store]
	oci   atomic.Pointer[http.Handler]
	auth  *authority
	// blobs is the S3 blob store, if configured.
	blobs *S3BlobStore

	ready     chan struct{}
	failed    chan struct{}
	failOnce  sync.Once
	failErr   error
	closeOnce sync.Once
	closeErr  error
	muted     atomic.Bool
}

// Serve runs a replica until ctx ends or the replica fails, then shuts it
// down gracefully. It returns the failure, or nil after a clean stop.
func Serve(ctx context.Context, cfg Config) error {
	r, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-r.Failed():
	}
	cerr := r.Close()
	if err := r.Err(); err != nil {
		return err
	}
	return cerr
}

// Start starts a replica: it binds the HTTP, peer and client addresses
// (failing at once if one is taken), starts the etcd member and the HTTP
// server, and joins the store in the background. ctx bounds nothing after
// Start returns; use Close.
func Start(ctx context.Context, cfg Config) (*Replica, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if cfg.Release == "" {
		cfg.Release = StampedRelease
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	known, err := SchemaOf(cfg.Release)
	if err != nil {
		return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("replica", cfg.ID)
	r := &Replica{cfg: cfg, known: known, log: log, ready: make(chan struct{}), failed: make(chan struct{})}
	r.auth = newAuthority(r.cli.Load, cfg.Cluster, cfg.ID, cfg.AdminPassword, log.With("component", "auth"))
	r.hc = cfg.HTTPClient
	if r.hc == nil {
		hc, err := cfg.TLS.peerClient()
		if err != nil {
			return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
		}
		r.hc = hc
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
	}
	if err := os.MkdirAll(cfg.BlobDir, 0o755); err != nil {
		return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
	}
	if cfg.BlobStore != "" {
		loc, err := ParseS3URL(cfg.BlobStore)
		if err != nil {
			return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
		}
		keys, err := S3Credentials(cfg.BlobCredentials)
		if err != nil {
			return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r.blobs, err = NewS3BlobStore(ctx, loc, keys)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
		}
		log.Info("blobs in an S3 bucket", "store", loc.String())
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("start replica %s: listen on %s: %w", cfg.ID, cfg.Listen, err)
	}
	if cfg.TLS.Enabled() {
		srvTLS, err := cfg.TLS.serverConfig()
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
		}
		ln = tls.NewListener(ln, srvTLS)
	}
	scheme := cfg.TLS.scheme()
	r.httpURL = scheme + advertise(cfg.AdvertiseHost, ln.Addr().String())
	r.peerURL = scheme + advertise(cfg.AdvertiseHost, cfg.PeerListen)
	r.clientURL = scheme + advertise(cfg.AdvertiseHost, cfg.ClientListen)
	r.localClientURL = scheme + dialable(cfg.ClientListen)

	ecfg, err := r.etcdConfig()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start replica %s: %w", cfg.ID, err)
	}
	e, err := embed.StartEtcd(ecfg)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start replica %s: start store member: %w", cfg.ID, err)
	}
	r.etcd = e
	r.ctx, r.cancel = context.WithCancel(context.Background())
	// No ReadTimeout or WriteTimeout: a blob may take long to send. An idle
	// body is bounded by the upload handlers, an idle connection here.
	r.httpSrv = &http.Server{Handler: r.routes(), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, ConnState: r.fresh.track, ErrorLog: serverLog(log)}
	r.wg.Add(3)
	go func() {
		defer r.wg.Done()
		if err := r.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.fail(fmt.Errorf("serve http: %w", err))
		}
	}()
	go func() {
		defer r.wg.Done()
		r.bootstrap()
	}()
	go func() {
		defer r.wg.Done()
		r.pruneUploads()
	}()
	log.Info("replica starting", "release", cfg.Release, "schema_known", known, "http", r.httpURL,
		"client", r.clientURL, "peer", r.peerURL)
	return r, nil
}

func (c *Config) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"id", c.ID}, {"cluster", c.Cluster}, {"release", c.Release}, {"data", c.DataDir},
		{"blobs", c.BlobDir}, {"listen", c.Listen}, {"peer-listen", c.PeerListen}, {"client-listen", c.ClientListen},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("start replica: %w: missing %s", ErrInvalid, strings.Join(missing, ", "))
	}
	t := c.TLS
	if (t.CertFile != "" || t.KeyFile != "" || t.CAFile != "") && (t.CertFile == "" || t.KeyFile == "" || t.CAFile == "") {
		return fmt.Errorf("start replica %s: %w: --tls-cert, --tls-key and --tls-ca go together", c.ID, ErrInvalid)
	}
	if t.APICertFile != "" && (t.APIKeyFile == "" || !t.Enabled()) {
		return fmt.Errorf("start replica %s: %w: --api-cert needs --api-key, and --tls-cert for the store", c.ID, ErrInvalid)
	}
	for _, a := range []string{c.Listen, c.PeerListen, c.ClientListen} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("start replica %s: %w: address %q: want host:port", c.ID, ErrInvalid, a)
		}
	}
	return nil
}

// advertise is addr with its host replaced by host (if set), or by the
// machine's name when addr's host is a wildcard.
func advertise(host, addr string) string {
	h, port, _ := net.SplitHostPort(addr)
	if host == "" {
		host = h
		if host == "" || host == "0.0.0.0" || host == "::" {
			host, _ = os.Hostname()
		}
	}
	return net.JoinHostPort(host, port)
}

// dialable is a local address to reach a listener bound to addr.
func dialable(addr string) string {
	h, port, _ := net.SplitHostPort(addr)
	if h == "" || h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, port)
}

func (r *Replica) etcdConfig() (*embed.Config, error) {
	cfg := r.cfg
	ec := embed.NewConfig()
	ec.Name = cfg.ID
	ec.Dir = filepath.Join(cfg.DataDir, "store")
	parse := func(s string) (url.URL, error) {
		u, err := url.Parse(s)
		if err != nil {
			return url.URL{}, fmt.Errorf("%w: url %q: %v", ErrInvalid, s, err)
		}
		return *u, nil
	}
	lp, err := parse(cfg.TLS.scheme() + cfg.PeerListen)
	if err != nil {
		return nil, err
	}
	lc, err := parse(cfg.TLS.scheme() + cfg.ClientListen)
	if err != nil {
		return nil, err
	}
	ap, err := parse(r.peerURL)
	if err != nil {
		return nil, err
	}
	ac, err := parse(r.clientURL)
	if err != nil {
		return nil, err
	}
	ec.ListenPeerUrls, ec.ListenClientUrls = []url.URL{lp}, []url.URL{lc}
	ec.AdvertisePeerUrls, ec.AdvertiseClientUrls = []url.URL{ap}, []url.URL{ac}
	if cfg.TLS.Enabled() {
		// Mutual TLS on both ports: a peer or a client must present a
		// certificate of the cluster's CA.
		info := transport.TLSInfo{CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile,
			TrustedCAFile: cfg.TLS.CAFile, ClientCertAuth: true}
		ec.ClientTLSInfo, ec.PeerTLSInfo = info, info
	}
	ec.InitialCluster = cfg.InitialCluster
	if ec.InitialCluster == "" {
		ec.InitialCluster = cfg.ID + "=" + r.peerURL
	}
	ec.InitialClusterToken = cfg.Cluster
	ec.ClusterState = embed.ClusterStateFlagNew
	ec.TickMs, ec.ElectionMs = 100, 1000
	if cfg.TickMs > 0 {
		ec.TickMs = cfg.TickMs
	}
	if cfg.ElectionMs > 0 {
		ec.ElectionMs = cfg.ElectionMs
	}
	// Migration batches put and delete many rows in one transaction.
	ec.MaxTxnOps = 16384
	ec.MaxRequestBytes = 16 << 20
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	ec.EnableGRPCGateway = false
	ec.Metrics = "basic"
	level := zapcore.ErrorLevel
	if cfg.EtcdLogLevel != nil {
		level = *cfg.EtcdLogLevel
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newZapLogger(r.log, level, &r.muted))
	return ec, nil
}

// bootstrap waits for the member to join, then opens the store: it
// initialises a fresh cluster's schema at this release's, refuses a schema
// newer than the release knows, and registers the replica.
func (r *Replica) bootstrap() {
	select {
	case <-r.etcd.Server.ReadyNotify():
	case err := <-r.etcd.Err():
		r.fail(fmt.Errorf("store member: %w", err))
		return
	case <-r.ctx.Done():
		return
	}
	ctls, err := r.cfg.TLS.storeClientConfig()
	if err != nil {
		r.fail(fmt.Errorf("connect to store member: %w", err))
		return
	}
	cli, err := clientv3.New(clientv3.Config{
		TLS:                ctls,
		Endpoints:          []string{r.localClientURL},
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallSendMsgSize: 16 << 20,
		MaxCallRecvMsgSize: 64 << 20,
	})
	if err != nil {
		r.fail(fmt.Errorf("connect to store member: %w", err))
		return
	}
	r.cli.Store(cli)
	var st *Store
	err = r.retry(func(ctx context.Context) error {
		if _, err := InitSchema(ctx, cli, r.known, r.cfg.Release); err != nil {
			return err
		}
		s, err := OpenStore(ctx, cli, StoreOptions{Release: r.cfg.Release, KnownSchema: r.known, Logger: r.log})
		if err != nil {
			return err
		}
		st = s
		return r.register(ctx, st)
	})
	if err != nil {
		r.fail(err)
		return
	}
	r.store.Store(st)
	h := r.ociHandler(st)
	r.oci.Store(&h)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		st.WatchSchema(r.ctx)
	}()
	close(r.ready)
	r.log.Info("replica ready", "release", r.cfg.Release, "schema", st.Schema(), "member", r.etcd.Server.MemberID().String())
}

// retry runs fn until it succeeds, fails for a reason retrying cannot fix,
// or the replica closes.
func (r *Replica) retry(fn func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
		err := fn(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrSchemaTooNew) || errors.Is(err, ErrUnknownRelease) || r.ctx.Err() != nil {
			return err
		}
		if attempt%10 == 0 {
			r.log.Warn("store not answering yet", "attempt", attempt, "err", err)
		}
		select {
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// register writes the replica's row in the replicas table.
func (r *Replica) register(ctx context.Context, st *Store) error {
	row := replicaRow{ID: r.cfg.ID, Release: r.cfg.Release, HTTPURL: r.httpURL, ClientURL: r.clientURL,
		PeerURL: r.peerURL, StartedAt: time.Now().UTC()}
	return st.update(ctx, func(ctx context.Context, t *txn) error {
		return t.put(TableReplicas, replicaKey(row.ID), row)
	})
}

func (r *Replica) fail(err error) {
	r.failOnce.Do(func() {
		r.failErr = fmt.Errorf("replica %s: %w", r.cfg.ID, err)
		r.log.Error("replica failed", "err", err)
		close(r.failed)
	})
}

// Ready is closed once the replica serves the store.
func (r *Replica) Ready() <-chan struct{} { return r.ready }

// Failed is closed when the replica failed; Err says why.
func (r *Replica) Failed() <-chan struct{} { return r.failed }

// Err is the replica's failure, or nil.
func (r *Replica) Err() error {
	select {
	case <-r.failed:
		return r.failErr
	default:
		return nil
	}
}

// WaitReady waits until the replica serves the store, fails, or ctx ends.
func (r *Replica) WaitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	case <-r.failed:
		return r.failErr
	case <-ctx.Done():
		return fmt.Errorf("wait for replica %s: %w", r.cfg.ID, ctx.Err())
	}
}

// Store is the replica's store, nil until Ready.
func (r *Replica) Store() *Store { return r.store.Load() }

// ID is the replica's identity.
func (r *Replica) ID() string { return r.cfg.ID }

// URL is the base URL of the replica's HTTP API.
func (r *Replica) URL() string { return r.httpURL }

// ClientURL is the advertised etcd client URL.
func (r *Replica) ClientURL() string { return r.clientURL }

// PeerURL is the advertised etcd peer URL.
func (r *Replica) PeerURL() string { return r.peerURL }

// shutdownGrace is how long running requests get to finish when a replica
// stops. Every handler's store calls are bounded by requestTimeout.
const shutdownGrace = 2 * time.Second

// Close stops the replica, once: the HTTP server first (so no request
// starts on a closing store), then the etcd member, then, once the
// replica's goroutines have returned, its store client. It returns what
// went wrong closing them, the same on every call.
func (r *Replica) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		r.cancel()
		// Requests get a moment to finish, then connections are closed.
		// Shutdown alone waits up to 5s on a connection that a client
		// opened but has not used yet (HTTP transports open spares), which
		// made every few replica stops take 6s instead of 1, and with TLS
		// most of them take the whole grace: those are closed at once.
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := r.fresh.shutdown(ctx, r.httpSrv); err != nil {
			r.log.Warn("requests still running at stop: closing their connections", "grace", shutdownGrace, "err", err)
			if err := r.httpSrv.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close HTTP server: %w", err))
			}
		}
		r.muted.Store(true)
		r.etcd.Close()
		r.wg.Wait()
		if cli := r.cli.Load(); cli != nil {
			if err := cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("close store client: %w", err))
			}
		}
		r.closeErr = errors.Join(errs...)
		r.log.Info("replica stopped")
	})
	return r.closeErr
}
