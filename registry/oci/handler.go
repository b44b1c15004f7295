package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Default limits used when Options leaves them zero.
const (
	DefaultMaxManifestBytes int64 = 4 << 20  // the spec asks registries to take at least 4 MiB
	DefaultMaxBlobBytes     int64 = 10 << 30 // 10 GiB
	defaultPageSize               = 1000     // tags/list and _catalog without n
)

// Options configures NewHandler.
type Options struct {
	// Meta holds repositories, manifests, tags and blob links. Required.
	Meta Metadata
	// BlobDir is the content-addressed blob folder, shared by every replica:
	// blobs at <BlobDir>/<algorithm>/<first two hex>/<hex>, uploads in
	// progress at <BlobDir>/uploads/<id>. Required.
	BlobDir string
	// Blobs, if set, keeps finished blobs instead of BlobDir (an S3
	// bucket); uploads in progress stay in BlobDir.
	Blobs BlobStore
	// CheckAdmin reports whether basic-auth credentials may push and delete.
	// Nil refuses every push and delete. Pulls are anonymous. Unused when
	// Authorizer is set.
	CheckAdmin func(user, pass string) bool
	// Authorizer, if set, decides every request, the API root included,
	// in place of CheckAdmin and PingChallenge.
	Authorizer Authorizer
	// MaxManifestBytes bounds a manifest body (default DefaultMaxManifestBytes).
	MaxManifestBytes int64
	// MaxBlobBytes bounds a blob (default DefaultMaxBlobBytes).
	MaxBlobBytes int64
	// Logger receives one debug record per request and warnings for server
	// errors. Nil discards.
	Logger *slog.Logger
	// PingChallenge makes GET /v2/ without credentials answer 401 with a
	// Basic challenge. Clients that send credentials only after such a
	// challenge (the Docker CLI) need it to push; with it, the Docker CLI
	// also needs credentials to pull. Other requests are unaffected: pulls
	// stay anonymous for clients that go ahead without credentials.
	PingChallenge bool
	// OnEvent, if set, is called synchronously after each successful push,
	// mount or delete. It must not block.
	OnEvent func(Event)
}

// Event describes a successful change made through the handler.
type Event struct {
	Action string // "push", "mount" or "delete"
	Kind   string // "blob", "manifest" or "tag"
	Repo   string
	Digest string // "" for a tag delete
	Tag    string // "" unless a tag was pushed or deleted
	Size   int64
}

type handler struct {
	meta        Metadata
	blobs       *blobStore
	checkAdmin  func(user, pass string) bool
	maxManifest int64
	maxBlob     int64
	log         *slog.Logger
	onEvent     func(Event)
	challenge   bool
	auth        Authorizer
}

// NewHandler returns the OCI distribution API. Mount it at "/v2/" without
// stripping the prefix: it routes on the full request path.
func NewHandler(opts Options) http.Handler {
	h := &handler{
		meta:        opts.Meta,
		blobs:       &blobStore{dir: opts.BlobDir, remote: opts.Blobs},
		checkAdmin:  opts.CheckAdmin,
		maxManifest: opts.MaxManifestBytes,
		maxBlob:     opts.MaxBlobBytes,
		log:         opts.Logger,
		onEvent:     opts.OnEvent,
		challenge:   opts.PingChallenge,
		auth:        opts.Authorizer,
	}
	if h.maxManifest <= 0 {
		h.maxManifest = DefaultMaxManifestBytes
	}
	if h.maxBlob <= 0 {
		h.maxBlob = DefaultMaxBlobBytes
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	return h
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps io.Copy's sendfile path for blob downloads.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := io.Copy(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	h.route(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h.log.LogAttrs(r.Context(), slog.LevelDebug, "oci request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", w.status), slog.Int64("bytes", w.bytes),
		slog.Duration("elapsed", time.Since(start)))
}

