package policy

import "errors"

// ErrInvalidVersion is wrapped by every version parsing error.
var ErrInvalidVersion = errors.New("invalid version")
