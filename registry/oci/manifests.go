package oci

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// getManifest answers GET and HEAD /v2/<name>/manifests/<tag or digest>.
// The stored bytes are served as pushed, with the media type they were
// pushed with.
func (h *handler) getManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	dgst, ok := h.resolve(w, r, name, ref)
	if !ok {
		return
	}
	m, err := h.meta.GetManifest(r.Context(), name, dgst)
	if errors.Is(err, ErrNotFound) {
		writeError(w, r, errManifestUnknown.with(map[string]string{"reference": ref}))
		return
	}
	if err != nil {
		h.fail(w, r, fmt.Errorf("get manifest: %w", err))
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Docker-Content-Digest", m.Digest)
	hdr.Set("ETag", `"`+m.Digest+`"`)
	hdr.Set("Content-Length", strconv.Itoa(len(m.Content)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(m.Content)
	}
}

// resolve turns a manifest reference into a digest, answering the client
// itself when it cannot.
func (h *handler) resolve(w http.ResponseWriter, r *http.Request, name, ref string) (string, bool) {
	if looksLikeDigest(ref) {
		d, aerr := parseDigest(ref)
		if aerr != nil {
			writeError(w, r, aerr)
			return "", false
		}
		return d.String(), true
	}
	if !validTag(ref) {
		writeError(w, r, errManifestUnknown.with(map[string]string{"reference": ref}))
		return "", false
	}
	dgst, err := h.meta.ResolveTag(r.Context(), name, ref)
	if errors.Is(err, ErrNotFound) {
		writeError(w, r, errManifestUnknown.with(map[string]string{"tag": ref}))
		return "", false
	}
	if err != nil {
		h.fail(w, r, fmt.Errorf("resolve tag: %w", err))
		return "", false
	}
	return dgst, true
}

// deleteManifest answers DELETE /v2/<name>/manifests/<tag or digest>: a tag
// is untagged, a digest deletes the manifest and every tag pointing to it.
func (h *handler) deleteManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	var err error
	ev := Event{Action: "delete", Repo: name}
	if looksLikeDigest(ref) {
		d, aerr := parseDigest(ref)
		if aerr != nil {
			writeError(w, r, aerr)
			return
		}
		ev.Kind, ev.Digest = "manifest", d.String()
		err = h.meta.DeleteManifest(r.Context(), name, d.String())
	} else {
		if !validTag(ref) {
			writeError(w, r, errManifestUnknown.with(map[string]string{"reference": ref}))
			return
		}
		ev.Kind, ev.Tag = "tag", ref
		err = h.meta.DeleteTag(r.Context(), name, ref)
	}
	if errors.Is(err, ErrNotFound) {
		writeError(w, r, errManifestUnknown.with(map[string]string{"reference": ref}))
		return
	}
	if err != nil {
		h.fail(w, r, fmt.Errorf("delete manifest: %w", err))
		return
	}
	h.emit(ev)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}