// route dispatches on the path, read from its end: repository names may
// hold slashes, and no reference or digest does.
func (h *handler) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/v2" || p == "/v2/" {
		h.ping(w, r)
		return
	}
	if p == "/v2/_catalog" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, r, errUnsupported)
			return
		}
		h.allow(w, r, Access{Type: "registry", Name: "catalog", Action: "*"}, func() { h.catalog(w, r) })
		return
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		writeError(w, r, errNotFoundRoute)
		return
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	var name, kind, ref string
	switch {
	case n >= 3 && segs[n-2] == "tags" && segs[n-1] == "list":
		name, kind = strings.Join(segs[:n-2], "/"), "tags"
	case n >= 3 && segs[n-2] == "manifests":
		name, kind, ref = strings.Join(segs[:n-2], "/"), "manifests", segs[n-1]
	case n >= 3 && segs[n-2] == "referrers":
		name, kind, ref = strings.Join(segs[:n-2], "/"), "referrers", segs[n-1]
	case n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads":
		name, kind, ref = strings.Join(segs[:n-3], "/"), "upload", segs[n-1]
	case n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads":
		name, kind = strings.Join(segs[:n-2], "/"), "upload"
	case n >= 3 && segs[n-2] == "blobs":
		name, kind, ref = strings.Join(segs[:n-2], "/"), "blobs", segs[n-1]
	default:
		writeError(w, r, errNotFoundRoute)
		return
	}
	if !validName(name) {
		writeError(w, r, errNameInvalid.with(map[string]string{"name": name}))
		return
	}
	method := r.Method
	switch kind {
	case "tags":
		if method != http.MethodGet && method != http.MethodHead {
			writeError(w, r, errUnsupported)
			return
		}
		h.allow(w, r, pull(name), func() { h.tagsList(w, r, name) })
	case "referrers":
		if method != http.MethodGet && method != http.MethodHead {
			writeError(w, r, errUnsupported)
			return
		}
		h.allow(w, r, pull(name), func() { h.referrers(w, r, name, ref) })
	case "manifests":
		switch method {
		case http.MethodGet, http.MethodHead:
			h.allow(w, r, pull(name), func() { h.getManifest(w, r, name, ref) })
		case http.MethodPut:
			h.allow(w, r, push(name), func() { h.putManifest(w, r, name, ref) })
		case http.MethodDelete:
			h.allow(w, r, Access{Type: "repository", Name: name, Action: "delete"}, func() { h.deleteManifest(w, r, name, ref) })
		default:
			writeError(w, r, errUnsupported)
		}
	case "blobs":
		switch method {
		case http.MethodGet, http.MethodHead:
			h.allow(w, r, pull(name), func() { h.getBlob(w, r, name, ref) })
		case http.MethodDelete:
			h.allow(w, r, Access{Type: "repository", Name: name, Action: "delete"}, func() { h.deleteBlob(w, r, name, ref) })
		default:
			writeError(w, r, errUnsupported)
		}
	case "upload":
		if ref == "" {
			if method != http.MethodPost {
				writeError(w, r, errUnsupported)
				return
			}
			h.allow(w, r, push(name), func() { h.startUpload(w, r, name) })
			return
		}
		switch method {
		case http.MethodGet:
			h.allow(w, r, push(name), func() { h.uploadStatus(w, r, name, ref) })
		case http.MethodPatch:
			h.allow(w, r, push(name), func() { h.patchUpload(w, r, name, ref) })
		case http.MethodPut:
			h.allow(w, r, push(name), func() { h.putUpload(w, r, name, ref) })
		case http.MethodDelete:
			h.allow(w, r, push(name), func() { h.cancelUpload(w, r, name, ref) })
		default:
			writeError(w, r, errUnsupported)
		}
	}
}

// ping answers GET /v2/: anonymous callers are welcome; callers presenting
// credentials that do not check out are told so.
func (h *handler) ping(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, r, errUnsupported)
		return
	}
	if h.auth != nil {
		if denied := h.auth.Authorize(r, Access{}); denied != nil {
			writeDenied(w, r, denied)
			return
		}
	} else if (h.challenge || r.Header.Get("Authorization") != "") && !h.authorized(r) {
		writeError(w, r, errUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, "{}")
	}
}

func (h *handler) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	return ok && h.checkAdmin != nil && h.checkAdmin(user, pass)
}

// allow runs f when the caller may do a: as the Authorizer decides, or
// without one, pulls for anyone and the rest for callers CheckAdmin accepts.
func (h *handler) allow(w http.ResponseWriter, r *http.Request, a Access, f func()) {
	if h.auth != nil {
		if denied := h.auth.Authorize(r, a); denied != nil {
			writeDenied(w, r, denied)
			return
		}
	} else if a.Action != "pull" && a.Type != "registry" && !h.authorized(r) {
		writeError(w, r, errUnauthorized)
		return
	}
	f()
}

// fail answers err: an *apiError as is, anything else as a logged 500.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		writeError(w, r, ae)
		return
	}
	if errors.Is(err, context.Canceled) {
		return
	}
	h.log.LogAttrs(r.Context(), slog.LevelWarn, "oci request failed",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	writeError(w, r, errInternal)
}

func (h *handler) emit(e Event) {
	if h.onEvent != nil {
		h.onEvent(e)
	}
}

// blobStore is the content-addressed blob folder, or, with remote set,
// the folder of uploads in progress beside the store of finished blobs.
type blobStore struct {
	dir    string
	remote BlobStore
}

func (s *blobStore) path(d v1.Hash) string {
	return filepath.Join(s.dir, d.Algorithm, d.Hex[:2], d.Hex)
}

func (s *blobStore) uploadPath(id string) string {
	return filepath.Join(s.dir, "uploads", id)
}

// stat returns the blob's size and time, or an error wrapping
// os.ErrNotExist.
func (s *blobStore) stat(ctx context.Context, d v1.Hash) (BlobInfo, error) {
	if s.remote != nil {
		bi, err := s.remote.Stat(ctx, d.String())
		if errors.Is(err, ErrBlobNotFound) {
			return bi, fmt.Errorf("%w: %w", os.ErrNotExist, err)
		}
		return bi, err
	}
	fi, err := os.Stat(s.path(d))
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: d.String(), Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// open opens the blob for reading and seeking, or returns an error
// wrapping os.ErrNotExist.
func (s *blobStore) open(ctx context.Context, d v1.Hash) (io.ReadSeekCloser, error) {
	if s.remote != nil {
		rc, err := s.remote.Open(ctx, d.String())
		if errors.Is(err, ErrBlobNotFound) {
			return nil, fmt.Errorf("%w: %w", os.ErrNotExist, err)
		}
		return rc, err
	}
	return os.Open(s.path(d))
}
