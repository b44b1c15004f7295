package cli

import (
	"context"
	"io"
	"strconv"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/registry"
	"github.com/ladder-dev/ladder/upgrade"
)

// registryApp is what the upgrade engine knows of the reference registry:
// how to observe it, migrate it and back it up.
type registryApp struct {
	cluster  string
	password string
}

var _ upgrade.App = registryApp{}

func (a registryApp) Status(ctx context.Context, replicas []driver.Replica) (driver.Status, error) {
	return registry.Probe(ctx, a.cluster, replicas, probeClient), nil
}

func (a registryApp) MigrateJob(toSchema int) driver.Job {
	return driver.Job{Name: "migrate", Args: []string{"registry", "migrate", "--to-schema", strconv.Itoa(toSchema)}}
}

func (a registryApp) Backup(ctx context.Context, via driver.Replica, w io.Writer) error {
	return registry.FetchBackup(ctx, backupClient, via.URL, a.password, w)
}
