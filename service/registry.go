package service

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/policy"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/upgrade"
)

// RegistryName is the reference registry's service name.
const RegistryName = "registry"

// AdminPasswordSecret is the name of the registry's admin password among a
// cluster's secrets.
const AdminPasswordSecret = "admin-password"

// The registry's ports, by name: the HTTP API (OCI, status, UI), and the
// store member's peer and client ports.
const (
	PortHTTP   = "http"
	PortPeer   = "peer"
	PortClient = "client"
)

// BlobCredentialsSecret is the name of the blob store's keys among a
// cluster's secrets.
const BlobCredentialsSecret = "blob-credentials"

// Registry is the reference registry as drivers run it: every release is
// the ladder binary running `registry serve --release VERSION`.
type Registry struct {
	// Binary is the ladder executable replicas run; default: this one.
	Binary string
	// BlobStore, if set, keeps blobs in an S3 bucket (registry.ParseS3URL)
	// instead of the shared folder; its keys are the cluster's
	// BlobCredentialsSecret.
	BlobStore string
}

var _ driver.Service = Registry{}

// Name implements driver.Service.
func (Registry) Name() string { return RegistryName }

// Catalog returns the registry's releases.
func (Registry) Catalog() *catalog.Catalog { return catalog.Builtin() }

// Artifact implements driver.Service: a release the built-in catalog
// lists, run by the ladder binary.
func (s Registry) Artifact(version string) (driver.Artifact, error) {
	v, err := policy.Parse(version)
	if err != nil {
		return driver.Artifact{}, err
	}
	if !catalog.Builtin().Contains(v) {
		return driver.Artifact{}, fmt.Errorf("%w: release %s is not in the built-in catalog (see: ladder catalog)", driver.ErrNoArtifact, v)
	}
	bin := s.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return driver.Artifact{}, fmt.Errorf("%w: find the ladder binary: %v", driver.ErrNoArtifact, err)
		}
	}
	return driver.Artifact{Version: v.String(), Binary: bin, Program: "ladder"}, nil
}

// Ports implements driver.Service.
func (Registry) Ports() []string { return []string{PortHTTP, PortPeer, PortClient} }

// HealthPath implements driver.Service.
func (Registry) HealthPath() string { return "/health" }

// StoreLogLevelEnv names the variable that sets the store's log level
// (debug, info or warn) in the replicas a ladder command starts.
const StoreLogLevelEnv = "LADDER_STORE_LOG_LEVEL"

// Command implements driver.Service: `registry serve` with the replica's
// identity, folders, addresses and the store's initial membership.
func (s Registry) Command(a driver.Artifact, p driver.Placement) []string {
	var peers []string
	scheme := Registry{}.APIScheme(p.Secrets) + "://"
	for _, m := range p.Members {
		peers = append(peers, m.ID+"="+scheme+m.Addr[PortPeer])
	}
	args := []string{"registry", "serve",
		"--id", p.ID,
		"--cluster", p.Cluster,
		"--release", a.Version,
		"--data", p.DataDir,
		"--blobs", filepath.Join(p.SharedDir, "blobs"),
		"--listen", p.Listen[PortHTTP],
		"--peer-listen", p.Listen[PortPeer],
		"--client-listen", p.Listen[PortClient],
	}
	if host := hostOf(p.Self().Addr[PortPeer]); host != "" && host != hostOf(p.Listen[PortPeer]) {
		args = append(args, "--advertise-host", host)
	}
	args = append(args, "--initial-cluster", strings.Join(peers, ","))
	var apis []string
	for _, m := range p.Members {
		apis = append(apis, m.ID+"="+m.Addr[PortHTTP])
	}
	args = append(args, "--api-members", strings.Join(apis, ","))
	if f, ok := p.Secrets[AdminPasswordSecret]; ok {
		args = append(args, "--admin-password-file", f)
	}
	if s.BlobStore != "" {
		args = append(args, "--blob-store", s.BlobStore)
		if f, ok := p.Secrets[BlobCredentialsSecret]; ok {
			args = append(args, "--blob-credentials", f)
		}
	}
	// The store's own log, which replicas keep to errors, says why a
	// member does not join; LADDER_STORE_LOG_LEVEL on the command that
	// starts replicas raises it.
	switch l := os.Getenv(StoreLogLevelEnv); l {
	case "debug", "info", "warn":
		args = append(args, "--store-log-level", l)
	}
	return append(args, tlsArgs(p)...)
}

