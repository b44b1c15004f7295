package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/driver/local"
	"github.com/ladder-dev/ladder/driver/swarm"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/plan"
)

func newDemoCmd(e *env) *cobra.Command {
	var (
		cf       clusterFlag
		from     string
		to       string
		replicas int
		repos    int
		keep     bool
		noFault  bool
		stall    time.Duration
		drv      string
		blobs    blobFlags
	)
	c := &cobra.Command{
		Use:   "demo",
		Short: "Upgrade a local 3-replica registry cluster across several hops, with a fault on the way",
		Long: `Demo shows ladder end to end on this machine, with nothing installed:

 1. creates a 3-replica reference registry cluster at --from (2.1.4),
    seeds it with metadata and pushes images to it;
 2. shows the plan to --to (the newest release: 4 hops, one of them major);
 3. runs the upgrade with live progress while a client keeps pushing and
    pulling images through the replicas;
 4. freezes one replica (SIGSTOP) in the middle of the upgrade, so you see
    ladder notice the stuck replica within --stall-after, name it, and
    repair it the way the original system's manual recovery did;
 5. checks that everything written before and during the upgrade is still
    there on every replica, prints a summary, and removes the cluster.

It takes a minute or two. --keep leaves the cluster running (look at it
with: ladder status --cluster demo, or open a replica's URL in a browser);
--no-fault skips the freeze.`,
		Example: `  ladder demo
  ladder demo --keep
  ladder demo --no-fault -o json
  ladder demo --driver docker      # the same on a Docker Engine
  ladder demo --driver swarm       # the same as Swarm services (docker swarm init first)`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			if cf.name == "default" && !c.Flags().Changed("cluster") {
				cf.name = "demo"
			}
			cat := catalog.Builtin()
			fromV, err := parseVersion("--from", from)
			if err != nil {
				return err
			}
			if to == "" {
				latest, _ := cat.Latest()
				to = latest.String()
			}
			toV, err := parseVersion("--to", to)
			if err != nil {
				return err
			}
			p, err := plan.Make(cat, fromV, toV, plan.Options{})
			if err != nil {
				return refusedPlan(err)
			}
			if len(p.Hops) == 0 {
				return usageErr("--from and --to are the same release: nothing to demonstrate")
			}
			if drv != local.Name && drv != docker.Name && drv != swarm.Name {
				return usageErr("unknown --driver %q: use %s, %s or %s", drv, local.Name, docker.Name, swarm.Name)
			}
			d := &demo{env: e, cluster: cf.name, plan: p, replicas: replicas, repos: repos,
				fault: !noFault, stallAfter: stall, json: e.json(), driverName: drv, blobs: blobs}
			return d.run(keep)
		},
	}
	cf.register(c)
	c.Flags().Lookup("cluster").DefValue = "demo"
	c.Flags().StringVar(&from, "from", "2.1.4", "release the cluster starts at")
	c.Flags().StringVar(&to, "to", "", "release to upgrade to (default: the newest release)")
	c.Flags().IntVar(&replicas, "replicas", 3, "number of replicas")
	c.Flags().IntVar(&repos, "repositories", 200, "repositories of metadata to seed")
	c.Flags().BoolVar(&keep, "keep", false, "leave the cluster running at the end")
	c.Flags().BoolVar(&noFault, "no-fault", false, "do not freeze a replica during the upgrade")
	c.Flags().DurationVar(&stall, "stall-after", 5*time.Second, "no progress for this long is a stall")
	c.Flags().StringVar(&drv, "driver", local.Name, "where replicas run: local (processes), docker (containers) or swarm (services of the swarm this engine manages); images are built first")
	_ = c.RegisterFlagCompletionFunc("driver", driverFlag)
	blobs.register(c)
	_ = c.RegisterFlagCompletionFunc("from", versionFlag)
	_ = c.RegisterFlagCompletionFunc("to", versionFlag)
	return c
}

type demo struct {
	env        *env
	cluster    string
	plan       plan.Plan
	replicas   int
	repos      int
	fault      bool
	stallAfter time.Duration
	json       bool
	driverName string
	blobs      blobFlags

	drv      driver.Driver
	build    string // docker: the image build the cluster runs
	password string
	tls      *tls.Config // how the demo trusts the cluster
	urls     []string
	sum      demoSummary
}

// say prints a demo headline (to stderr with -o json, so stdout stays JSON).
func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out(), "\n== "+format+"\n", args...)
}

// out is where the demo's own lines go: stdout, or stderr with -o json.
func (d *demo) out() io.Writer {
	if d.json {
		return d.env.stderr
	}
	return d.env.stdout
}

// run runs the demo's stages: images (docker only), create, seed and
// push, the plan, the upgrade under traffic with a fault, and the check
// that nothing was lost; then the summary.
func (d *demo) run(keep bool) (err error) {
	ctx := d.env.ctx
	start := time.Now()
	d.sum = demoSummary{Cluster: d.cluster, Driver: d.driverName, From: d.plan.From.String(), To: d.plan.To.String(), Lost: []string{}, Remediations: []string{}}
	root, err := home.Dir()
	if err != nil {
		return err
	}
	if _, err := home.ReadRecord(root, d.cluster); err == nil {
		return withCode(ExitUsage, fmt.Errorf("cluster %q exists already (a demo run with --keep?): remove it with: ladder cluster destroy --cluster %s", d.cluster, d.cluster))
	}
	if d.driverName == docker.Name || d.driverName == swarm.Name {
		if err := d.buildImages(); err != nil {
			return err
		}
	}
	if err := d.create(); err != nil {
		return err
	}
	if !keep {
		_, rec, err := openCluster(d.cluster)
		if err != nil {
			return err
		}
		removeBucket, err := bucketToRemove(rec)
		if err != nil {
			return err
		}
		defer func() {
			d.say("cleaning up: destroying cluster %s (--keep leaves it running)", d.cluster)
			if derr := d.drv.Destroy(context.WithoutCancel(ctx)); derr != nil {
				err = errors.Join(err, derr)
			}
			if removeBucket != nil {
				if derr := removeBucket(context.WithoutCancel(ctx)); derr != nil {
					err = errors.Join(err, derr)
				}
			}
		}()
	}
	if err := d.seed(ctx); err != nil {
		return err
	}
	d.say("3. the plan")
	printPlan(d.out(), d.plan)
	res, err := d.upgrade(ctx)
	if err != nil {
		return err
	}
	if err := d.verify(ctx, res.client); err != nil {
		return err
	}
	if err := d.report(res, time.Since(start)); err != nil {
		return err
	}
	if len(d.sum.Lost) > 0 {
		return fmt.Errorf("data lost: %s", joinLost(d.sum.Lost))
	}
	if keep {
		d.say("cluster %s is still running: ladder status --cluster %s; open %s in a browser", d.cluster, d.cluster, d.urls[0])
	}
	return nil
}
