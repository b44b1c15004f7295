package driver

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"strings"

	"github.com/ladder-dev/ladder/catalog"
	"github.com/ladder-dev/ladder/policy"
)

// CheckRelease accepts a version the built-in catalog lists, the releases
// the reference registry can run as, and returns it normalized. Anything
// else wraps ErrNoArtifact.
func CheckRelease(version string) (string, error) {
	v, err := policy.Parse(version)
	if err != nil {
		return "", err
	}
	if !catalog.Builtin().Contains(v) {
		return "", fmt.Errorf("%w: release %s is not in the built-in catalog (see: ladder catalog)", ErrNoArtifact, v)
	}
	return v.String(), nil
}

// GeneratePassword returns a random admin password of 24 letters and digits.
func GeneratePassword() string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// Tail returns the last n lines of data, for errors that quote a log.
func Tail(data []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