// JobCommand implements driver.Service: the job's arguments, the release
// and the store's client endpoints.
func (Registry) JobCommand(a driver.Artifact, job driver.Job, members []driver.Member) []string {
	var eps []string
	scheme := Registry{}.APIScheme(job.Secrets) + "://"
	for _, m := range members {
		eps = append(eps, scheme+m.Addr[PortClient])
	}
	args := append([]string{}, job.Args...)
	args = append(args, "--release", a.Version, "--endpoints", strings.Join(eps, ","))
	return append(args, jobTLSArgs(job.Secrets)...)
}

// PortConflict implements driver.Service.
func (Registry) PortConflict(code int, _ string) bool { return code == registry.ExitAddrInUse }

func hostOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr
	}
	return strings.Trim(addr[:i], "[]")
}

// RegistryApp is what the upgrade engine knows of a registry cluster: how
// to observe it, migrate it and back it up.
type RegistryApp struct {
	Cluster string
	// Password is the admin password, for backups and the upgrade record.
	Password string
	// Replicas lists the replicas (Driver.Replicas), to reach the upgrade
	// record through any of them; nil: the engine keeps no record in the
	// cluster.
	Replicas func(context.Context) ([]driver.Replica, error)
	// TLS is how ladder trusts the cluster and proves itself to it
	// (pki.ClientConfig); nil for a cluster without TLS.
	TLS *tls.Config
}

var _ upgrade.App = RegistryApp{}

// Status implements upgrade.App with registry.Probe.
func (a RegistryApp) Status(ctx context.Context, replicas []driver.Replica) (upgrade.Status, error) {
	members := make([]registry.Member, len(replicas))
	for i, r := range replicas {
		members[i] = registry.Member{ID: r.ID, Release: r.Version, URL: r.URL}
	}
	rep := registry.Probe(ctx, a.Cluster, members, a.httpClient(probeTimeout))
	st := upgrade.Status{Cluster: rep.Cluster, Version: rep.Version, SchemaVersion: rep.SchemaVersion,
		Replicas: make([]upgrade.ReplicaStatus, len(rep.Replicas))}
	if rep.Version == registry.VersionMixed {
		st.Version = upgrade.VersionMixed
	}
	for i, r := range rep.Replicas {
		st.Replicas[i] = upgrade.ReplicaStatus{ID: r.ID, Version: r.Version, Healthy: r.Healthy, UI: r.UI, URL: r.URL,
			Leader: r.Leader, Voter: r.Voter, MemberID: r.MemberID, AppliedIndex: r.AppliedIndex, PID: replicas[i].PID, Error: r.Error,
			Unresponsive: r.Unresponsive, Silent: r.Silent, Joining: r.Joining}
	}
	st.Store.Settled = rep.Store.Settled
	for _, t := range rep.Store.Tables {
		st.Store.Tables = append(st.Store.Tables, upgrade.TableStatus{DB: t.DB, Name: t.Name, Revision: t.Revision,
			Applied: t.Applied, Ready: t.Ready, Lagging: t.Lagging})
	}
	return st, nil
}

// MigrateJob implements upgrade.App: `registry migrate --to-schema N`.
func (RegistryApp) MigrateJob(toSchema int) driver.Job {
	return driver.Job{Name: "migrate", Args: []string{"registry", "migrate", "--to-schema", strconv.Itoa(toSchema)}}
}

// Backup implements upgrade.App: the store's snapshot from the replica's
// admin API.
func (a RegistryApp) Backup(ctx context.Context, via driver.Replica, w io.Writer) error {
	return registry.FetchBackup(ctx, a.httpClient(backupTimeout), via.URL, a.Password, w)
}
