package plan

import "errors"

var (
	// ErrNoPath means no chain of supported hops reaches the target.
	ErrNoPath = errors.New("no supported upgrade path")
	// ErrDowngrade means the target is older than the source.
	ErrDowngrade = errors.New("downgrade not supported")
	// ErrUnknownTarget means the target is not a release of the catalog.
	ErrUnknownTarget = errors.New("target not in catalog")
	// ErrPrerelease means the target is a pre-release and that was not allowed.
	ErrPrerelease = errors.New("pre-release target not allowed")
)
