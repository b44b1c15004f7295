package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/pki"
	"github.com/ladder-dev/ladder/journal"
	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/upgrade"
)

func newRotateCertsCmd(e *env) *cobra.Command {
	var (
		cf clusterFlag
		uf upgradeFlags
	)
	c := &cobra.Command{
		Use:   "rotate-certs",
		Short: "Renew every replica's certificate and ladder's, with a rolling restart (no downtime)",
		Long: `Rotate-certs issues new certificates, from the cluster's CA, to every
replica and to ladder, then restarts the replicas one at a time (followers
first, the leader last) so that each serves its new certificate: after each
restart it waits until the replica is healthy, its UI answers and the store
has settled, exactly as 'ladder restart --rolling' does. The CA stays the
same, so clients that trust it (ladder, docker with 'ladder cluster trust
--docker', curl --cacert) keep working throughout, and the other replicas
are never without quorum.

It takes the upgrade lock, so it never runs during an upgrade (exit 4).
Certificates last ` + fmt.Sprint(pki.LeafValidity/(24*time.Hour)) + ` days; the CA ` + fmt.Sprint(pki.CAValidity/(24*time.Hour)) + `.`,
		Example: `  ladder cluster rotate-certs --cluster prod
  ladder cluster rotate-certs --cluster prod -o json`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			return rotateCerts(e, cf.name, uf)
		},
	}
	cf.register(c)
	uf.register(c)
	return c
}

// rotateResult is rotate-certs' JSON.
type rotateResult struct {
	Cluster  string    `json:"cluster"`
	Replicas []string  `json:"replicas"`
	NotAfter time.Time `json:"not_after"`
	Seconds  float64   `json:"seconds"`
}

func rotateCerts(e *env, cluster string, uf upgradeFlags) error {
	opts, d, rec, err := e.openRestart(cluster, uf)
	if err != nil {
		return err
	}
	if _, ok := rec.Secrets[service.CASecret]; !ok {
		return usageErr("cluster %s has no CA of ladder's to renew certificates from (a %s cluster; only registry clusters have one)", cluster, rec.Service)
	}
	app, err := e.appOf(d, rec)
	if err != nil {
		return err
	}
	dir := clusterFolder(rec)
	ca, err := pki.LoadCA(rec.Secrets[service.CASecret], filepath.Join(dir, CAKeyFile))
	if err != nil {
		return fmt.Errorf("rotate certificates of %s: %w (the CA's key is kept where the cluster was created: run this there)", cluster, err)
	}
	reps, err := d.Replicas(e.ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	issued := map[string][]byte{}
	ids := make([]string, len(reps))
	for i, r := range reps {
		ids[i] = r.ID
	}
	if err := issueReplicas(ca, cluster, ids, issued); err != nil {
		return err
	}
	client, err := ca.Issue("ladder "+cluster+" client", nil)
	if err != nil {
		return err
	}
	issued[service.ClientCertSecret], issued[service.ClientKeySecret] = client.CertPEM, client.KeyPEM
	for name, data := range issued {
		path, ok := rec.Secrets[name]
		if !ok {
			return fmt.Errorf("rotate certificates of %s: its record keeps no %s", cluster, name)
		}
		if err := writeSecret(path, data); err != nil {
			return fmt.Errorf("rotate certificates of %s: %w", cluster, err)
		}
	}
	fmt.Fprintf(e.stderr, "issued new certificates to %d replicas and ladder; restarting the replicas one at a time\n", len(ids))
	j, err := openJournal(cluster)
	if err != nil {
		return err
	}
	rep := newReporter(e, e.json(), 0)
	eng := &upgrade.Engine{Driver: recreating{d}, App: app, Journal: j,
		Log: rep.logger(logLevels["off"]), OnEvent: rep.event, Options: opts}
	err = eng.RollingRestart(e.ctx)
	rep.close()
	var locked *journal.LockedError
	again := fmt.Sprintf("the new certificates are in place; run ladder cluster rotate-certs --cluster %s again to restart the replicas onto them", cluster)
	switch {
	case errors.As(err, &locked):
		return withHint(ExitLocked, err, again)
	case interrupted(err):
		return withHint(ExitInterrupted, fmt.Errorf("rotate certificates of %s: %w", cluster, err), again)
	case err != nil:
		return withHint(ExitFailed, fmt.Errorf("rotate certificates of %s: %w", cluster, err), again)
	}
	res := rotateResult{Cluster: cluster, Replicas: ids, NotAfter: time.Now().Add(pki.LeafValidity).UTC().Truncate(time.Second),
		Seconds: time.Since(start).Seconds()}
	if e.json() {
		return writeJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "certificates of %s rotated: %d replicas restarted one at a time in %.1fs; valid until %s\n",
		cluster, len(ids), res.Seconds, res.NotAfter.Format("2006-01-02"))
	return nil
}

// writeSecret replaces a secret's file at once (0600), so that a replica
// starting meanwhile reads the old file or the new, never half of one.
func writeSecret(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return os.Rename(tmp.Name(), path)
}

// recreating is a driver whose restart starts the replica afresh from its
// release (Replace with the same release), so that it reads the cluster's
// secrets again: a docker restart keeps the container and the files copied
// into it.
type recreating struct{ driver.Driver }

// Restart implements driver.Driver.
func (r recreating) Restart(ctx context.Context, id string) error {
	reps, err := r.Replicas(ctx)
	if err != nil {
		return err
	}
	for _, rep := range reps {
		if rep.ID == id {
			return r.Replace(ctx, id, rep.Version)
		}
	}
	return fmt.Errorf("%w: %s", driver.ErrNoReplica, id)
}

// LogTail implements driver.LogTailer when the driver does.
func (r recreating) LogTail(ctx context.Context, id string, lines int) string {
	if lt, ok := r.Driver.(driver.LogTailer); ok {
		return lt.LogTail(ctx, id, lines)
	}
	return ""
}
