package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/plan"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

// serviceNames are the services ladder upgrades.
var serviceNames = []string{service.RegistryName, service.EtcdName}

// profile is what the version commands know of a service: its releases,
// its extra rules, and how to say them.
type profile struct {
	name    string
	catalog func() *catalog.Catalog
	rules   []plan.MinPatch
	// explain says the service's rules, one line each.
	explain []string
}

func profileOf(name string) (profile, error) {
	switch name {
	case "", service.RegistryName:
		return profile{name: service.RegistryName, catalog: catalog.Builtin}, nil
	case service.EtcdName:
		p := profile{name: service.EtcdName, catalog: service.EtcdCatalog, rules: service.EtcdRules(), explain: []string{
			"patch upgrades freely; one minor at a time (3.5 -> 3.6 -> 3.7)",
			"each stop is the latest patch of its minor",
		}}
		for _, r := range p.rules {
			p.explain = append(p.explain, fmt.Sprintf("leaving %d.%d needs %s or later (%s)", r.Min.Major(), r.Min.Minor(), r.Min, r.Source))
		}
		p.explain = append(p.explain,
			"a hop is finished when the cluster version reaches its minor (etcd moves it once every member runs it)",
			"before 3.7: every member must have snapshotted past the raft entries 3.5 wrote, or 3.7 panics on start; ladder forces the snapshots",
			"members roll one at a time, the leader last; a snapshot backup is taken before each minor hop")
		return p, nil
	}
	return profile{}, usageErr("unknown --service %q: use %s", name, joinOr(serviceNames))
}

func joinOr(names []string) string {
	if len(names) == 1 {
		return names[0]
	}
	out := ""
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1:
			out += " or "
		default:
			out += ", "
		}
		out += n
	}
	return out
}

func completeServices(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return slices.Clone(serviceNames), cobra.ShellCompDirectiveNoFileComp
}

// cacheDir is where ladder keeps release builds: $LADDER_HOME/cache.
func cacheDir() (string, error) {
	root, err := home.Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "cache"), nil
}

// newService returns the service of that name, as drivers run it.
func newService(name string) (driver.Service, error) {
	switch name {
	case "", service.RegistryName:
		return service.Registry{}, nil
	case service.EtcdName:
		dir, err := cacheDir()
		if err != nil {
			return nil, err
		}
		return service.Etcd{CacheDir: dir}, nil
	}
	return nil, usageErr("unknown --service %q: use %s", name, joinOr(serviceNames))
}

// etcdApp is the engine's view of an etcd cluster reached through d.
func etcdApp(d driver.Driver) *service.EtcdApp {
	app := &service.EtcdApp{Cluster: d.Cluster()}
	// An adopted cluster whose members serve TLS; a file that cannot be
	// read leaves the probes to say so, member by member.
	if conf, err := clusterClientTLS(d.Cluster()); err == nil {
		app.TLS = conf
	}
	switch dd := d.(type) {
	case *local.Driver:
		app.DataDir = func(id string) (string, bool) { return dd.DataDir(id), true }
	case *docker.Driver:
		// The volume's folder, when the engine runs here and it is readable.
		app.DataDir = func(id string) (string, bool) { return dd.DataDir(context.Background(), id) }
	}
	return app
}

// closeApp releases what an App holds open.
func closeApp(app upgrade.App) {
	if c, ok := app.(interface{ Close() error }); ok {
		_ = c.Close()
	}
}

// clusterProfile is the profile of the service cluster d runs.
func clusterProfile(d driver.Driver) profile {
	if root, err := home.Dir(); err == nil {
		if rec, err := home.ReadRecord(root, d.Cluster()); err == nil {
			if p, err := profileOf(rec.Service); err == nil {
				return p
			}
		}
	}
	p, _ := profileOf(service.RegistryName)
	return p
}
