package registry

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestGarbageCollection pushes 100 images sharing one layer, deletes half,
// and collects while a client keeps pushing: exactly the blobs of the
// deleted images go (not the shared one, not the new pushes), and every
// image left pulls whole. Deleting a blob a manifest uses is refused.
func TestGarbageCollection(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a replica")
	}
	ctx := context.Background()
	cfgs, reps := startCluster(t, "gc", "3.1.2", 1)
	waitSettled(t, "gc", members(reps, cfgs))
	host := strings.TrimPrefix(reps[0].URL(), "http://")
	auth := remote.WithAuth(&authn.Basic{Username: AdminUser, Password: testPassword})

	shared, err := random.Layer(512, "application/vnd.oci.image.layer.v1.tar")
	if err != nil {
		t.Fatal(err)
	}
	image := func() v1.Image {
		t.Helper()
		img, err := random.Image(256, 2)
		if err == nil {
			img, err = mutate.AppendLayers(img, shared)
		}
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	blobsOf := func(img v1.Image) []string {
		cfg, _ := img.ConfigName()
		out := []string{cfg.String()}
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			out = append(out, d.String())
		}
		return out
	}
	sharedDigest, _ := shared.Digest()

	const n = 100
	refs := make([]name.Reference, n)
	imgs := make([]v1.Image, n)
	for i := range n {
		imgs[i] = image()
		refs[i] = ref(t, fmt.Sprintf("%s/gc/app%d:v%d", host, i%10, i))
		if err := remote.Write(refs[i], imgs[i], auth); err != nil {
			t.Fatalf("push %d: %v", i, err)
		}
	}

	// A blob a manifest uses cannot be deleted.
	req, _ := http.NewRequest(http.MethodDelete, reps[0].URL()+"/v2/gc/app0/blobs/"+sharedDigest.String(), nil)
	req.SetBasicAuth(AdminUser, testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "DENIED") {
		t.Errorf("DELETE of a referenced blob = %d %s, want 409 DENIED", resp.StatusCode, body)
	}

	// Delete half the images: their own blobs become garbage.
	var want []string
	for i := 0; i < n; i += 2 {
		d, _ := imgs[i].Digest()
		if err := remote.Delete(refs[i].Context().Digest(d.String()), auth); err != nil {
			t.Fatalf("delete %d: %v", i, err)
		}
		for _, b := range blobsOf(imgs[i]) {
			if b != sharedDigest.String() {
				want = append(want, b)
			}
		}
	}
	slices.Sort(want)

	// Every blob so far is older than the collector's grace.
	old := time.Now().Add(-2 * GCMinAge)
	blobDir := cfgs[0].BlobDir
	_ = filepath.WalkDir(blobDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			_ = os.Chtimes(p, old, old)
		}
		return nil
	})

	ac := AdminClient{HC: http.DefaultClient, Base: reps[0].URL(), Password: testPassword}
	dry, err := ac.GC(ctx, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Sort(dry.Removed); !slices.Equal(dry.Removed, want) {
		t.Errorf("dry run would remove %d blobs, want %d", len(dry.Removed), len(want))
	}

	// Collect while a client pushes new images.
	var (
		wg     sync.WaitGroup
		stop   = make(chan struct{})
		pushed []v1.Image
		perr   error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				if i > 0 {
					return
				}
			default:
			}
			img := image()
			r, err := name.ParseReference(fmt.Sprintf("%s/gc/during:v%d", host, i), name.Insecure)
			if err == nil {
				err = remote.Write(r, img, auth)
			}
			if err != nil {
				perr = fmt.Errorf("push during gc %d: %w", i, err)
				return
			}
			pushed = append(pushed, img)
		}
	}()
	rep, err := ac.GC(ctx, GCOptions{})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if perr != nil {
		t.Fatal(perr)
	}
	if slices.Sort(rep.Removed); !slices.Equal(rep.Removed, want) {
		t.Errorf("gc removed %d blobs, want exactly the %d of the deleted images", len(rep.Removed), len(want))
	}
	t.Logf("gc: %d blobs, %d referenced, %d recent, removed %d (%d bytes) in %d ms; %d images pushed meanwhile",
		rep.Blobs, rep.Referenced, rep.Recent, len(rep.Removed), rep.RemovedBytes, rep.ElapsedMs, len(pushed))

	// Every image left pulls whole, from the files and the rows.
	check := func(r name.Reference, img v1.Image) {
		t.Helper()
		got, err := remote.Image(r, auth)
		if err == nil {
			var layers []v1.Layer
			if layers, err = got.Layers(); err == nil {
				for _, l := range layers {
					var rc io.ReadCloser
					if rc, err = l.Compressed(); err != nil {
						break
					}
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
			}
		}
		if err != nil {
			t.Errorf("pull %s after gc: %v", r, err)
		}
	}
	for i := 1; i < n; i += 2 {
		check(refs[i], imgs[i])
	}
	for i, img := range pushed {
		check(ref(t, fmt.Sprintf("%s/gc/during:v%d", host, i)), img)
	}
	// Removed blobs are gone from disk.
	for _, b := range want {
		alg, hex, _ := strings.Cut(b, ":")
		if _, err := os.Stat(filepath.Join(blobDir, alg, hex[:2], hex)); err == nil {
			t.Errorf("blob %s still on disk", b)
		}
	}
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
