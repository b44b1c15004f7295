package oci

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// An upload in progress is one file, <BlobDir>/uploads/<id>, holding the
// bytes received so far: its size is the upload's offset, so any replica
// sharing BlobDir can continue it. The id is 32 random hex digits followed by
// 16 hex digits of the SHA-256 of the repository name, which binds the
// upload to its repository without a second file. Work on one upload is
// serialized with an advisory lock on the file; a finished upload is renamed
// into place, so a request that opened it before checks, once it holds the
// lock, that the path still names the same file.

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{48}$`)

// repoTag is the part of an upload id naming its repository.
func repoTag(repo string) string {
	sum := sha256.Sum256([]byte(repo))
	return hex.EncodeToString(sum[:8])
}

// upload is an open, locked upload.
type upload struct {
	id   string
	path string
	f    *os.File
	size int64 // bytes received so far
}

func (u *upload) close() {
	_ = unlockFile(u.f)
	_ = u.f.Close()
}

// createUpload makes a new empty upload for repo.
func (s *blobStore) createUpload(repo string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("create upload id: %w", err)
	}
	id := hex.EncodeToString(b[:]) + repoTag(repo)
	path := s.uploadPath(id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
			f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		}
	}
	if err != nil {
		return "", fmt.Errorf("create upload: %w", err)
	}
	_ = f.Close()
	return id, nil
}

var errNoUpload = errors.New("no such upload")

// openUpload opens and locks upload id of repo; errNoUpload if there is none.
func (s *blobStore) openUpload(id, repo string) (*upload, error) {
	if !uploadIDRE.MatchString(id) || id[32:] != repoTag(repo) {
		return nil, errNoUpload
	}
	path := s.uploadPath(id)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoUpload
	}
	if err != nil {
		return nil, fmt.Errorf("open upload: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock upload: %w", err)
	}
	u := &upload{id: id, path: path, f: f}
	held, err1 := f.Stat()
	named, err2 := os.Stat(path)
	if err1 != nil || err2 != nil || !os.SameFile(held, named) {
		u.close()
		return nil, errNoUpload
	}
	u.size = held.Size()
	return u, nil
}

// PruneUploads removes uploads under blobDir that received nothing for
// longer than idle, returning how many it removed. Run it now and then on
// one replica.
func PruneUploads(blobDir string, idle time.Duration) (int, error) {
	root := filepath.Join(blobDir, "uploads")
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("prune uploads: %w", err)
	}
	cutoff := time.Now().Add(-idle)
	removed := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err == nil {
			removed++
		}
	}
	return removed, nil
}

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

func blobLocation(name string, d v1.Hash) string { return "/v2/" + name + "/blobs/" + d.String() }

// rangeHeader is the spec's inclusive range of bytes received: "0-0" also
// for an empty upload.
func rangeHeader(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

func setUploadHeaders(w http.ResponseWriter, name, id string, size int64) {
	hdr := w.Header()
	hdr.Set("Location", uploadLocation(name, id))
	hdr.Set("Range", rangeHeader(size))
	hdr.Set("Docker-Upload-UUID", id)
}

// parseContentRange parses "start-end" (also "bytes=start-end" and
// "bytes start-end/total").
func parseContentRange(s string) (start, end int64, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "bytes=")
	s = strings.TrimPrefix(s, "bytes ")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}

// startUpload answers POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest=) or a new session.
func (h *handler) startUpload(w http.ResponseWriter, r *http.Request, name string) {
	q := r.URL.Query()
	if mount := q.Get("mount"); mount != "" {
		if h.mount(w, r, name, mount, q.Get("from")) {
			return
		}
	} else if dq := q.Get("digest"); dq != "" {
		d, aerr := parseDigest(dq)
		if aerr != nil {
			writeError(w, r, aerr)
			return
		}
		id, err := h.blobs.createUpload(name)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		u, err := h.blobs.openUpload(id, name)
		if err != nil {
			_ = os.Remove(h.blobs.uploadPath(id))
			h.fail(w, r, err)
			return
		}
		defer u.close()
		if err := h.finish(w, r, name, u, d); err != nil {
			_ = os.Remove(u.path)
			h.fail(w, r, err)
		}
		return
	}
	id, err := h.blobs.createUpload(name)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	setUploadHeaders(w, name, id, 0)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// mount links a blob of repository from (or, with from empty, any blob the
// registry holds) into name. It reports false when it did not answer, and
// the caller then starts an ordinary upload, as the spec asks.
func (h *handler) mount(w http.ResponseWriter, r *http.Request, name, mount, from string) bool {
	d, aerr := parseDigest(mount)
	if aerr != nil {
		return false
	}
	if from != "" {
		if !validName(from) {
			return false
		}
		if h.auth != nil && h.auth.Authorize(r, pull(from)) != nil {
			return false // the caller may not read from: an ordinary upload
		}
		linked, err := h.meta.BlobLinked(r.Context(), from, d.String())
		if err != nil || !linked {
			return false
		}
	}
	bi, err := h.blobs.stat(r.Context(), d)
	if err != nil {
		return false
	}
	size := bi.Size
	h.blobs.touch(r.Context(), d, bi.Modified)
	if err := h.meta.LinkBlob(r.Context(), name, d.String(), size); err != nil {
		h.fail(w, r, fmt.Errorf("link mounted blob: %w", err))
		return true
	}
	h.emit(Event{Action: "mount", Kind: "blob", Repo: name, Digest: d.String(), Size: size})
	hdr := w.Header()
	hdr.Set("Location", blobLocation(name, d))
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return true
}

// openFor opens upload id of name, answering BLOB_UPLOAD_UNKNOWN if it has none.
func (h *handler) openFor(w http.ResponseWriter, r *http.Request, name, id string) *upload {
	u, err := h.blobs.openUpload(id, name)
	if errors.Is(err, errNoUpload) {
		writeError(w, r, errUploadUnknown.with(map[string]string{"upload": id}))
		return nil
	}
	if err != nil {
		h.fail(w, r, err)
		return nil
	}
	return u
}

// uploadStatus answers GET /v2/<name>/blobs/uploads/<id>.
func (h *handler) uploadStatus(w http.ResponseWriter, r *http.Request, name, id string) {
	u := h.openFor(w, r, name, id)
	if u == nil {
		return
	}
	defer u.close()
	setUploadHeaders(w, name, id, u.size)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// cancelUpload answers DELETE /v2/<name>/blobs/uploads/<id>.
func (h *handler) cancelUpload(w http.ResponseWriter, r *http.Request, name, id string) {
	u := h.openFor(w, r, name, id)
	if u == nil {
		return
	}
	defer u.close()
	if err := os.Remove(u.path); err != nil {
		h.fail(w, r, fmt.Errorf("cancel upload: %w", err))
		return
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
}

// checkRange answers 416 (and returns false) when the request's
// Content-Range does not continue the upload; want is the chunk length it
// announces, or -1 without the header.
func (h *handler) checkRange(w http.ResponseWriter, r *http.Request, name string, u *upload) (want int64, ok bool) {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return -1, true
	}
	start, end, valid := parseContentRange(cr)
	if !valid || start != u.size {
		setUploadHeaders(w, name, u.id, u.size)
		writeError(w, r, newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
			"content range does not continue the upload").with(map[string]string{"content-range": cr, "range": rangeHeader(u.size)}))
		return 0, false
	}
	want = end - start + 1
	if r.ContentLength >= 0 && r.ContentLength != want {
		writeError(w, r, errUploadInvalid.with(map[string]string{"reason": "content length does not match content range"}))
		return 0, false
	}
	return want, true
}

// appendBody appends the request body to u (also feeding hw if not nil).
// On any failure the upload is cut back to where it was, so a client can
// retry the chunk; the error is an *apiError where the client is to blame.
func (h *handler) appendBody(w http.ResponseWriter, r *http.Request, u *upload, want int64, hw hash.Hash) (int64, error) {
	if _, err := u.f.Seek(u.size, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek upload: %w", err)
	}
	limit := h.maxBlob - u.size
	var dst io.Writer = u.f
	if hw != nil {
		dst = io.MultiWriter(u.f, hw)
	}
	body := &bodyReader{r: r.Body, rc: http.NewResponseController(w)}
	n, err := io.Copy(dst, io.LimitReader(body, limit+1))
	switch {
	case err != nil && body.err != nil:
		// The client went away or stalled: its fault, not a server error.
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "upload body cut short",
			slog.String("path", r.URL.Path), slog.Int64("received", n), slog.String("error", body.err.Error()))
		err = errUploadInvalid.with(map[string]string{"reason": "request body cut short"})
	case err != nil:
		err = fmt.Errorf("receive blob data: %w", err)
	case n > limit:
		err = newError(http.StatusRequestEntityTooLarge, codeSizeInvalid,
			fmt.Sprintf("blob exceeds the limit of %d bytes", h.maxBlob))
	case want >= 0 && n != want:
		err = errUploadInvalid.with(map[string]string{"reason": "body shorter or longer than content range"})
	}
	if err != nil {
		if terr := u.f.Truncate(u.size); terr != nil {
			return 0, errors.Join(err, fmt.Errorf("truncate upload: %w", terr))
		}
		return 0, err
	}
	u.size += n
	return n, nil
}

// patchUpload answers PATCH /v2/<name>/blobs/uploads/<id>: one chunk, with
// Content-Range, or a stream without.
func (h *handler) patchUpload(w http.ResponseWriter, r *http.Request, name, id string) {
	u := h.openFor(w, r, name, id)
	if u == nil {
		return
	}
	defer u.close()
	want, ok := h.checkRange(w, r, name, u)
	if !ok {
		return
	}
	if _, err := h.appendBody(w, r, u, want, nil); err != nil {
		h.fail(w, r, err)
		return
	}
	setUploadHeaders(w, name, id, u.size)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// putUpload answers PUT /v2/<name>/blobs/uploads/<id>?digest=: the last
// chunk, if any, then the blob is verified and made visible.
func (h *handler) putUpload(w http.ResponseWriter, r *http.Request, name, id string) {
	d, aerr := parseDigest(r.URL.Query().Get("digest"))
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	u := h.openFor(w, r, name, id)
	if u == nil {
		return
	}
	defer u.close()
	if err := h.finish(w, r, name, u, d); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Code == codeDigestInvalid {
			_ = os.Remove(u.path) // the bytes can never become this blob
		}
		h.fail(w, r, err)
	}
}

// finish appends the request body to u, verifies the whole upload against
// d, moves it into place (fsync, rename, fsync folder), links it to name and
// answers 201. A returned error has not been answered yet.
func (h *handler) finish(w http.ResponseWriter, r *http.Request, name string, u *upload, d v1.Hash) error {
	want, ok := h.checkRange(w, r, name, u)
	if !ok {
		return nil
	}
	hw, err := v1.Hasher(d.Algorithm)
	if err != nil {
		return newError(http.StatusBadRequest, codeDigestInvalid, "unsupported digest algorithm")
	}
	if _, err := io.Copy(hw, io.NewSectionReader(u.f, 0, u.size)); err != nil {
		return fmt.Errorf("hash upload: %w", err)
	}
	if _, err := h.appendBody(w, r, u, want, hw); err != nil {
		return err
	}
	if got := hex.EncodeToString(hw.Sum(nil)); got != d.Hex {
		return errDigestInvalid.with(map[string]string{"digest": d.String(), "received": d.Algorithm + ":" + got})
	}
	if err := u.f.Sync(); err != nil {
		return fmt.Errorf("sync upload: %w", err)
	}
	if err := h.blobs.commit(r.Context(), u, d); err != nil {
		return err
	}
	if err := h.meta.LinkBlob(r.Context(), name, d.String(), u.size); err != nil {
		return fmt.Errorf("link blob: %w", err)
	}
	h.emit(Event{Action: "push", Kind: "blob", Repo: name, Digest: d.String(), Size: u.size})
	hdr := w.Header()
	hdr.Set("Location", blobLocation(name, d))
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// syncDir makes a rename in dir durable; failures only weaken durability.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		_ = f.Close()
	}
}

// commit makes a verified upload the blob d: renamed into place in the
// blob folder, or streamed to the blob store (verified again on the way,
// multipart for large blobs) and then removed.
func (s *blobStore) commit(ctx context.Context, u *upload, d v1.Hash) error {
	if s.remote != nil {
		vr, err := VerifyingReader(io.NewSectionReader(u.f, 0, u.size), d.String())
		if err != nil {
			return err
		}
		if err := s.remote.Put(ctx, d.String(), vr, u.size); err != nil {
			return fmt.Errorf("store blob: %w", err)
		}
		if err := os.Remove(u.path); err != nil {
			return fmt.Errorf("remove finished upload: %w", err)
		}
		return nil
	}
	target := s.path(d)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("create blob folder: %w", err)
	}
	if err := os.Rename(u.path, target); err != nil {
		return fmt.Errorf("move blob into place: %w", err)
	}
	syncDir(filepath.Dir(target))
	return nil
}

// bodyIdle is how long an upload's body may send nothing before the
// request is cut: a large blob may take any time, a stalled one may not.
const bodyIdle = time.Minute

// bodyReader reads a request body, pushing the connection's read deadline
// bodyIdle ahead before each read, and remembers a read error (the
// client's doing) apart from write errors (the server's).
type bodyReader struct {
	r        io.Reader
	rc       *http.ResponseController
	deadline time.Time
	err      error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	// Pushing the deadline costs a little: do it when half of it is spent.
	if now := time.Now(); b.deadline.Sub(now) < bodyIdle/2 {
		b.deadline = now.Add(bodyIdle)
		_ = b.rc.SetReadDeadline(b.deadline)
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}
