package oci_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ladder-dev/ladder/registry/oci"
)

// twoReplicas returns two handler instances sharing one blob folder and one
// metadata store, as two registry replicas do.
func twoReplicas(t *testing.T) (a, b *replica, meta *oci.MemoryMetadata) {
	t.Helper()
	meta = oci.NewMemoryMetadata()
	dir := t.TempDir()
	return newReplica(t, meta, dir), newReplica(t, meta, dir), meta
}

func TestPushOnOneReplicaPullFromTheOther(t *testing.T) {
	a, b, _ := twoReplicas(t)
	docker, err := random.Image(4096, 3)
	if err != nil {
		t.Fatal(err)
	}
	ociImage := mutate.MediaType(mutate.ConfigMediaType(docker, types.OCIConfigJSON), types.OCIManifestSchema1)
	index, err := random.Index(2048, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	dockerList := mutate.IndexMediaType(mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: docker}), types.DockerManifestList)

	images := []struct {
		name string
		ref  string
		img  v1.Image
	}{
		{name: "docker schema 2", ref: "a/b/c:docker", img: docker},
		{name: "oci image manifest", ref: "a/b/c:oci", img: ociImage},
	}
	for _, tc := range images {
		t.Run(tc.name, func(t *testing.T) {
			if err := remote.Write(a.tag(t, tc.ref), tc.img, adminAuth); err != nil {
				t.Fatalf("push: %v", err)
			}
			got, err := remote.Image(b.tag(t, tc.ref))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if err := validate.Image(got); err != nil {
				t.Fatalf("pulled image invalid: %v", err)
			}
			assertSameDigest(t, tc.img, got)
			mt, _ := got.MediaType()
			want, _ := tc.img.MediaType()
			if mt != want {
				t.Errorf("media type = %s, want %s", mt, want)
			}
		})
	}
	indexes := []struct {
		name string
		ref  string
		idx  v1.ImageIndex
	}{
		{name: "oci index", ref: "a/b/c:index", idx: index},
		{name: "docker manifest list", ref: "lists/x:list", idx: dockerList},
	}
	for _, tc := range indexes {
		t.Run(tc.name, func(t *testing.T) {
			if err := remote.WriteIndex(a.tag(t, tc.ref), tc.idx, adminAuth); err != nil {
				t.Fatalf("push: %v", err)
			}
			got, err := remote.Index(b.tag(t, tc.ref))
			if err != nil {
				t.Fatalf("pull: %v", err)
			}
			if err := validate.Index(got); err != nil {
				t.Fatalf("pulled index invalid: %v", err)
			}
			assertSameDigest(t, tc.idx, got)
		})
	}
	t.Run("copy to another repository mounts blobs", func(t *testing.T) {
		src, err := remote.Image(b.tag(t, "a/b/c:docker"))
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(b.tag(t, "copies/d:v1"), src, adminAuth); err != nil {
			t.Fatalf("copy: %v", err)
		}
		got, err := remote.Image(a.tag(t, "copies/d:v1"))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(got); err != nil {
			t.Fatal(err)
		}
		assertSameDigest(t, docker, got)
		if n := b.mounts.Load(); n != 4 { // config and three layers
			t.Errorf("copy mounted %d blobs, want 4", n)
		}
	})
	t.Run("list and catalog", func(t *testing.T) {
		tags, err := remote.List(b.repo(t, "a/b/c"))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"docker", "index", "oci"}; !slices.Equal(tags, want) {
			t.Errorf("tags = %v, want %v", tags, want)
		}
		repos, err := remote.Catalog(context.Background(), name.Registry(b.repo(t, "x").Registry))
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"a/b/c", "copies/d", "lists/x"}; !slices.Equal(repos, want) {
			t.Errorf("catalog = %v, want %v", repos, want)
		}
	})
	t.Run("delete by tag then by digest", func(t *testing.T) {
		dg, _ := ociImage.Digest()
		if err := remote.Delete(b.tag(t, "a/b/c:oci"), adminAuth); err != nil {
			t.Fatalf("delete tag: %v", err)
		}
		if _, err := remote.Head(a.tag(t, "a/b/c:oci")); err == nil {
			t.Fatal("tag still resolves after delete")
		}
		byDigest, _ := name.NewDigest(a.host+"/a/b/c@"+dg.String(), name.Insecure)
		if _, err := remote.Head(byDigest); err != nil {
			t.Fatalf("manifest gone with its tag: %v", err)
		}
		if err := remote.Delete(byDigest, adminAuth); err != nil {
			t.Fatalf("delete digest: %v", err)
		}
		if _, err := remote.Head(byDigest); err == nil {
			t.Fatal("manifest still there after delete")
		}
	})
}

type digester interface{ Digest() (v1.Hash, error) }