// putManifest answers PUT /v2/<name>/manifests/<tag or digest>. The body is
// checked completely (size, digest, JSON, media type, every referenced blob
// and child manifest present in the repository) before anything is stored;
// the store then takes manifest, links and tag in one transaction.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, name, ref string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxManifest+1))
	if err != nil {
		h.fail(w, r, fmt.Errorf("receive manifest: %w", err))
		return
	}
	if int64(len(body)) > h.maxManifest {
		writeError(w, r, newError(http.StatusRequestEntityTooLarge, codeManifestInvalid,
			fmt.Sprintf("manifest exceeds the limit of %d bytes", h.maxManifest)))
		return
	}
	var tags []string
	var d v1.Hash
	if looksLikeDigest(ref) {
		var aerr *apiError
		if d, aerr = parseDigest(ref); aerr != nil {
			writeError(w, r, aerr)
			return
		}
		hw, _ := v1.Hasher(d.Algorithm)
		hw.Write(body)
		if got := hex.EncodeToString(hw.Sum(nil)); got != d.Hex {
			writeError(w, r, errDigestInvalid.with(map[string]string{"digest": d.String(), "received": d.Algorithm + ":" + got}))
			return
		}
		tags = r.URL.Query()["tag"]
	} else {
		tags = []string{ref}
		var err error
		if d, _, err = v1.SHA256(bytes.NewReader(body)); err != nil {
			h.fail(w, r, fmt.Errorf("hash manifest: %w", err))
			return
		}
	}
	for _, t := range tags {
		if !validTag(t) {
			writeError(w, r, errManifestInvalid.with(map[string]string{"reason": "invalid tag", "tag": t}))
			return
		}
	}
	m, err := h.parseManifest(r, name, body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	m.Digest = d.String()
	if len(tags) == 0 {
		tags = []string{""}
	}
	for _, t := range tags {
		if err := h.meta.PutManifest(r.Context(), name, m, t); err != nil {
			h.fail(w, r, fmt.Errorf("store manifest: %w", err))
			return
		}
		h.emit(Event{Action: "push", Kind: "manifest", Repo: name, Digest: m.Digest, Tag: t, Size: m.Size})
	}
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+name+"/manifests/"+m.Digest)
	hdr.Set("Docker-Content-Digest", m.Digest)
	if m.Subject != "" {
		hdr.Set("OCI-Subject", m.Subject)
	}
	if looksLikeDigest(ref) && tags[0] != "" {
		hdr.Set("OCI-Tag", strings.Join(tags, ", "))
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// manifestProbe reads the fields that tell manifest kinds apart.
type manifestProbe struct {
	SchemaVersion int64           `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Config        json.RawMessage `json:"config"`
	Manifests     json.RawMessage `json:"manifests"`
}

func supportedManifestType(mt types.MediaType) bool {
	return mt.IsImage() || mt.IsIndex()
}

func invalidManifest(reason string) *apiError {
	return errManifestInvalid.with(map[string]string{"reason": reason})
}

// parseManifest validates body and returns the Manifest to store (without
// its digest). Errors are *apiError for the client, others are the server's.
func (h *handler) parseManifest(r *http.Request, name string, body []byte) (Manifest, error) {
	var probe manifestProbe
	if err := json.Unmarshal(body, &probe); err != nil {
		return Manifest{}, invalidManifest("manifest is not a JSON object: " + err.Error())
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	mt := types.MediaType(probe.MediaType)
	switch {
	case supportedManifestType(types.MediaType(ct)):
		if mt != "" && mt != types.MediaType(ct) {
			return Manifest{}, invalidManifest(fmt.Sprintf("mediaType %q does not match Content-Type %q", mt, ct))
		}
		mt = types.MediaType(ct)
	case mt == "" && probe.Manifests != nil:
		mt = types.OCIImageIndex
	case mt == "" && probe.Config != nil:
		mt = types.OCIManifestSchema1
	}
	if !supportedManifestType(mt) {
		return Manifest{}, invalidManifest(fmt.Sprintf("unsupported manifest media type %q", mt))
	}
	if probe.SchemaVersion != 2 {
		return Manifest{}, invalidManifest("schemaVersion must be 2")
	}
	m := Manifest{MediaType: string(mt), Size: int64(len(body)), Content: body}
	ctx := r.Context()
	if mt.IsImage() {
		var im v1.Manifest
		if err := json.Unmarshal(body, &im); err != nil {
			return Manifest{}, invalidManifest(err.Error())
		}
		if im.Config.Digest.Algorithm == "" {
			return Manifest{}, invalidManifest("config descriptor has no digest")
		}
		seen := map[string]bool{}
		descs := append([]v1.Descriptor{im.Config}, im.Layers...)
		for i, desc := range descs {
			if desc.Digest.Algorithm == "" {
				return Manifest{}, invalidManifest(fmt.Sprintf("layer %d has no digest", i-1))
			}
			dg := desc.Digest.String()
			if seen[dg] || !desc.MediaType.IsDistributable() {
				continue // non-distributable layers live elsewhere
			}
			seen[dg] = true
			linked, err := h.meta.BlobLinked(ctx, name, dg)
			if err != nil {
				return Manifest{}, fmt.Errorf("check blob link: %w", err)
			}
			if !linked {
				return Manifest{}, errManifestBlob.with(map[string]string{"digest": dg})
			}
			m.Blobs = append(m.Blobs, dg)
		}
		if im.Subject != nil {
			m.Subject = im.Subject.Digest.String()
		}
		m.ArtifactType = im.ArtifactType
		if m.ArtifactType == "" {
			m.ArtifactType = string(im.Config.MediaType)
		}
		return m, nil
	}
	var ix v1.IndexManifest
	if err := json.Unmarshal(body, &ix); err != nil {
		return Manifest{}, invalidManifest(err.Error())
	}
	seen := map[string]bool{}
	for i, desc := range ix.Manifests {
		if desc.Digest.Algorithm == "" {
			return Manifest{}, invalidManifest(fmt.Sprintf("manifest %d has no digest", i))
		}
		dg := desc.Digest.String()
		if seen[dg] {
			continue
		}
		seen[dg] = true
		_, err := h.meta.GetManifest(ctx, name, dg)
		if errors.Is(err, ErrNotFound) {
			return Manifest{}, errManifestBlob.with(map[string]string{"digest": dg})
		}
		if err != nil {
			return Manifest{}, fmt.Errorf("check child manifest: %w", err)
		}
		m.Children = append(m.Children, dg)
	}
	if ix.Subject != nil {
		m.Subject = ix.Subject.Digest.String()
	}
	m.ArtifactType = ix.ArtifactType
	return m, nil
}
