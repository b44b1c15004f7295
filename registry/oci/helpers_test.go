package oci_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ladder-dev/ladder/registry/oci"
)

const adminPassword = "s3cret"

func checkAdmin(user, pass string) bool { return user == "admin" && pass == adminPassword }

// replica is one handler instance behind a test server.
type replica struct {
	srv      *httptest.Server
	host     string // 127.0.0.1:port
	requests atomic.Int64
	mounts   atomic.Int64 // blob mount events
}

// newReplica serves a handler over meta and blobDir; opts may adjust Options.
func newReplica(t testing.TB, meta oci.Metadata, blobDir string, opts ...func(*oci.Options)) *replica {
	t.Helper()
	rep := &replica{}
	o := oci.Options{
		Meta:       meta,
		BlobDir:    blobDir,
		CheckAdmin: checkAdmin,
		OnEvent: func(e oci.Event) {
			if e.Action == "mount" {
				rep.mounts.Add(1)
			}
		},
	}
	for _, f := range opts {
		f(&o)
	}
	h := oci.NewHandler(o)
	mux := http.NewServeMux()
	mux.Handle("/v2/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	rep.srv = httptest.NewServer(mux)
	t.Cleanup(rep.srv.Close)
	rep.host = strings.TrimPrefix(rep.srv.URL, "http://")
	return rep
}

func (rep *replica) url(path string) string { return rep.srv.URL + path }

func (rep *replica) tag(t testing.TB, ref string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(rep.host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatalf("parse tag %s: %v", ref, err)
	}
	return tag
}

func (rep *replica) repo(t testing.TB, repo string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(rep.host+"/"+repo, name.Insecure)
	if err != nil {
		t.Fatalf("parse repository %s: %v", repo, err)
	}
	return r
}

var adminAuth = remote.WithAuth(&authn.Basic{Username: "admin", Password: adminPassword})

// call is one raw HTTP request.
type call struct {
	method, path string
	body         []byte
	header       map[string]string
	anonymous    bool
}

func (rep *replica) do(t testing.TB, c call) *http.Response {
	t.Helper()
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, rep.url(c.path), body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	if !c.anonymous {
		req.SetBasicAuth("admin", adminPassword)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// errorCode returns the first error code of a spec error body ("" if none).
func errorCode(t testing.TB, resp *http.Response) string {
	t.Helper()
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &body); err != nil || len(body.Errors) == 0 {
		return ""
	}
	return body.Errors[0].Code
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// pushBlob uploads b monolithically to repo and returns its digest.
func (rep *replica) pushBlob(t testing.TB, repo string, b []byte) string {
	t.Helper()
	d := sha(b)
	resp := rep.do(t, call{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/?digest=" + d, body: b})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push blob: status %d", resp.StatusCode)
	}
	return d
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// partialDescriptor returns the JSON descriptor of img.
func partialDescriptor(img interface {
	Digest() (v1.Hash, error)
	Size() (int64, error)
	MediaType() (types.MediaType, error)
}) (string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	size, _ := img.Size()
	mt, _ := img.MediaType()
	b, err := json.Marshal(v1.Descriptor{MediaType: mt, Digest: d, Size: size})
	return string(b), err
}
