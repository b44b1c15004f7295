package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/sync/errgroup"

	"github.com/ladder-dev/ladder/registry/oci"
)

// Media types the seeded manifests use.
const (
	mediaOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIIndex    = "application/vnd.oci.image.index.v1+json"
	mediaOCIConfig   = "application/vnd.oci.image.config.v1+json"
	mediaOCILayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	artifactSig      = "application/vnd.example.signature.v1+json"
)

// Seed connects to the store at endpoints and writes realistic metadata for
// the given number of repositories through the schema-aware store API (see
// SeedStore).
func Seed(ctx context.Context, endpoints []string, repositories int, logger *slog.Logger) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return fmt.Errorf("seed: connect to %v: %w", endpoints, err)
	}
	defer cli.Close()
	st, err := OpenStore(ctx, cli, StoreOptions{Logger: logger})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return SeedStore(ctx, st, repositories, logger)
}

// SeedStore writes metadata for the given number of repositories, in the
// layout of the stored schema: repositories in a few namespaces (and some
// without one), one to three images each sharing base layers, tags that
// move, an index in every third repository, a signature referring to the
// first image in every fourth, and a deleted tag in every fifth. The same
// count always gives the same repositories, digests and tags.
func SeedStore(ctx context.Context, st *Store, repositories int, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rng := rand.New(rand.NewPCG(uint64(repositories), 0x1adde4))
	namespaces := []string{"library", "platform", "data", "web", "ml"}
	bases := make([]blobSpec, 3)
	for i, name := range []string{"alpine", "debian", "distroless"} {
		bases[i] = newBlob("base-layer/"+name, 2<<20+rng.Int64N(30<<20))
	}
	// Draw every random number first, in a fixed order, so that the same
	// count always gives the same data; then write repositories in parallel
	// (the store retries transactions that collide).
	type repoSpec struct {
		i      int
		name   string
		images []seedImage
		sig    blobSpec
	}
	specs := make([]repoSpec, repositories)
	for i := range repositories {
		rs := repoSpec{i: i, name: fmt.Sprintf("%s/svc-%04d", namespaces[i%len(namespaces)], i)}
		if i%7 == 6 {
			rs.name = fmt.Sprintf("tool-%04d", i)
		}
		images := 1 + rng.IntN(3)
		for j := range images {
			config := newBlob(fmt.Sprintf("%s/config/%d", rs.name, j), 1000+rng.Int64N(4000))
			layers := []blobSpec{bases[rng.IntN(len(bases))],
				newBlob(fmt.Sprintf("%s/app/%d", rs.name, j), 100<<10+rng.Int64N(20<<20))}
			rs.images = append(rs.images, seedImage{config: config, layers: layers})
		}
		if i%4 == 0 {
			rs.sig = newBlob(rs.name+"/signature", 300+rng.Int64N(200))
		}
		specs[i] = rs
	}
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	workers := seedWorkers
	if st.Schema() < 2 {
		// Creating a repository depends on the whole repositories table
		// in schema 1 (it has no index by name): parallel writers would
		// only collide.
		workers = 1
	}
	g.SetLimit(workers)
	for _, rs := range specs {
		g.Go(func() error {
			if err := seedRepository(gctx, st, rs.i, rs.name, rs.images, rs.sig); err != nil {
				return fmt.Errorf("seed %s: %w", rs.name, err)
			}
			if n := done.Add(1); n%50 == 0 {
				logger.Info("seeding", "repositories", n, "of", repositories)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	logger.Info("seeded", "repositories", repositories, "schema", st.Schema())
	return nil
}

// seedWorkers is how many repositories Seed writes at once.
const seedWorkers = 64

// seedImage is one image Seed pushes: its config and layers.
type seedImage struct {
	config blobSpec
	layers []blobSpec
}

// seedRepository writes repository i in one transaction: its images with
// their blob links and tags, the latest tag, an index in every third, a
// signature in every fourth, and a deleted tag in every fifth.
func seedRepository(ctx context.Context, st *Store, i int, repo string, images []seedImage, sig blobSpec) error {
	return st.update(ctx, func(ctx context.Context, t *txn) error {
		var manifests []oci.Manifest
		for j, img := range images {
			m := imageManifest(img.config, img.layers, "", "")
			for _, b := range append([]blobSpec{img.config}, img.layers...) {
				if err := t.linkBlob(ctx, repo, b.digest, b.size); err != nil {
					return err
				}
			}
			if err := t.putManifest(ctx, repo, m, fmt.Sprintf("v1.%d.0", j)); err != nil {
				return err
			}
			manifests = append(manifests, m)
		}
		if err := t.putManifest(ctx, repo, manifests[len(manifests)-1], "latest"); err != nil {
			return err
		}
		if i%3 == 0 {
			if err := t.putManifest(ctx, repo, indexManifest(manifests), "multi"); err != nil {
				return err
			}
		}
		if i%4 == 0 {
			if err := t.linkBlob(ctx, repo, sig.digest, sig.size); err != nil {
				return err
			}
			m := imageManifest(newEmptyConfig(), []blobSpec{sig}, manifests[0].Digest, artifactSig)
			if err := t.putManifest(ctx, repo, m, ""); err != nil {
				return err
			}
		}
		if i%5 == 0 && len(images) > 1 {
			return t.deleteTag(ctx, repo, "v1.0.0")
		}
		return nil
	})
}

type blobSpec struct {
	digest    string
	size      int64
	mediaType string
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newBlob(label string, size int64) blobSpec {
	return blobSpec{digest: digestOf([]byte(label)), size: size, mediaType: mediaOCILayer}
}

func newEmptyConfig() blobSpec {
	return blobSpec{digest: digestOf([]byte("{}")), size: 2, mediaType: "application/vnd.oci.empty.v1+json"}
}

type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
}

// imageManifest builds an OCI image manifest (or an artifact referring to
// subject when subject is set).
func imageManifest(config blobSpec, layers []blobSpec, subject, artifactType string) oci.Manifest {
	cfgType := config.mediaType
	if cfgType == mediaOCILayer {
		cfgType = mediaOCIConfig
	}
	doc := struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		ArtifactType  string       `json:"artifactType,omitempty"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
		Subject       *descriptor  `json:"subject,omitempty"`
	}{SchemaVersion: 2, MediaType: mediaOCIManifest, ArtifactType: artifactType,
		Config: descriptor{MediaType: cfgType, Digest: config.digest, Size: config.size}}
	blobs := []string{config.digest}
	for _, l := range layers {
		doc.Layers = append(doc.Layers, descriptor{MediaType: l.mediaType, Digest: l.digest, Size: l.size})
		blobs = append(blobs, l.digest)
	}
	if subject != "" {
		doc.Subject = &descriptor{MediaType: mediaOCIManifest, Digest: subject, Size: 0}
	}
	content, _ := json.Marshal(doc)
	return oci.Manifest{Digest: digestOf(content), MediaType: mediaOCIManifest, Size: int64(len(content)),
		Content: content, Blobs: blobs, Subject: subject, ArtifactType: artifactType}
}

// indexManifest builds an image index over children.
func indexManifest(children []oci.Manifest) oci.Manifest {
	var ds []descriptor
	var digests []string
	for _, c := range children {
		ds = append(ds, descriptor{MediaType: mediaOCIManifest, Digest: c.Digest, Size: c.Size})
		digests = append(digests, c.Digest)
	}
	content, _ := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}{2, mediaOCIIndex, ds})
	return oci.Manifest{Digest: digestOf(content), MediaType: mediaOCIIndex, Size: int64(len(content)),
		Content: content, Children: digests}
}