func assertSameDigest(t *testing.T, want, got digester) {
	t.Helper()
	w, err1 := want.Digest()
	g, err2 := got.Digest()
	if err1 != nil || err2 != nil || w != g {
		t.Fatalf("digest = %v (%v), want %v (%v)", g, err2, w, err1)
	}
}

func TestChunkedUploadAcrossReplicas(t *testing.T) {
	a, b, _ := twoReplicas(t)
	blob := bytes.Repeat([]byte("0123456789abcdef"), 1000) // 16000 bytes
	d := sha(blob)
	resp := a.do(t, call{method: http.MethodPost, path: "/v2/x/y/blobs/uploads/"})
	if resp.StatusCode != http.StatusAccepted || resp.Header.Get("Range") != "0-0" || resp.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("start upload: %d %v", resp.StatusCode, resp.Header)
	}
	loc := resp.Header.Get("Location")
	reps := []*replica{b, a, b}
	chunks := [][2]int{{0, 5000}, {5000, 11000}, {11000, 16000}}
	for i, c := range chunks {
		resp := reps[i].do(t, call{method: http.MethodPatch, path: loc, body: blob[c[0]:c[1]],
			header: map[string]string{"Content-Range": fmt.Sprintf("%d-%d", c[0], c[1]-1), "Content-Type": "application/octet-stream"}})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("chunk %d: status %d", i, resp.StatusCode)
		}
		if got, want := resp.Header.Get("Range"), fmt.Sprintf("0-%d", c[1]-1); got != want {
			t.Fatalf("chunk %d: Range = %q, want %q", i, got, want)
		}
		loc = resp.Header.Get("Location")
	}
	resp = a.do(t, call{method: http.MethodGet, path: loc})
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != "0-15999" {
		t.Fatalf("upload status: %d Range %q", resp.StatusCode, resp.Header.Get("Range"))
	}
	resp = a.do(t, call{method: http.MethodPut, path: loc + "?digest=" + d})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("finish upload: %d %v", resp.StatusCode, resp.Header)
	}
	resp = b.do(t, call{method: http.MethodGet, path: resp.Header.Get("Location"), anonymous: true})
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, blob) {
		t.Fatalf("pull blob: status %d, %d bytes", resp.StatusCode, len(got))
	}
	resp = b.do(t, call{method: http.MethodGet, path: "/v2/x/y/blobs/" + d, anonymous: true,
		header: map[string]string{"Range": "bytes=100-199"}})
	got, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, blob[100:200]) {
		t.Fatalf("range pull: status %d, %q", resp.StatusCode, got)
	}
}

func TestConcurrentPushesToOneRepository(t *testing.T) {
	a, b, _ := twoReplicas(t)
	shared, err := random.Layer(8192, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	const pushers = 8
	imgs := make([]v1.Image, pushers)
	for i := range imgs {
		base, err := random.Image(2048, 2)
		if err != nil {
			t.Fatal(err)
		}
		// every image shares one layer, so the same blob is committed concurrently
		if imgs[i], err = mutate.AppendLayers(base, shared); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, pushers)
	for i := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := []*replica{a, b}[i%2]
			errs[i] = remote.Write(rep.tag(t, "busy/repo:t"+strconv.Itoa(i)), imgs[i], adminAuth)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("push %d: %v", i, err)
		}
	}
	tags, err := remote.List(a.repo(t, "busy/repo"))
	if err != nil || len(tags) != pushers {
		t.Fatalf("tags = %v (%v), want %d", tags, err, pushers)
	}
	for i, img := range imgs {
		got, err := remote.Image(b.tag(t, "busy/repo:t"+strconv.Itoa(i)))
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
		if err := validate.Image(got); err != nil {
			t.Fatalf("image %d invalid: %v", i, err)
		}
		assertSameDigest(t, img, got)
	}
}

