package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// getBlob answers GET and HEAD /v2/<name>/blobs/<digest>, with Range support.
func (h *handler) getBlob(w http.ResponseWriter, r *http.Request, name, ref string) {
	d, aerr := parseDigest(ref)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	linked, err := h.meta.BlobLinked(r.Context(), name, d.String())
	if err != nil {
		h.fail(w, r, fmt.Errorf("check blob link: %w", err))
		return
	}
	if !linked {
		writeError(w, r, errBlobUnknown.with(map[string]string{"digest": d.String()}))
		return
	}
	bi, err := h.blobs.stat(r.Context(), d)
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, r, errBlobUnknown.with(map[string]string{"digest": d.String()}))
		return
	}
	if err != nil {
		h.fail(w, r, fmt.Errorf("stat blob: %w", err))
		return
	}
	hdr := w.Header()
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("ETag", `"`+d.String()+`"`)
	hdr.Set("Cache-Control", "max-age=31536000")
	h.blobs.touch(r.Context(), d, bi.Modified)
	if r.Method == http.MethodHead {
		hdr.Set("Content-Length", strconv.FormatInt(bi.Size, 10))
		hdr.Set("Accept-Ranges", "bytes")
		w.WriteHeader(http.StatusOK)
		return
	}
	f, err := h.blobs.open(r.Context(), d)
	if errors.Is(err, os.ErrNotExist) {
		writeError(w, r, errBlobUnknown.with(map[string]string{"digest": d.String()}))
		return
	}
	if err != nil {
		h.fail(w, r, fmt.Errorf("open blob: %w", err))
		return
	}
	defer f.Close()
	// The content never changes, so no modification time: ServeContent then
	// answers Range requests and skips the If-Modified-Since dance.
	http.ServeContent(w, r, "", time.Time{}, f)
}

// deleteBlob answers DELETE /v2/<name>/blobs/<digest>: the blob is unlinked
// from the repository; its file stays for the other repositories.
func (h *handler) deleteBlob(w http.ResponseWriter, r *http.Request, name, ref string) {
	d, aerr := parseDigest(ref)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	u, ok := h.meta.(BlobUnlinker)
	if !ok {
		writeError(w, r, errUnsupported)
		return
	}
	if br, ok := h.meta.(BlobReferencer); ok {
		by, err := br.BlobReferenced(r.Context(), name, d.String())
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if by != "" {
			writeError(w, r, newError(http.StatusConflict, codeDenied,
				"blob is referenced by a manifest: delete the manifest first").with(map[string]string{"digest": d.String(), "manifest": by}))
			return
		}
	}
	if err := u.UnlinkBlob(r.Context(), name, d.String()); err != nil {
		if errors.Is(err, ErrNotFound) {
			writeError(w, r, errBlobUnknown.with(map[string]string{"digest": d.String()}))
			return
		}
		h.fail(w, r, fmt.Errorf("unlink blob: %w", err))
		return
	}
	h.emit(Event{Action: "delete", Kind: "blob", Repo: name, Digest: d.String()})
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// touchAfter is how old a blob's time may grow before a client's use of it
// (HEAD, GET, mount) brings it up to date: the garbage collector keeps
// blobs used lately, as a push that found a blob there is about to
// reference it.
const touchAfter = 10 * time.Minute

// touch brings blob d's time, mod, up to date when it is older than
// touchAfter, in the folder or the blob store. Failing only weakens the
// collector's guess, so it is not an error.
func (s *blobStore) touch(ctx context.Context, d v1.Hash, mod time.Time) {
	if now := time.Now(); now.Sub(mod) > touchAfter {
		if s.remote != nil {
			_ = s.remote.Touch(ctx, d.String())
			return
		}
		_ = os.Chtimes(s.path(d), now, now)
	}
}
