package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/ladder-dev/ladder/registry/oci"
)

// VersityGWModule is the S3-compatible server the S3 tests run against
// (Apache-2.0, a POSIX folder as its backend), built from the Go module
// proxy.
const VersityGWModule = "github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// versityGW returns the path of a versitygw binary: $LADDER_VERSITYGW, one
// on PATH or in GOPATH/bin; with LADDER_S3_TESTS=1 it is built when absent
// (a few minutes). Without one the test is skipped, saying how to get it.
func versityGW(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("LADDER_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	for _, dir := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
		if p := filepath.Join(dir, "bin", "versitygw"); fileExists(p) {
			return p
		}
	}
	if os.Getenv("LADDER_S3_TESTS") != "1" {
		t.Skipf("no versitygw binary (an S3-compatible server): install it with `go install %s`, or run with LADDER_S3_TESTS=1 to build it", VersityGWModule)
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "install", VersityGWModule)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build versitygw: %v\n%s", err, out)
	}
	return filepath.Join(dir, "versitygw")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// s3Server is a running versitygw with a bucket.
type s3Server struct {
	endpoint string
	keys     S3Keys
	bucket   string
	store    *S3BlobStore
}

// startS3 starts versitygw on a temporary folder, with random keys passed
// in its environment (never on its command line), and creates a bucket.
func startS3(t *testing.T) *s3Server {
	t.Helper()
	bin := versityGW(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	keys := S3Keys{AccessKeyID: "ladder" + randHex(4), SecretAccessKey: randHex(16)}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--port", addr, "posix", t.TempDir())
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+keys.AccessKeyID, "ROOT_SECRET_ACCESS_KEY="+keys.SecretAccessKey)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	s := &s3Server{endpoint: "http://" + addr, keys: keys, bucket: "ladder-test-" + randHex(3)}
	loc, err := ParseS3URL("s3://" + s.bucket + "?endpoint=" + s.endpoint + "&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	mc, err := minio.New(loc.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(keys.AccessKeyID, keys.SecretAccessKey, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = mc.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: "us-east-1"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create bucket on versitygw at %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(100 * time.Millisecond) // waiting for the server to listen
	}
	s.store, err = NewS3BlobStore(ctx, loc, keys)
	if err != nil {
		t.Fatalf("NewS3BlobStore: %v", err)
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// TestBlobStores runs the same checks on both blob stores: the folder and
// an S3 bucket on a real versitygw.
func TestBlobStores(t *testing.T) {
	t.Run("folder", func(t *testing.T) { testBlobStore(t, oci.FolderBlobs{Dir: t.TempDir()}) })
	t.Run("s3", func(t *testing.T) { testBlobStore(t, startS3(t).store) })
}

func testBlobStore(t *testing.T, store oci.BlobStore) {
	ctx := context.Background()
	put := func(content []byte, digest string) error {
		vr, err := oci.VerifyingReader(bytes.NewReader(content), digest)
		if err != nil {
			return err
		}
		return store.Put(ctx, digest, vr, int64(len(content)))
	}
	small := []byte("a small blob")
	large := make([]byte, S3PartSize+3<<20) // a multipart upload in S3
	_, _ = rand.Read(large)
	for _, tc := range []struct {
		name    string
		content []byte
	}{{"small", small}, {"multipart", large}} {
		t.Run(tc.name, func(t *testing.T) {
			d := digestOf(tc.content)
			if err := put(tc.content, d); err != nil {
				t.Fatalf("Put: %v", err)
			}
			bi, err := store.Stat(ctx, d)
			if err != nil || bi.Size != int64(len(tc.content)) || bi.Modified.IsZero() {
				t.Fatalf("Stat = %+v, %v; want size %d and a time", bi, err, len(tc.content))
			}
			rc, err := store.Open(ctx, d)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer rc.Close()
			if _, err := rc.Seek(5, io.SeekStart); err != nil {
				t.Fatalf("Seek: %v", err)
			}
			got, err := io.ReadAll(rc)
			if err != nil || !bytes.Equal(got, tc.content[5:]) {
				t.Fatalf("read after Seek(5): %d bytes, %v; want %d bytes of the content", len(got), err, len(tc.content)-5)
			}
		})
		t.Run(tc.name+" with a wrong digest stores nothing", func(t *testing.T) {
			wrong := digestOf(append([]byte("other"), tc.content...))
			err := put(tc.content, wrong)
			if !errors.Is(err, oci.ErrDigestMismatch) {
				t.Fatalf("Put with a wrong digest: err = %v, want ErrDigestMismatch", err)
			}
			if _, err := store.Stat(ctx, wrong); !errors.Is(err, oci.ErrBlobNotFound) {
				t.Fatalf("Stat after a refused Put: err = %v, want ErrBlobNotFound", err)
			}
		})
	}
	var walked []string
	if err := store.Walk(ctx, func(bi oci.BlobInfo) error { walked = append(walked, bi.Digest); return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	if len(walked) != 2 {
		t.Errorf("Walk found %v, want the 2 blobs put", walked)
	}
	// Touch renews the time garbage collection goes by. Times are those of
	// the store (S3: whole seconds), so the test waits until the store's
	// clock has moved past the blob's time before touching it.
	before, err := store.Stat(ctx, digestOf(small))
	if err != nil {
		t.Fatal(err)
	}
	for time.Since(before.Modified) < 1100*time.Millisecond {
		time.Sleep(50 * time.Millisecond) // the store's clock has a resolution of a second
	}
	if err := store.Touch(ctx, digestOf(small)); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	after, err := store.Stat(ctx, digestOf(small))
	if err != nil || !after.Modified.After(before.Modified) || after.Size != before.Size {
		t.Errorf("after Touch: %+v, %v; want a later time than %s and the same size", after, err, before.Modified)
	}
	if err := store.Delete(ctx, digestOf(small)); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := store.Open(ctx, digestOf(small)); !errors.Is(err, oci.ErrBlobNotFound) {
		t.Errorf("Open after Delete: err = %v, want ErrBlobNotFound", err)
	}
	if err := store.Delete(ctx, digestOf(small)); err != nil {
		t.Errorf("Delete again: %v, want nil", err)
	}
	if err := store.Touch(ctx, digestOf(small)); !errors.Is(err, oci.ErrBlobNotFound) {
		t.Errorf("Touch of a deleted blob: err = %v, want ErrBlobNotFound", err)
	}
}

// TestS3Push pushes and pulls an image through the OCI handler with its
// blobs in the bucket.
func TestS3Push(t *testing.T) {
	s := startS3(t)
	h := oci.NewHandler(oci.Options{Meta: oci.NewMemoryMetadata(), BlobDir: t.TempDir(), Blobs: s.store,
		CheckAdmin: func(u, p string) bool { return u == "admin" && p == "pw" }})
	srv := httptest.NewServer(h)
	defer srv.Close()
	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://")+"/s3/test:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: "pw"})
	if err := remote.Write(ref, img, auth); err != nil {
		t.Fatalf("push: %v", err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	layers, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull layer %s: %v", d, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || digestOf(b) != d.String() {
			t.Errorf("layer %s: read %d bytes (%v) that hash to %s", d, len(b), err, digestOf(b))
		}
		if _, err := s.store.Stat(context.Background(), d.String()); err != nil {
			t.Errorf("layer %s is not in the bucket: %v", d, err)
		}
	}
	resp, err := http.Get(srv.URL + "/v2/s3/test/blobs/" + digestOf([]byte("never pushed")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET of an unknown blob: %s, want 404", resp.Status)
	}
}

func TestS3Credentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const secret = "very-secret-key"
	good := write("good", "AWS_ACCESS_KEY_ID=id1\nAWS_SECRET_ACCESS_KEY="+secret+"\n", 0o600)
	open := write("open", "AWS_ACCESS_KEY_ID=id1\nAWS_SECRET_ACCESS_KEY="+secret+"\n", 0o644)
	half := write("half", "AWS_ACCESS_KEY_ID=id1\n", 0o600)
	odd := write("odd", "AWS_ACCESS_KEY_ID=id1\nAWS_SECRET_ACCESS_KEY="+secret+"\ntoken="+secret+"\n", 0o600)
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		ok         bool
	}{
		{"owner only", good, true},
		{"readable by others", open, false},
		{"secret missing", half, false},
		{"unknown key", odd, false},
		{"no file", filepath.Join(dir, "none"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := S3Credentials(tc.file)
			if (err == nil) != tc.ok {
				t.Fatalf("S3Credentials(%s): %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("the error repeats the secret: %v", err)
			}
			if tc.ok && (k.AccessKeyID != "id1" || k.SecretAccessKey != secret) {
				t.Errorf("keys = %q, (secret of %d bytes); want id1", k.AccessKeyID, len(k.SecretAccessKey))
			}
		})
	}
}

func TestParseS3URL(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		want      S3Location
		ok        bool
	}{
		{"endpoint and region", "s3://blobs?endpoint=http://127.0.0.1:7070&region=eu-west-1",
			S3Location{Bucket: "blobs", Endpoint: "127.0.0.1:7070", Region: "eu-west-1"}, true},
		{"prefix and https", "s3://blobs/cluster-a?endpoint=https://s3.example.com",
			S3Location{Bucket: "blobs", Prefix: "cluster-a/", Endpoint: "s3.example.com", Secure: true}, true},
		{"credentials in the URL", "s3://key:secret@blobs?endpoint=http://h:1", S3Location{}, false},
		{"not s3", "http://blobs", S3Location{}, false},
		{"bad endpoint", "s3://blobs?endpoint=ftp://h", S3Location{}, false},
		{"endpoint without a host", "s3://blobs?endpoint=http://:7070", S3Location{}, false},
		{"unknown parameter", "s3://blobs?endpoint=http://h:1&secret=x", S3Location{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseS3URL(tc.url)
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Fatalf("ParseS3URL(%q) = %+v, %v; want %+v (ok %v)", tc.url, got, err, tc.want, tc.ok)
			}
			if err != nil && strings.Contains(err.Error(), "secret") && tc.name == "credentials in the URL" {
				t.Errorf("the error repeats the URL's secret: %v", err)
			}
		})
	}
}

// aged shows a blob store's blobs as older than they are, so that the
// collector, which keeps blobs younger than GCMinAge, can be tested on a
// bucket whose object times cannot be set back.
type aged struct {
	oci.BlobStore
	by time.Duration
}

func (a aged) Stat(ctx context.Context, d string) (oci.BlobInfo, error) {
	bi, err := a.BlobStore.Stat(ctx, d)
	bi.Modified = bi.Modified.Add(-a.by)
	return bi, err
}

func (a aged) Walk(ctx context.Context, fn func(oci.BlobInfo) error) error {
	return a.BlobStore.Walk(ctx, func(bi oci.BlobInfo) error {
		bi.Modified = bi.Modified.Add(-a.by)
		return fn(bi)
	})
}

// TestGarbageCollectionS3 runs the collector on a replica whose blobs are
// in a bucket: the blobs of a deleted image go from the bucket, those of
// the image kept stay, and the kept image still pulls.
func TestGarbageCollectionS3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a replica")
	}
	s := startS3(t)
	ctx := context.Background()
	keys := filepath.Join(t.TempDir(), "s3.keys")
	if err := os.WriteFile(keys, s.keys.Format(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgs := testCluster(t, "gcs3", "3.1.2", 1)
	cfgs[0].BlobStore = "s3://" + s.bucket + "?endpoint=" + s.endpoint + "&region=us-east-1"
	cfgs[0].BlobCredentials = keys
	reps := startAll(t, cfgs)
	waitSettled(t, "gcs3", members(reps, cfgs))
	host := strings.TrimPrefix(reps[0].URL(), "http://")
	auth := remote.WithAuth(&authn.Basic{Username: AdminUser, Password: testPassword})
	push := func(tag string) (name.Reference, []string) {
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(host+"/gc/s3:"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img, auth); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		cfg, _ := img.ConfigName()
		blobs := []string{cfg.String()}
		layers, _ := img.Layers()
		for _, l := range layers {
			d, _ := l.Digest()
			blobs = append(blobs, d.String())
		}
		dgst, _ := img.Digest()
		return ref.Context().Digest(dgst.String()), blobs
	}
	kept, keptBlobs := push("kept")
	gone, goneBlobs := push("gone")
	if err := remote.Delete(gone, auth); err != nil {
		t.Fatalf("delete %s: %v", gone, err)
	}
	st := reps[0].store.Load()
	rep, err := CollectGarbage(ctx, st, aged{s.store, 2 * GCMinAge}, GCOptions{})
	if err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	slices.Sort(rep.Removed)
	slices.Sort(goneBlobs)
	if !slices.Equal(rep.Removed, goneBlobs) {
		t.Errorf("removed %v, want the deleted image's blobs %v", rep.Removed, goneBlobs)
	}
	for _, b := range goneBlobs {
		if _, err := s.store.Stat(ctx, b); !errors.Is(err, oci.ErrBlobNotFound) {
			t.Errorf("blob %s of the deleted image: still in the bucket (%v)", b, err)
		}
	}
	for _, b := range keptBlobs {
		if _, err := s.store.Stat(ctx, b); err != nil {
			t.Errorf("blob %s of the kept image: %v", b, err)
		}
	}
	img, err := remote.Image(kept, auth)
	if err != nil {
		t.Fatalf("pull the kept image: %v", err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatalf("pull the kept image: %v", err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatalf("pull a layer of the kept image: %v", err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("pull a layer of the kept image: %v", err)
		}
	}
}
