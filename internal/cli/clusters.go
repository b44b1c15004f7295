package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
)

// clusterFlag is --cluster, taken by every command that acts on a cluster.
type clusterFlag struct{ name string }

func (f *clusterFlag) register(c *cobra.Command) {
	c.Flags().StringVar(&f.name, "cluster", "default", "cluster name")
	_ = c.RegisterFlagCompletionFunc("cluster", completeClusters)
}

// openCluster binds the driver the cluster was created with.
func openCluster(name string) (driver.Driver, driver.Record, error) {
	if err := driver.ValidateName(name); err != nil {
		return nil, driver.Record{}, usageErr("%w", err)
	}
	home, err := driver.Home()
	if err != nil {
		return nil, driver.Record{}, err
	}
	rec, err := driver.ReadRecord(home, name)
	if errors.Is(err, driver.ErrNoCluster) {
		return nil, rec, withCode(ExitUsage, err)
	}
	if err != nil {
		return nil, rec, err
	}
	switch rec.Driver {
	case local.Name:
		d, err := local.Open(name, local.Options{Home: home})
		return d, rec, err
	case docker.Name:
		d, err := docker.Open(name, docker.Options{Home: home})
		return d, rec, err
	}
	return nil, rec, fmt.Errorf("open cluster %s: unknown driver %q in its record", name, rec.Driver)
}

// adminPassword reads the cluster's admin password.
func adminPassword(rec driver.Record) (string, error) {
	data, err := os.ReadFile(rec.AdminPasswordFile)
	if err != nil {
		return "", fmt.Errorf("read admin password: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// probeClient is the HTTP client for status probes: short timeouts, so a
// frozen replica costs a second, not a minute.
var probeClient = &http.Client{Timeout: 2 * time.Second}

// backupClient fetches store snapshots, which may take a while.
var backupClient = &http.Client{Timeout: 10 * time.Minute}

// clusterStatus observes the cluster through its replicas.
func clusterStatus(ctx context.Context, d driver.Driver) (driver.Status, error) {
	reps, err := d.Replicas(ctx)
	if err != nil {
		return driver.Status{}, err
	}
	return registryApp{cluster: d.Cluster()}.Status(ctx, reps)
}

func completeClusters(c *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	home, err := driver.Home()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	entries, _ := os.ReadDir(driver.ClusterDir(home, ""))
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
