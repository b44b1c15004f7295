package cli

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/service"
	"github.com/ladder-dev/ladder/service/etcd"
)

func newReleasesCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "releases",
		Short: "Build and cache the releases of services ladder does not ship",
		Long: `The reference registry's releases are all in the ladder binary. etcd's are
not: ladder builds them from the Go module proxy and keeps them under
$LADDER_HOME/cache/etcd/VERSION (default ~/.ladder).`,
	}
	c.AddCommand(newReleasesFetchCmd(e))
	return c
}

// fetchResult is one release of `releases fetch -o json`.
type fetchResult struct {
	Service string `json:"service"`
	Version string `json:"version"`
	Etcd    string `json:"etcd"`
	Etcdctl string `json:"etcdctl,omitempty"`
	// EtcdctlMissing says why etcdctl could not be built (ladder needs
	// only the server).
	EtcdctlMissing string `json:"etcdctl_missing,omitempty"`
}

func newReleasesFetchCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch SERVICE VERSION...",
		Short: "Build releases from source and cache them (etcd)",
		Long: `Fetch builds each etcd release from the Go module proxy (go.etcd.io/etcd
server and etcdctl, static, with the Go toolchain on PATH) into
$LADDER_HOME/cache/etcd/VERSION. A build takes minutes on a small machine;
a cached release returns at once, and two fetches of one release build it
once. ladder cluster create --service etcd and ladder upgrade run the
cached builds; see the built-in list with: ladder catalog --service etcd.`,
		Example: `  ladder releases fetch etcd 3.5.35 3.6.16 3.7.3
  ladder releases fetch etcd 3.7.3 -o json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usageErr("want SERVICE and at least one VERSION, such as: ladder releases fetch etcd 3.5.35")
			}
			if args[0] != service.EtcdName {
				return usageErr("releases fetch builds etcd releases only (the registry's are in the ladder binary), not %q", args[0])
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			dir, err := cacheDir()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			var out []fetchResult
			for _, v := range args[1:] {
				b, err := etcd.Fetch(e.ctx, dir, v, log)
				if err != nil {
					return fmt.Errorf("fetch etcd %s: %w", v, err)
				}
				out = append(out, fetchResult{Service: service.EtcdName, Version: b.Version, Etcd: b.Etcd, Etcdctl: b.Etcdctl, EtcdctlMissing: b.EtcdctlMissing})
				if !e.json() {
					fmt.Fprintf(e.stdout, "etcd %s  %s\n", b.Version, b.Etcd)
				}
			}
			if e.json() {
				return writeJSON(e.stdout, out)
			}
			return nil
		},
	}
}
