package oci_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ladder-dev/ladder/registry/oci"
)

const ociManifest = "application/vnd.oci.image.manifest.v1+json"

func imageManifest(config string, layers ...string) []byte {
	var ls []string
	for _, l := range layers {
		ls = append(ls, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":1}`, l))
	}
	return []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":2},"layers":[%s]}`,
		ociManifest, config, strings.Join(ls, ",")))
}

func TestErrors(t *testing.T) {
	meta := oci.NewMemoryMetadata()
	dir := t.TempDir()
	rep := newReplica(t, meta, dir, func(o *oci.Options) {
		o.MaxManifestBytes = 4096
		o.MaxBlobBytes = 1000
	})
	config := rep.pushBlob(t, "e/repo", []byte("{}"))
	layer := rep.pushBlob(t, "e/repo", []byte("layer"))
	otherRepoBlob := rep.pushBlob(t, "e/other", []byte("elsewhere"))
	good := imageManifest(config, layer)
	unknownBlob := sha([]byte("never pushed"))
	ct := map[string]string{"Content-Type": ociManifest}

	// start returns the Location of a new upload in repo.
	start := func(repo string) string {
		resp := rep.do(t, call{method: http.MethodPost, path: "/v2/" + repo + "/blobs/uploads/"})
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %d", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}

	tests := []struct {
		name       string
		call       call
		wantStatus int
		wantCode   string
		after      func(t *testing.T) // asserts nothing was half-written
	}{
		{name: "ping anonymous", call: call{method: http.MethodGet, path: "/v2/", anonymous: true}, wantStatus: http.StatusOK},
		{name: "ping wrong password", call: call{method: http.MethodGet, path: "/v2/", anonymous: true,
			header: map[string]string{"Authorization": "Basic YWRtaW46bm9wZQ=="}}, wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "push anonymous", call: call{method: http.MethodPost, path: "/v2/e/repo/blobs/uploads/", anonymous: true},
			wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "push wrong password", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/v1", body: good, anonymous: true,
			header: map[string]string{"Authorization": "Basic YWRtaW46bm9wZQ==", "Content-Type": ociManifest}},
			wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "delete anonymous", call: call{method: http.MethodDelete, path: "/v2/e/repo/blobs/" + layer, anonymous: true},
			wantStatus: http.StatusUnauthorized, wantCode: "UNAUTHORIZED"},
		{name: "invalid name", call: call{method: http.MethodGet, path: "/v2/Bad/Name/tags/list"},
			wantStatus: http.StatusBadRequest, wantCode: "NAME_INVALID"},
		{name: "unknown repository tags", call: call{method: http.MethodGet, path: "/v2/no/such/tags/list"},
			wantStatus: http.StatusNotFound, wantCode: "NAME_UNKNOWN"},
		{name: "unknown blob", call: call{method: http.MethodGet, path: "/v2/e/repo/blobs/" + unknownBlob},
			wantStatus: http.StatusNotFound, wantCode: "BLOB_UNKNOWN"},
		{name: "blob of another repository", call: call{method: http.MethodHead, path: "/v2/e/repo/blobs/" + otherRepoBlob},
			wantStatus: http.StatusNotFound},
		{name: "malformed digest", call: call{method: http.MethodGet, path: "/v2/e/repo/blobs/sha256:xyz"},
			wantStatus: http.StatusBadRequest, wantCode: "DIGEST_INVALID"},
		{name: "unknown manifest tag", call: call{method: http.MethodGet, path: "/v2/e/repo/manifests/nope"},
			wantStatus: http.StatusNotFound, wantCode: "MANIFEST_UNKNOWN"},
		{name: "unknown manifest digest", call: call{method: http.MethodGet, path: "/v2/e/repo/manifests/" + unknownBlob},
			wantStatus: http.StatusNotFound, wantCode: "MANIFEST_UNKNOWN"},
		{name: "manifest naming an unknown blob", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad1",
			body: imageManifest(config, unknownBlob), header: ct}, wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_BLOB_UNKNOWN",
			after: wantNoTag(rep, "e/repo", "bad1")},
		{name: "manifest naming another repository's blob", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad2",
			body: imageManifest(config, otherRepoBlob), header: ct}, wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_BLOB_UNKNOWN",
			after: wantNoTag(rep, "e/repo", "bad2")},
		{name: "index naming an unknown manifest", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad3",
			body:   []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"` + ociManifest + `","digest":"` + unknownBlob + `","size":3}]}`),
			header: map[string]string{"Content-Type": "application/vnd.oci.image.index.v1+json"}},
			wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_BLOB_UNKNOWN", after: wantNoTag(rep, "e/repo", "bad3")},
		{name: "malformed manifest", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad4", body: []byte(`{"schemaVersion":2,`), header: ct},
			wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_INVALID", after: wantNoTag(rep, "e/repo", "bad4")},
		{name: "manifest without config digest", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad5",
			body: []byte(`{"schemaVersion":2,"config":{"mediaType":"x","size":1},"layers":[]}`), header: ct},
			wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_INVALID"},
		{name: "schema 1 manifest", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad6", body: []byte(`{"schemaVersion":1}`),
			header: map[string]string{"Content-Type": "application/vnd.docker.distribution.manifest.v1+prettyjws"}},
			wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_INVALID"},
		{name: "media type differs from content type", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/bad7", body: good,
			header: map[string]string{"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"}},
			wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_INVALID"},
		{name: "manifest digest mismatch", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/" + sha(append(good, ' ')), body: good, header: ct},
			wantStatus: http.StatusBadRequest, wantCode: "DIGEST_INVALID", after: wantNoManifest(rep, "e/repo", sha(good))},
		{name: "oversized manifest", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/big", body: bytes.Repeat([]byte(" "), 5000), header: ct},
			wantStatus: http.StatusRequestEntityTooLarge, wantCode: "MANIFEST_INVALID", after: wantNoTag(rep, "e/repo", "big")},
		{name: "invalid tag", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/-bad", body: good, header: ct},
			wantStatus: http.StatusBadRequest, wantCode: "MANIFEST_INVALID"},
		{name: "monolithic digest mismatch", call: call{method: http.MethodPost, path: "/v2/e/repo/blobs/uploads/?digest=" + unknownBlob, body: []byte("other")},
			wantStatus: http.StatusBadRequest, wantCode: "DIGEST_INVALID", after: wantNoBlob(rep, dir, "e/repo", unknownBlob)},
		{name: "oversized monolithic blob", call: call{method: http.MethodPost, path: "/v2/e/repo/blobs/uploads/?digest=" + sha(make([]byte, 1001)), body: make([]byte, 1001)},
			wantStatus: http.StatusRequestEntityTooLarge, wantCode: "SIZE_INVALID", after: wantNoBlob(rep, dir, "e/repo", sha(make([]byte, 1001)))},
		{name: "unknown upload", call: call{method: http.MethodPatch, path: "/v2/e/repo/blobs/uploads/0123456789abcdef0123456789abcdef0123456789abcdef", body: []byte("x")},
			wantStatus: http.StatusNotFound, wantCode: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload id with a path", call: call{method: http.MethodGet, path: "/v2/e/repo/blobs/uploads/..%2F..%2Fsha256"},
			wantStatus: http.StatusNotFound},
		{name: "upload id not ours", call: call{method: http.MethodGet, path: "/v2/e/repo/blobs/uploads/..."},
			wantStatus: http.StatusNotFound, wantCode: "BLOB_UPLOAD_UNKNOWN"},
		{name: "upload of another repository", call: call{method: http.MethodGet, path: strings.Replace(start("e/other"), "e/other", "e/repo", 1)},
			wantStatus: http.StatusNotFound, wantCode: "BLOB_UPLOAD_UNKNOWN"},
		{name: "finish without digest", call: call{method: http.MethodPut, path: start("e/repo")},
			wantStatus: http.StatusBadRequest, wantCode: "DIGEST_INVALID"},
		{name: "delete unknown manifest", call: call{method: http.MethodDelete, path: "/v2/e/repo/manifests/" + unknownBlob},
			wantStatus: http.StatusNotFound, wantCode: "MANIFEST_UNKNOWN"},
		{name: "delete unknown tag", call: call{method: http.MethodDelete, path: "/v2/e/repo/manifests/nope"},
			wantStatus: http.StatusNotFound, wantCode: "MANIFEST_UNKNOWN"},
		{name: "unsupported method", call: call{method: http.MethodPost, path: "/v2/e/repo/manifests/v1"},
			wantStatus: http.StatusMethodNotAllowed, wantCode: "UNSUPPORTED"},
		{name: "unknown endpoint", call: call{method: http.MethodGet, path: "/v2/e/repo/nothing"},
			wantStatus: http.StatusNotFound},
		{name: "good manifest", call: call{method: http.MethodPut, path: "/v2/e/repo/manifests/v1", body: good, header: ct},
			wantStatus: http.StatusCreated},
		{name: "pull anonymous", call: call{method: http.MethodGet, path: "/v2/e/repo/manifests/v1", anonymous: true},
			wantStatus: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rep.do(t, tc.call)
			if resp.StatusCode != tc.wantStatus {
				raw, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.wantStatus, raw)
			}
			if resp.StatusCode == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tc.wantCode != "" && tc.call.method != http.MethodHead {
				if got := errorCode(t, resp); got != tc.wantCode {
					t.Errorf("code = %q, want %q", got, tc.wantCode)
				}
			}
			if tc.after != nil {
				tc.after(t)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "uploads")); len(entries) != 2 {
		// the two uploads started above and left open; failed monolithic
		// uploads must not linger
		t.Errorf("uploads left: %d, want 2", len(entries))
	}
}

func wantNoTag(rep *replica, repo, tag string) func(t *testing.T) {
	return func(t *testing.T) {
		if resp := rep.do(t, call{method: http.MethodHead, path: "/v2/" + repo + "/manifests/" + tag}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("tag %s after refused push: status %d, want 404", tag, resp.StatusCode)
		}
	}
}

func wantNoManifest(rep *replica, repo, dgst string) func(t *testing.T) {
	return wantNoTag(rep, repo, dgst)
}

func wantNoBlob(rep *replica, dir, repo, dgst string) func(t *testing.T) {
	return func(t *testing.T) {
		if resp := rep.do(t, call{method: http.MethodHead, path: "/v2/" + repo + "/blobs/" + dgst}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("blob after refused push: status %d, want 404", resp.StatusCode)
		}
		hexPart := strings.TrimPrefix(dgst, "sha256:")
		if _, err := os.Stat(filepath.Join(dir, "sha256", hexPart[:2], hexPart)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("blob file after refused push: %v", err)
		}
	}
}

// TestChunkRefusedLeavesUploadIntact checks that a chunk refused for its
// range, its size or a broken connection leaves the upload at its last good
// offset, from which it completes.
func TestChunkRefusedLeavesUploadIntact(t *testing.T) {
	meta := oci.NewMemoryMetadata()
	dir := t.TempDir()
	h := oci.NewHandler(oci.Options{Meta: meta, BlobDir: dir, CheckAdmin: checkAdmin, MaxBlobBytes: 100})
	serve := func(method, path string, body io.Reader, header map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, body)
		req.SetBasicAuth("admin", adminPassword)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	rec := serve(http.MethodPost, "/v2/c/r/blobs/uploads/", nil, nil)
	loc := rec.Header().Get("Location")
	blob := []byte("0123456789012345678901234567890123456789") // 40 bytes
	if rec := serve(http.MethodPatch, loc, bytes.NewReader(blob[:10]), map[string]string{"Content-Range": "0-9"}); rec.Code != http.StatusAccepted {
		t.Fatalf("first chunk: %d", rec.Code)
	}
	tests := []struct {
		name       string
		body       io.Reader
		header     map[string]string
		wantStatus int
	}{
		{name: "out of order", body: bytes.NewReader(blob[20:30]), header: map[string]string{"Content-Range": "20-29"}, wantStatus: http.StatusRequestedRangeNotSatisfiable},
		{name: "overlapping", body: bytes.NewReader(blob[5:15]), header: map[string]string{"Content-Range": "5-14"}, wantStatus: http.StatusRequestedRangeNotSatisfiable},
		{name: "short body", body: bytes.NewReader(blob[10:15]), header: map[string]string{"Content-Range": "10-19"}, wantStatus: http.StatusBadRequest},
		{name: "over the size limit", body: bytes.NewReader(make([]byte, 95)), wantStatus: http.StatusRequestEntityTooLarge},
		{name: "connection broken", body: io.MultiReader(bytes.NewReader(blob[10:15]), errReader{}), wantStatus: http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := serve(http.MethodPatch, loc, tc.body, tc.header)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if rec := serve(http.MethodGet, loc, nil, nil); rec.Header().Get("Range") != "0-9" {
				t.Fatalf("upload range after refused chunk = %q, want 0-9", rec.Header().Get("Range"))
			}
		})
	}
	rec = serve(http.MethodPut, loc+"?digest="+sha(blob), bytes.NewReader(blob[10:]), map[string]string{"Content-Range": "10-39"})
	if rec.Code != http.StatusCreated {
		t.Fatalf("finish: %d %s", rec.Code, rec.Body)
	}
	if ok, _ := meta.BlobLinked(context.Background(), "c/r", sha(blob)); !ok {
		t.Fatal("blob not linked after upload")
	}
	if rec := serve(http.MethodGet, loc, nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("finished upload still answers: %d", rec.Code)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDigestMismatchDropsUpload(t *testing.T) {
	rep := newReplica(t, oci.NewMemoryMetadata(), t.TempDir())
	resp := rep.do(t, call{method: http.MethodPost, path: "/v2/d/r/blobs/uploads/"})
	loc := resp.Header.Get("Location")
	rep.do(t, call{method: http.MethodPatch, path: loc, body: []byte("abc")})
	wrong := sha([]byte("abd"))
	if resp := rep.do(t, call{method: http.MethodPut, path: loc + "?digest=" + wrong}); resp.StatusCode != http.StatusBadRequest || errorCode(t, resp) != "DIGEST_INVALID" {
		t.Fatalf("finish with wrong digest: %d", resp.StatusCode)
	}
	for _, d := range []string{wrong, sha([]byte("abc"))} {
		if resp := rep.do(t, call{method: http.MethodHead, path: "/v2/d/r/blobs/" + d}); resp.StatusCode != http.StatusNotFound {
			t.Errorf("blob %s visible after digest mismatch: %d", d, resp.StatusCode)
		}
	}
	if resp := rep.do(t, call{method: http.MethodGet, path: loc}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("upload still open after digest mismatch: %d", resp.StatusCode)
	}
}

func TestNilCheckAdminRefusesPushes(t *testing.T) {
	rep := newReplica(t, oci.NewMemoryMetadata(), t.TempDir(), func(o *oci.Options) { o.CheckAdmin = nil })
	if resp := rep.do(t, call{method: http.MethodPost, path: "/v2/x/blobs/uploads/"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("push with nil CheckAdmin: %d, want 401", resp.StatusCode)
	}
}

func TestPingChallenge(t *testing.T) {
	rep := newReplica(t, oci.NewMemoryMetadata(), t.TempDir(), func(o *oci.Options) { o.PingChallenge = true })
	tests := []struct {
		name       string
		call       call
		wantStatus int
	}{
		{name: "ping anonymous is challenged", call: call{method: http.MethodGet, path: "/v2/", anonymous: true}, wantStatus: http.StatusUnauthorized},
		{name: "ping with credentials", call: call{method: http.MethodGet, path: "/v2/"}, wantStatus: http.StatusOK},
		{name: "pull stays anonymous", call: call{method: http.MethodGet, path: "/v2/_catalog", anonymous: true}, wantStatus: http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rep.do(t, tc.call)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestPruneUploads(t *testing.T) {
	dir := t.TempDir()
	rep := newReplica(t, oci.NewMemoryMetadata(), dir)
	old := rep.do(t, call{method: http.MethodPost, path: "/v2/p/blobs/uploads/"}).Header.Get("Docker-Upload-UUID")
	fresh := rep.do(t, call{method: http.MethodPost, path: "/v2/p/blobs/uploads/"}).Header.Get("Docker-Upload-UUID")
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "uploads", old), past, past); err != nil {
		t.Fatal(err)
	}
	n, err := oci.PruneUploads(dir, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("PruneUploads = %d, %v; want 1", n, err)
	}
	for id, wantStatus := range map[string]int{old: http.StatusNotFound, fresh: http.StatusNoContent} {
		if resp := rep.do(t, call{method: http.MethodGet, path: "/v2/p/blobs/uploads/" + id}); resp.StatusCode != wantStatus {
			t.Errorf("upload %s: %d, want %d", id, resp.StatusCode, wantStatus)
		}
	}
}
