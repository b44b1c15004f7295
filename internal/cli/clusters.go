package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/driver/swarm"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// clusterFlag is --cluster, taken by every command that acts on a cluster.
type clusterFlag struct{ name string }

func (f *clusterFlag) register(c *cobra.Command) {
	c.Flags().StringVar(&f.name, "cluster", "default", "cluster name")
	_ = c.RegisterFlagCompletionFunc("cluster", completeClusters)
}

// openCluster binds the driver the cluster was created with.
func openCluster(name string) (driver.Driver, home.Record, error) {
	if err := home.ValidateName(name); err != nil {
		return nil, home.Record{}, usageErr("%w", err)
	}
	root, err := home.Dir()
	if err != nil {
		return nil, home.Record{}, err
	}
	rec, err := home.ReadRecord(root, name)
	if errors.Is(err, home.ErrNoCluster) {
		return nil, rec, withHint(ExitUsage, err, "see the clusters there are with: ladder cluster list")
	}
	if err != nil {
		return nil, rec, err
	}
	svc, err := serviceOf(rec)
	if err != nil {
		return nil, rec, err
	}
	switch rec.Driver {
	case local.Name:
		d, err := local.Open(name, svc, local.Options{Home: root, Dir: rec.Dir})
		return d, rec, err
	case docker.Name:
		d, err := docker.Open(name, svc, docker.Options{Home: root})
		return d, rec, err
	case swarm.Name:
		d, err := swarm.Open(context.Background(), name, svc, swarm.Options{Home: root})
		return d, rec, err
	}
	return nil, rec, fmt.Errorf("open cluster %s: unknown driver %q in its record", name, rec.Driver)
}

// serviceOf returns the service a cluster record names.
func serviceOf(rec home.Record) (driver.Service, error) {
	switch rec.Service {
	case service.RegistryName:
		return service.Registry{BlobStore: rec.BlobStore}, nil
	case service.EtcdName:
		return newService(rec.Service)
	}
	return nil, fmt.Errorf("open cluster %s: unknown service %q in its record (recreate the cluster with this ladder)", rec.Name, rec.Service)
}

// appOf is what the upgrade engine knows of the cluster's service, d.
func (e *env) appOf(d driver.Driver, rec home.Record) (upgrade.App, error) {
	if rec.Service == service.EtcdName {
		if _, err := clusterClientTLS(rec.Name); err != nil {
			return nil, err
		}
		return etcdApp(d), nil
	}
	pw, err := rec.Secret(service.AdminPasswordSecret)
	if err != nil {
		return nil, err
	}
	tc, err := e.clusterTLS(rec)
	if err != nil {
		return nil, err
	}
	return service.RegistryApp{Cluster: rec.Name, Password: pw, Replicas: d.Replicas, TLS: tc}, nil
}

// observer reads cluster d's status: the App its record names, without
// the secrets the engine's App needs for backups, trusting the cluster as
// this command does.
func (e *env) observer(d driver.Driver) (upgrade.App, error) {
	root, err := home.Dir()
	if err != nil {
		return nil, err
	}
	rec, err := home.ReadRecord(root, d.Cluster())
	if err != nil {
		return nil, err
	}
	if rec.Service == service.EtcdName {
		return etcdApp(d), nil
	}
	tc, err := e.clusterTLS(rec)
	if err != nil {
		return nil, err
	}
	return service.RegistryApp{Cluster: d.Cluster(), TLS: tc}, nil
}

// statsClient reads row counts, which may take a few seconds.
func statsClient(tc *tls.Config) *http.Client { return pki.HTTPClient(tc, 10*time.Second) }

// clusterStatus observes the cluster through its replicas.
func (e *env) clusterStatus(ctx context.Context, d driver.Driver) (upgrade.Status, error) {
	app, err := e.observer(d)
	if err != nil {
		return upgrade.Status{}, err
	}
	defer closeApp(app)
	reps, err := d.Replicas(ctx)
	if err != nil {
		return upgrade.Status{}, err
	}
	st, err := app.Status(ctx, reps)
	if err == nil {
		e.hintUnverified(st)
	}
	return st, err
}

// hintUnverified says what to do when no replica's certificate could be
// verified: the CA ladder has is not the one that signed them.
func (e *env) hintUnverified(st upgrade.Status) {
	if len(st.Replicas) == 0 {
		return
	}
	for _, r := range st.Replicas {
		if !strings.Contains(r.Error, "failed to verify certificate") {
			return
		}
	}
	fmt.Fprintf(e.stderr, "ladder: no replica's certificate is signed by a CA ladder trusts for cluster %s: give the CA that signed them with --ca FILE, or skip verification with --insecure-tls\n", st.Cluster)
}

func completeClusters(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	root, err := home.Dir()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return home.Clusters(root), cobra.ShellCompDirectiveNoFileComp
}

// completeReplicas completes a replica id of the cluster cf names.
func completeReplicas(cf *clusterFlag) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		d, _, err := openCluster(cf.name)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		reps, err := d.Replicas(c.Context())
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var ids []string
		for _, r := range reps {
			ids = append(ids, r.ID)
		}
		return ids, cobra.ShellCompDirectiveNoFileComp
	}
}
