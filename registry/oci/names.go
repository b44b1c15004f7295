package oci

import (
	"net/http"
	"regexp"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var (
	// nameRE is the spec's repository name grammar.
	nameRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the spec's tag grammar.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

const maxNameLen = 255

func validName(name string) bool {
	return name != "" && len(name) <= maxNameLen && nameRE.MatchString(name)
}

func validTag(tag string) bool { return tagRE.MatchString(tag) }

// parseDigest parses "algorithm:hex" for the algorithms the registry stores
// (sha256, sha512), answering DIGEST_INVALID otherwise.
func parseDigest(s string) (v1.Hash, *apiError) {
	h, err := v1.NewHash(s)
	if err != nil {
		return v1.Hash{}, newError(http.StatusBadRequest, codeDigestInvalid, "invalid digest").with(map[string]string{"digest": s, "reason": err.Error()})
	}
	return h, nil
}

// looksLikeDigest reports whether a manifest reference is meant as a digest
// rather than a tag (tags cannot hold ':').
func looksLikeDigest(ref string) bool {
	for i := 0; i < len(ref); i++ {
		if ref[i] == ':' {
			return true
		}
	}
	return false
}
