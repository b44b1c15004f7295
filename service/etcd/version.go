package etcd

import (
	"strconv"
	"strings"
)

// semver is the numeric part of an etcd version such as 3.6.16 or 3.6.0.
type semver struct{ major, minor, patch int }

// parseSemver reads MAJOR.MINOR.PATCH, ignoring a leading "v" and any
// pre-release or build suffix.
func parseSemver(s string) (semver, bool) {
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return semver{}, false
		}
		n[i] = v
	}
	return semver{n[0], n[1], n[2]}, true
}

func (a semver) less(b semver) bool {
	if a.major != b.major {
		return a.major < b.major
	}
	if a.minor != b.minor {
		return a.minor < b.minor
	}
	return a.patch < b.patch
}

// versionLess orders two versions numerically; an unparsable version
// sorts first.
func versionLess(a, b string) bool {
	va, oka := parseSemver(a)
	vb, okb := parseSemver(b)
	switch {
	case !oka:
		return okb
	case !okb:
		return false
	}
	return va.less(vb)
}

// atLeastMinor reports whether version is MAJOR.MINOR.* or later.
func atLeastMinor(version string, major, minor int) bool {
	v, ok := parseSemver(version)
	if !ok {
		return false
	}
	return !v.less(semver{major, minor, 0})
}
