package catalog

import "errors"

// ErrInvalid is wrapped by every error about a malformed catalog or entry.
var ErrInvalid = errors.New("invalid catalog")
