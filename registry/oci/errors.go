package oci

import (
	"encoding/json"
	"net/http"
)

// Error codes of the OCI distribution specification.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
	codeDenied              = "DENIED"
)

// apiError is an error answered to the client: an HTTP status and one entry
// of the spec's {"errors":[...]} body.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

func (e *apiError) with(detail any) *apiError {
	c := *e
	c.Detail = detail
	return &c
}

// writeError writes e as the spec's JSON error body. HEAD answers carry no body.
func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	if e.Status == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="ladder-registry"`)
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(struct {
		Errors []*apiError `json:"errors"`
	}{[]*apiError{e}})
	if r.Method == http.MethodHead {
		w.WriteHeader(e.Status)
		return
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(append(body, '\n'))
}

var (
	errUnauthorized    = newError(http.StatusUnauthorized, codeUnauthorized, "authentication required")
	errNameInvalid     = newError(http.StatusBadRequest, codeNameInvalid, "invalid repository name")
	errNameUnknown     = newError(http.StatusNotFound, codeNameUnknown, "repository name not known to registry")
	errDigestInvalid   = newError(http.StatusBadRequest, codeDigestInvalid, "provided digest did not match uploaded content")
	errBlobUnknown     = newError(http.StatusNotFound, codeBlobUnknown, "blob unknown to registry")
	errUploadUnknown   = newError(http.StatusNotFound, codeBlobUploadUnknown, "blob upload unknown to registry")
	errUploadInvalid   = newError(http.StatusBadRequest, codeBlobUploadInvalid, "blob upload invalid")
	errManifestUnknown = newError(http.StatusNotFound, codeManifestUnknown, "manifest unknown")
	errManifestInvalid = newError(http.StatusBadRequest, codeManifestInvalid, "manifest invalid")
	errManifestBlob    = newError(http.StatusBadRequest, codeManifestBlobUnknown, "manifest references a manifest or blob unknown to the repository")
	errUnsupported     = newError(http.StatusMethodNotAllowed, codeUnsupported, "the operation is unsupported")
	errNotFoundRoute   = newError(http.StatusNotFound, codeUnsupported, "no such endpoint")
	errPaginationN     = newError(http.StatusBadRequest, codeUnsupported, "invalid pagination parameter n")
	errInternal        = newError(http.StatusInternalServerError, "INTERNAL", "internal server error")
)
