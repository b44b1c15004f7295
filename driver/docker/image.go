package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/ladder-dev/ladder/driver"
	"github.com/ladder-dev/ladder/internal/home"
)

// Repository is the image repository of a service's releases:
// ladder-SERVICE, as in ladder-registry:VERSION.
func Repository(service string) string { return "ladder-" + service }

// baseRepository holds the images release images are built on: a static
// binary, tagged by its content hash.
func baseRepository(service string) string { return Repository(service) + "-base" }

// Image labels.
const (
	labelImageVersion = "org.opencontainers.image.version"
	labelRelease      = "ladder.release"
	labelBuild        = "ladder.build"
)

// Tag returns the image tag of version: OCI tags cannot hold '+', so build
// metadata is written with '_' instead (1.0.0+b.5 → 1.0.0_b.5).
func Tag(version string) string { return strings.ReplaceAll(version, "+", "_") }

// ImageRef returns the image reference of a service's release in a build,
// ladder-SERVICE:TAG-BUILD. A build is named by the content of the binary
// it holds, so two ladder binaries never take each other's tags: a cluster
// runs, from its creation on, the images of one build.
func ImageRef(service, version, build string) string {
	return Repository(service) + ":" + Tag(version) + "-" + build
}

// BuildID names the build of the binary at path: the first 12 hex digits
// of its SHA-256.
func BuildID(path string) (string, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read binary: %w", err)
	}
	sum := sha256.Sum256(bin)
	return hex.EncodeToString(sum[:])[:12], nil
}

// LatestBuild returns the newest build that holds release version of a
// service, or an error wrapping driver.ErrNoArtifact if none does.
func LatestBuild(ctx context.Context, cli *client.Client, service, version string) (string, error) {
	res, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).
		Add("reference", Repository(service)).Add("label", labelRelease+"="+version)})
	if err != nil {
		return "", fmt.Errorf("list images: %w", err)
	}
	build, newest := "", int64(-1)
	for _, img := range res.Items {
		if b := img.Labels[labelBuild]; b != "" && img.Created > newest {
			build, newest = b, img.Created
		}
	}
	if build == "" {
		return "", fmt.Errorf("%w: no image of %s %s is present (build it with: ladder images build --versions %s)",
			driver.ErrNoArtifact, service, version, version)
	}
	return build, nil
}

// Image is one built release image.
type Image struct {
	Version string `json:"version"`
	Ref     string `json:"ref"`
	ID      string `json:"id"`
	// Build names the binary the image holds (BuildID).
	Build string `json:"build"`
	// Cached: the image was there already and was not built again.
	Cached bool `json:"cached"`
	// Size is the image's size in bytes; every release image shares the
	// one layer holding the binary, so the set costs about one Size.
	Size     int64         `json:"size"`
	Duration time.Duration `json:"duration_ns"`
}

// IsStatic reports whether the ELF executable at path is statically
// linked: no program interpreter and no shared libraries, so it runs in an
// image built FROM scratch.
func IsStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("inspect binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return false, fmt.Errorf("inspect binary %s: %w", path, err)
	}
	return len(libs) == 0, nil
}

// BuildBinary builds a static ladder binary (CGO_ENABLED=0, stripped) from
// the module source at srcDir into out, with the go command on PATH.
func BuildBinary(ctx context.Context, srcDir, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-s -w", "-o", out, "./cmd/ladder")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build ladder binary in %s: %w: %s", srcDir, err, home.Tail(b, 15))
	}
	return nil
}

