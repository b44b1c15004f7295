package oci

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"
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
	size, err := h.blobs.stat(r.Context(), d)
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
	if r.Method == http.MethodHead {
		hdr.Set("Content-Length", strconv.FormatInt(size, 10))
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
