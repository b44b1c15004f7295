package policy

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/Masterminds/semver/v3"
)

var (
	numericCore   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)
	leadingZeroes = regexp.MustCompile(`(^|\.)0[0-9]`)
)

// Parse reads a SemVer 2.0 version: MAJOR.MINOR.PATCH[-pre][+build], with an
// optional leading "v". Everything else is an error that says what is
// expected; nothing is coerced ("2.2" is not 2.2.0).
func Parse(s string) (*semver.Version, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty: expected MAJOR.MINOR.PATCH, for example 2.3.1", ErrInvalidVersion)
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return nil, fmt.Errorf("%w %q: contains white space: expected MAJOR.MINOR.PATCH, for example 2.3.1", ErrInvalidVersion, s)
	}
	body := strings.TrimPrefix(s, "v")
	core := body
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	if numericCore.MatchString(core) {
		if n := strings.Count(core, ".") + 1; n != 3 {
			return nil, fmt.Errorf("%w %q: has %d numeric parts: expected all three of MAJOR.MINOR.PATCH, for example %s",
				ErrInvalidVersion, s, n, example(core))
		}
		if leadingZeroes.MatchString(core) {
			return nil, fmt.Errorf("%w %q: a number has a leading zero, which SemVer forbids: write %s",
				ErrInvalidVersion, s, trimZeroes(core)+body[len(core):])
		}
	} else if core == body && !strings.ContainsAny(core, ".0123456789") {
		return nil, fmt.Errorf("%w %q: a name, not a version: ladder needs an exact release such as 2.3.1", ErrInvalidVersion, s)
	}
	v, err := semver.StrictNewVersion(body)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v: expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], for example 2.3.1 or 3.2.0-rc.1",
			ErrInvalidVersion, s, err)
	}
	return v, nil
}

// MustParse is Parse for constants; it panics on error.
func MustParse(s string) *semver.Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// example completes a short numeric core to three parts ("2.2" → "2.2.0").
func example(core string) string {
	parts := strings.Split(core, ".")
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	return strings.Join(parts[:3], ".")
}

func trimZeroes(core string) string {
	parts := strings.Split(core, ".")
	for i, p := range parts {
		p = strings.TrimLeft(p, "0")
		if p == "" {
			p = "0"
		}
		parts[i] = p
	}
	return strings.Join(parts, ".")
}
