package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pageParams reads n and last. Without n a page holds defaultPageSize
// entries; a larger n is cut to maxPageSize (the Link header then leads on).
func pageParams(r *http.Request) (n int, last string, aerr *apiError) {
	q := r.URL.Query()
	last = q.Get("last")
	n = defaultPageSize
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, "", errPaginationN.with(map[string]string{"n": s})
		}
		n = min(v, maxPageSize)
	}
	return n, last, nil
}

const maxPageSize = 10000

// nextLink sets the Link header to the page after last.
func nextLink(w http.ResponseWriter, path string, n int, last string) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

func writeJSON(w http.ResponseWriter, r *http.Request, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, r, errInternal)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// tagsList answers GET /v2/<name>/tags/list?n=&last=.
func (h *handler) tagsList(w http.ResponseWriter, r *http.Request, name string) {
	n, last, aerr := pageParams(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	tags := []string{}
	if n > 0 {
		got, err := h.meta.Tags(r.Context(), name, last, n+1)
		if errors.Is(err, ErrNotFound) {
			writeError(w, r, errNameUnknown.with(map[string]string{"name": name}))
			return
		}
		if err != nil {
			h.fail(w, r, fmt.Errorf("list tags: %w", err))
			return
		}
		if len(got) > n {
			got = got[:n]
			nextLink(w, "/v2/"+name+"/tags/list", n, got[n-1])
		}
		tags = append(tags, got...)
	}
	writeJSON(w, r, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{name, tags})
}

// catalog answers GET /v2/_catalog?n=&last=.
func (h *handler) catalog(w http.ResponseWriter, r *http.Request) {
	n, last, aerr := pageParams(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	repos := []string{}
	if n > 0 {
		got, err := h.meta.Repositories(r.Context(), last, n+1)
		if err != nil {
			h.fail(w, r, fmt.Errorf("list repositories: %w", err))
			return
		}
		if len(got) > n {
			got = got[:n]
			nextLink(w, "/v2/_catalog", n, got[n-1])
		}
		repos = append(repos, got...)
	}
	writeJSON(w, r, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{repos})
}

// referrers answers GET /v2/<name>/referrers/<digest>?artifactType=: an OCI
// index of the manifests whose subject is digest (empty, not 404, when none).
func (h *handler) referrers(w http.ResponseWriter, r *http.Request, name, ref string) {
	d, aerr := parseDigest(ref)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	ms, err := h.meta.Referrers(r.Context(), name, d.String())
	if err != nil && !errors.Is(err, ErrNotFound) {
		h.fail(w, r, fmt.Errorf("list referrers: %w", err))
		return
	}
	filter := r.URL.Query().Get("artifactType")
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, m := range ms {
		if filter != "" && m.ArtifactType != filter {
			continue
		}
		dg, err := v1.NewHash(m.Digest)
		if err != nil {
			continue
		}
		var ann struct {
			Annotations map[string]string `json:"annotations"`
		}
		_ = json.Unmarshal(m.Content, &ann)
		idx.Manifests = append(idx.Manifests, v1.Descriptor{
			MediaType:    types.MediaType(m.MediaType),
			Size:         m.Size,
			Digest:       dg,
			ArtifactType: m.ArtifactType,
			Annotations:  ann.Annotations,
		})
	}
	writeJSON(w, r, string(types.OCIImageIndex), idx)
}
