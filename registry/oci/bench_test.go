package oci_test

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ladder-dev/ladder/registry/oci"
)

// benchImage returns an image of layers fresh random layers of size bytes,
// held in memory so that building it costs the client nothing per read.
func benchImage(b *testing.B, layers, size int) v1.Image {
	b.Helper()
	var ls []v1.Layer
	for range layers {
		buf := make([]byte, size)
		_, _ = rand.Read(buf)
		ls = append(ls, static.NewLayer(buf, types.OCIUncompressedLayer))
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), ls...)
	if err != nil {
		b.Fatal(err)
	}
	return img
}

var benchSizes = []struct {
	name   string
	layers int
	size   int
}{
	{name: "4x4KiB", layers: 4, size: 4 << 10},
	{name: "4x1MiB", layers: 4, size: 1 << 20},
}

// BenchmarkPush pushes a new image (new blobs) per iteration with
// go-containerregistry's remote.Write to one handler; b.SetBytes makes
// MB/s the layer payload rate, req/s counts every HTTP request.
func BenchmarkPush(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			rep := newReplica(b, oci.NewMemoryMetadata(), b.TempDir())
			tr := remote.WithTransport(http.DefaultTransport)
			b.SetBytes(int64(bs.layers * bs.size))
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				img := benchImage(b, bs.layers, bs.size)
				b.StartTimer()
				if err := remote.Write(rep.tag(b, fmt.Sprintf("bench/push:t%d", i)), img, adminAuth, tr); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(rep.requests.Load())/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// BenchmarkPull pulls one image (manifest, config, every layer read and
// verified) per iteration with remote.Image.
func BenchmarkPull(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			rep := newReplica(b, oci.NewMemoryMetadata(), b.TempDir())
			tr := remote.WithTransport(http.DefaultTransport)
			ref := rep.tag(b, "bench/pull:v1")
			if err := remote.Write(ref, benchImage(b, bs.layers, bs.size), adminAuth, tr); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(bs.layers * bs.size))
			rep.requests.Store(0)
			b.ResetTimer()
			for range b.N {
				img, err := remote.Image(ref, tr)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := img.ConfigFile(); err != nil {
					b.Fatal(err)
				}
				layers, err := img.Layers()
				if err != nil {
					b.Fatal(err)
				}
				for _, l := range layers {
					rc, err := l.Compressed()
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, rc); err != nil {
						b.Fatal(err)
					}
					if err := rc.Close(); err != nil { // verifies the digest
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(rep.requests.Load())/b.Elapsed().Seconds(), "req/s")
		})
	}
}
