package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/driver/docker"
	"github.com/ladder-dev/ladder/internal/home"
	"github.com/ladder-dev/ladder/service"
)

func newImagesCmd(e *env) *cobra.Command {
	c := &cobra.Command{
		Use:   "images",
		Short: "Build the reference registry's release images for the docker driver",
		Long: `The docker driver runs each release of the reference registry from a local
image, ladder-registry:VERSION, built FROM scratch from a static ladder
binary. No image is ever pulled.`,
	}
	c.AddCommand(newImagesBuildCmd(e))
	return c
}

type imagesJSON struct {
	Binary   string         `json:"binary"`
	Build    string         `json:"build"`
	Images   []docker.Image `json:"images"`
	Duration time.Duration  `json:"duration_ns"`
}

func newImagesBuildCmd(e *env) *cobra.Command {
	var (
		versions []string
		binary   string
	)
	c := &cobra.Command{
		Use:   "build",
		Short: "Build ladder-registry:VERSION images FROM scratch",
		Long: `Build builds one image per release, ladder-registry:VERSION (build metadata
written with '_' in the tag), from a static ladder binary:

  - with --binary, that binary (it must be statically linked);
  - run from ladder's source tree, a binary built from it with
    CGO_ENABLED=0 (the go command must be on PATH);
  - otherwise this ladder executable, if it is statically linked.

Every release image is the same binary plus the release's labels,
org.opencontainers.image.version and ladder.release; the docker driver
gives each container its command line, the release included. The images
share one layer. Without --versions every release of the built-in catalog
is built.`,
		Example: `  ladder images build
  ladder images build --versions 2.1.4,2.2.4,3.0.1`,
		Args: exactArgs(),
		RunE: func(c *cobra.Command, args []string) error {
			_, err := buildImages(e, e.stdout, versions, binary, e.json())
			return err
		},
	}
	c.Flags().StringSliceVar(&versions, "versions", nil, "releases to build, comma-separated (default: every built-in release)")
	_ = c.RegisterFlagCompletionFunc("versions", versionFlag)
	c.Flags().StringVar(&binary, "binary", "", "static ladder binary to put in the images (default: built from source, or this executable)")
	return c
}

// buildImages builds the images of versions (default: every release),
// prints them to w, and returns the build's name.
func buildImages(e *env, w io.Writer, versions []string, binary string, asJSON bool) (string, error) {
	svc := service.Registry{}
	if len(versions) == 0 {
		for _, r := range svc.Catalog().Releases() {
			versions = append(versions, r.Version.String())
		}
	}
	for i, s := range versions {
		v, err := parseVersion("--versions", s)
		if err != nil {
			return "", err
		}
		if !svc.Catalog().Contains(v) {
			return "", usageErr("--versions: release %s is not in the built-in catalog (see: ladder catalog)", v)
		}
		versions[i] = v.String()
	}
	start := time.Now()
	bin, cleanup, err := imageBinary(e, binary)
	if err != nil {
		return "", err
	}
	defer cleanup()
	cli, err := docker.NewClient()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	if err := docker.Ping(e.ctx, cli); err != nil {
		return "", err
	}
	fmt.Fprintf(e.stderr, "building %d images from %s\n", len(versions), bin)
	imgs, err := docker.BuildImages(e.ctx, cli, svc, bin, versions, func(img docker.Image) {
		if !asJSON && !img.Cached {
			fmt.Fprintf(e.stderr, "  %s  %.1fs\n", img.Ref, img.Duration.Seconds())
		}
	})
	if err != nil {
		if errors.Is(err, driver.ErrNoArtifact) {
			return "", withCode(ExitUsage, err)
		}
		return "", err
	}
	build := ""
	if len(imgs) > 0 {
		build = imgs[0].Build
	}
	res := imagesJSON{Binary: bin, Build: build, Images: imgs, Duration: time.Since(start)}
	if asJSON {
		return build, writeJSON(w, res)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tID\tSIZE\tBUILT")
	for _, img := range imgs {
		took := fmt.Sprintf("%.1fs", img.Duration.Seconds())
		if img.Cached {
			took = "(there already)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img.Ref, shortID(img.ID), humanBytes(img.Size), took)
	}
	tw.Flush()
	fmt.Fprintf(e.stderr, "build %s: %d images in %.1fs (they share one %s layer)\n", build, len(imgs), res.Duration.Seconds(), sharedSize(imgs))
	return build, nil
}

// sourceBinary returns a static ladder binary built from the source tree at
// root, built once per content of the tree and kept under
// $LADDER_HOME/cache, so that building the images again from unchanged
// source takes a moment.
func sourceBinary(e *env, root string) (string, error) {
	sum, err := docker.SourceHash(root)
	if err != nil {
		return "", err
	}
	home, err := home.Dir()
	if err != nil {
		return "", err
	}
	cache := filepath.Join(home, "cache")
	bin := filepath.Join(cache, "ladder-"+sum)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", fmt.Errorf("build ladder binary: %w", err)
	}
	start := time.Now()
	fmt.Fprintf(e.stderr, "building a static ladder binary from %s\n", root)
	tmp := bin + ".tmp"
	if err := docker.BuildBinary(e.ctx, root, tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("build ladder binary: %w", err)
	}
	// Binaries of older source are of no more use.
	old, _ := filepath.Glob(filepath.Join(cache, "ladder-*"))
	for _, o := range old {
		if o != bin {
			os.Remove(o)
		}
	}
	fmt.Fprintf(e.stderr, "  built in %.1fs\n", time.Since(start).Seconds())
	return bin, nil
}

// imageBinary finds or builds the static ladder binary for the images.
func imageBinary(e *env, binary string) (string, func(), error) {
	nop := func() {}
	if binary != "" {
		return binary, nop, nil
	}
	if wd, err := os.Getwd(); err == nil {
		if root := docker.ModuleRoot(wd); root != "" {
			if _, err := exec.LookPath("go"); err == nil {
				bin, err := sourceBinary(e, root)
				return bin, nop, err
			}
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return "", nop, fmt.Errorf("find the ladder binary: %w", err)
	}
	static, err := docker.IsStatic(exe)
	if err != nil {
		return "", nop, err
	}
	if !static {
		return "", nop, usageErr("%s is dynamically linked and cannot run in an image FROM scratch: run from ladder's source tree, or pass --binary with a CGO_ENABLED=0 build", exe)
	}
	return exe, nop, nil
}

func shortID(id string) string {
	if len(id) > 19 {
		return id[:19]
	}
	return id
}

func sharedSize(imgs []docker.Image) string {
	if len(imgs) == 0 {
		return "0 B"
	}
	return humanBytes(imgs[0].Size)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