func TestPagination(t *testing.T) {
	meta := oci.NewMemoryMetadata()
	rep := newReplica(t, meta, t.TempDir())
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(rep.tag(t, "pages/repo:t00"), img, adminAuth); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 25 {
		tag := fmt.Sprintf("t%02d", i)
		want = append(want, tag)
		if i > 0 {
			if err := remote.Tag(rep.tag(t, "pages/repo:"+tag), img, adminAuth); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wantRepos []string
	for i := range 7 {
		r := fmt.Sprintf("repo%d/x", i)
		wantRepos = append(wantRepos, r)
		rep.pushBlob(t, r, []byte("x"))
	}
	wantRepos = append(wantRepos, "pages/repo")
	slices.Sort(wantRepos)

	// walk follows Link headers from path, collecting list under key.
	walk := func(t *testing.T, path, key string) (all []string, pages int) {
		for path != "" {
			resp := rep.do(t, call{method: http.MethodGet, path: path, anonymous: true})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", path, resp.StatusCode)
			}
			var body map[string]any
			raw, _ := io.ReadAll(resp.Body)
			if err := jsonUnmarshal(raw, &body); err != nil {
				t.Fatal(err)
			}
			for _, v := range body[key].([]any) {
				all = append(all, v.(string))
			}
			pages++
			path = ""
			if link := resp.Header.Get("Link"); link != "" {
				path = strings.TrimPrefix(strings.SplitN(link, ">", 2)[0], "<")
			}
		}
		return all, pages
	}
	tests := []struct {
		name      string
		path      string
		key       string
		want      []string
		wantPages int
	}{
		{name: "tags by 10", path: "/v2/pages/repo/tags/list?n=10", key: "tags", want: want, wantPages: 3},
		{name: "tags by 25 fits one page", path: "/v2/pages/repo/tags/list?n=25", key: "tags", want: want, wantPages: 1},
		{name: "tags after last", path: "/v2/pages/repo/tags/list?last=t19", key: "tags", want: want[20:], wantPages: 1},
		{name: "tags n=0", path: "/v2/pages/repo/tags/list?n=0", key: "tags", want: nil, wantPages: 1},
		{name: "catalog by 3", path: "/v2/_catalog?n=3", key: "repositories", want: wantRepos, wantPages: 3},
		{name: "catalog all", path: "/v2/_catalog", key: "repositories", want: wantRepos, wantPages: 1},
		{name: "catalog after last", path: "/v2/_catalog?n=2&last=repo4/x", key: "repositories", want: wantRepos[6:], wantPages: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := walk(t, tc.path, tc.key)
			if !slices.Equal(got, tc.want) || pages != tc.wantPages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tc.want, tc.wantPages)
			}
		})
	}
	t.Run("remote.List follows pages", func(t *testing.T) {
		got, err := remote.List(rep.repo(t, "pages/repo"), remote.WithPageSize(4))
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("List = %v (%v)", got, err)
		}
	})
	t.Run("remote.CatalogPage", func(t *testing.T) {
		got, err := remote.CatalogPage(rep.repo(t, "x").Registry, "repo2/x", 3)
		if err != nil || !slices.Equal(got, wantRepos[4:7]) {
			t.Errorf("CatalogPage = %v (%v), want %v", got, err, wantRepos[4:7])
		}
	})
	t.Run("bad n", func(t *testing.T) {
		resp := rep.do(t, call{method: http.MethodGet, path: "/v2/_catalog?n=-1", anonymous: true})
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", resp.StatusCode)
		}
	})
}

func TestReferrers(t *testing.T) {
	rep := newReplica(t, oci.NewMemoryMetadata(), t.TempDir())
	subject, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(rep.tag(t, "sig/app:v1"), subject, adminAuth); err != nil {
		t.Fatal(err)
	}
	sd, _ := subject.Digest()
	sdesc, _ := partialDescriptor(subject)
	empty := rep.pushBlob(t, "sig/app", []byte("{}"))
	artifact := func(artifactType string) []byte {
		return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
			`"artifactType":%q,"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":%q,"size":2},`+
			`"layers":[],"subject":%s,"annotations":{"kind":%q}}`, artifactType, empty, sdesc, artifactType))
	}
	for _, at := range []string{"application/vnd.example.sig", "application/vnd.example.sbom"} {
		body := artifact(at)
		resp := rep.do(t, call{method: http.MethodPut, path: "/v2/sig/app/manifests/" + sha(body), body: body,
			header: map[string]string{"Content-Type": string(types.OCIManifestSchema1)}})
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("OCI-Subject") != sd.String() {
			t.Fatalf("push referrer: %d, OCI-Subject %q", resp.StatusCode, resp.Header.Get("OCI-Subject"))
		}
	}
	dgst, _ := name.NewDigest(rep.host+"/sig/app@"+sd.String(), name.Insecure)
	idx, err := remote.Referrers(dgst)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("referrers = %d, want 2", len(im.Manifests))
	}
	for _, m := range im.Manifests {
		if m.Annotations["kind"] != m.ArtifactType {
			t.Errorf("referrer %s: annotations %v, artifactType %q", m.Digest, m.Annotations, m.ArtifactType)
		}
	}
	resp := rep.do(t, call{method: http.MethodGet, anonymous: true,
		path: "/v2/sig/app/referrers/" + sd.String() + "?artifactType=application/vnd.example.sbom"})
	raw, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("OCI-Filters-Applied") != "artifactType" || strings.Count(string(raw), `"artifactType"`) != 1 {
		t.Errorf("filtered referrers: %s %s", resp.Header.Get("OCI-Filters-Applied"), raw)
	}
}
