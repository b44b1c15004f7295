package oci

import (
	"net/http"
	"strconv"
	"time"
)

// Access is one thing a request asks to do, in the terms of the
// distribution token specification's resource scopes.
type Access struct {
	// Type is "repository" or "registry"; empty for the API root (GET /v2/),
	// which asks for nothing but a known caller.
	Type string
	// Name is the repository, or "catalog".
	Name string
	// Action is "pull", "push", "delete" or "*".
	Action string
}

// Scope is the access as a token scope: repository:team/app:pull. Empty for
// the API root.
func (a Access) Scope() string {
	if a.Type == "" {
		return ""
	}
	return a.Type + ":" + a.Name + ":" + a.Action
}

func pull(name string) Access { return Access{Type: "repository", Name: name, Action: "pull"} }

func push(name string) Access { return Access{Type: "repository", Name: name, Action: "push"} }

// Denial refuses a request.
type Denial struct {
	// Status is 401 (the caller must authenticate, or authenticate as
	// someone allowed), 403 (known and not allowed) or 429 (too many failed
	// logins: wait RetryAfter).
	Status int
	// Challenge is the WWW-Authenticate header of a 401.
	Challenge  string
	RetryAfter time.Duration
	Message    string
}

// Authorizer decides whether a request may do what it asks.
type Authorizer interface {
	// Authorize returns nil when r may do a, and the answer to give otherwise.
	Authorize(r *http.Request, a Access) *Denial
}

// writeDenied answers a refused request with the spec's error body.
func writeDenied(w http.ResponseWriter, r *http.Request, d *Denial) {
	e := errUnauthorized
	switch d.Status {
	case http.StatusTooManyRequests:
		e = newError(http.StatusTooManyRequests, codeTooManyRequests, "too many failed logins")
		secs := int(d.RetryAfter.Round(time.Second) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	case http.StatusForbidden:
		e = newError(http.StatusForbidden, codeDenied, "requested access to the resource is denied")
	default:
		if d.Challenge != "" {
			w.Header().Set("WWW-Authenticate", d.Challenge)
		}
	}
	if d.Message != "" {
		e = &apiError{Status: e.Status, Code: e.Code, Message: d.Message}
	}
	writeError(w, r, e)
}