// SourceHash names the content of the source tree at root: every file but
// those under .git, by path and content. Two trees with the same hash build
// the same binary.
func SourceHash(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash source tree %s: %w", root, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ModuleRoot returns the folder of ladder's source tree that holds dir, or
// "" if dir is not inside it.
func ModuleRoot(dir string) string {
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil {
			first, _, _ := strings.Cut(string(data), "\n")
			if strings.TrimSpace(first) == "module github.com/ladder-dev/ladder" {
				return dir
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// BuildImages builds ladder-SERVICE:TAG-BUILD for every version of svc
// whose artifact is the static binary at binary (the reference registry's
// binary runs every release), BUILD naming the binary. The binary goes
// into one base image FROM scratch, and each release image adds only
// metadata on top of it: the labels org.opencontainers.image.version,
// ladder.release and ladder.build. Building every release therefore sends
// the binary once and stores it once; images already there are not built
// again, so building a second time takes a moment. The driver gives each
// container its command line, the release included. No other build's
// images are touched: another cluster may run them.
//
// progress, if not nil, is called after each image is built, from one
// goroutine at a time.
func BuildImages(ctx context.Context, cli *client.Client, svc driver.Service, binary string, versions []string, progress func(Image)) ([]Image, error) {
	program := ""
	for _, v := range versions {
		a, err := svc.Artifact(v)
		if err != nil {
			return nil, err
		}
		program = a.Program
	}
	static, err := IsStatic(binary)
	if err != nil {
		return nil, err
	}
	if !static {
		return nil, fmt.Errorf("build images: %s is dynamically linked and cannot run in an image FROM scratch (build it with CGO_ENABLED=0)", binary)
	}
	build, err := BuildID(binary)
	if err != nil {
		return nil, fmt.Errorf("build images: %w", err)
	}
	base, err := buildBase(ctx, cli, svc.Name(), program, binary, build)
	if err != nil {
		return nil, err
	}
	out := make([]Image, len(versions))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i, v := range versions {
		g.Go(func() error {
			img, err := buildRelease(gctx, cli, svc.Name(), base, v, build)
			if err != nil {
				return err
			}
			out[i] = img
			if progress != nil {
				mu.Lock()
				progress(img)
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// buildBase builds (or finds) the base image holding binary as /program
// and returns its reference.
func buildBase(ctx context.Context, cli *client.Client, service, program, binary, build string) (string, error) {
	ref := baseRepository(service) + ":" + build
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("build images: inspect %s: %w", ref, err)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return "", fmt.Errorf("build images: read binary: %w", err)
	}
	// The folders a container writes to (as volumes) belong to its
	// unprivileged user; a new volume takes their owner from the image.
	dockerfile := fmt.Sprintf("FROM scratch\nCOPY --chown=%s skel/ /\nCOPY %s /%s\nUSER %s\nENTRYPOINT [\"/%s\"]\n",
		containerUser, program, program, containerUser, program)
	files := map[string][]byte{"Dockerfile": []byte(dockerfile), program: bin}
	for _, dir := range []string{"", "/run", dataPath, sharedPath, secretsPath, "/tmp"} {
		files["skel"+dir+"/"] = nil
	}
	buildCtx, err := tarFiles(files)
	if err != nil {
		return "", err
	}
	if _, err := runBuild(ctx, cli, buildCtx, client.ImageBuildOptions{Tags: []string{ref}}); err != nil {
		return "", fmt.Errorf("build base image %s: %w", ref, err)
	}
	return ref, nil
}

// buildRelease builds ladder-SERVICE:TAG-BUILD of version on base, unless
// it is there already.
func buildRelease(ctx context.Context, cli *client.Client, service, base, version, build string) (Image, error) {
	start := time.Now()
	ref := ImageRef(service, version, build)
	if insp, err := cli.ImageInspect(ctx, ref); err == nil {
		return Image{Version: version, Ref: ref, ID: insp.ID, Build: build, Size: insp.Size, Cached: true,
			Duration: time.Since(start)}, nil
	}
	dockerfile := fmt.Sprintf("FROM %s\nLABEL %s=%q %s=%q %s=%q\n", base, labelImageVersion, version,
		labelRelease, version, labelBuild, build)
	buildCtx, err := tarFiles(map[string][]byte{"Dockerfile": []byte(dockerfile)})
	if err != nil {
		return Image{}, err
	}
	id, err := runBuild(ctx, cli, buildCtx, client.ImageBuildOptions{Tags: []string{ref}})
	if err != nil {
		return Image{}, fmt.Errorf("build image %s: %w", ref, err)
	}
	insp, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		return Image{}, fmt.Errorf("build image %s: inspect: %w", ref, err)
	}
	if id == "" {
		id = insp.ID
	}
	return Image{Version: version, Ref: ref, ID: id, Build: build, Size: insp.Size, Duration: time.Since(start)}, nil
}

// runBuild runs one classic-builder build and returns the image id it
// reports. Build errors arrive in the stream, not as an HTTP status.
func runBuild(ctx context.Context, cli *client.Client, buildCtx io.Reader, opts client.ImageBuildOptions) (string, error) {
	opts.Remove = true
	opts.ForceRemove = true
	res, err := cli.ImageBuild(ctx, buildCtx, opts)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var (
		id  string
		log bytes.Buffer
	)
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", fmt.Errorf("read build output: %w", err)
		}
		if m.Error != nil {
			return "", fmt.Errorf("%s: %s", m.Error.Message, home.Tail(log.Bytes(), 10))
		}
		log.WriteString(m.Stream)
		if m.Aux != nil {
			var aux struct {
				ID string `json:"ID"`
			}
			if json.Unmarshal(*m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	return id, nil
}

// tarFiles returns an uncompressed tar archive of files (name → content),
// executable where the name has no extension and is not a Dockerfile.
func tarFiles(files map[string][]byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, "/") {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}); err != nil {
				return nil, fmt.Errorf("write build context: %w", err)
			}
			continue
		}
		mode := int64(0o644)
		if name != "Dockerfile" && filepath.Ext(name) == "" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(files[name])),
			Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}); err != nil {
			return nil, fmt.Errorf("write build context: %w", err)
		}
		if _, err := tw.Write(files[name]); err != nil {
			return nil, fmt.Errorf("write build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write build context: %w", err)
	}
	return &buf, nil
}

// CheckImage returns driver.ErrNoArtifact, with the command that builds
// it, if the image of a service's release in build is not present on the
// engine cli talks to.
func CheckImage(ctx context.Context, cli *client.Client, service, version, build string) error {
	ref := ImageRef(service, version, build)
	_, err := cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("%w: image %s is not present (build it from the same ladder binary with: ladder images build --versions %s)",
			driver.ErrNoArtifact, ref, version)
	}
	if err != nil {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	return nil
}
