package registry

import (
	"errors"
	"fmt"

	"github.com/ladder-dev/ladder/registry/oci"
)

var (
	// ErrNotFound is returned (wrapped) for an unknown repository, tag or
	// manifest. It is oci.ErrNotFound, so the OCI layer can test for it.
	ErrNotFound = oci.ErrNotFound
	// ErrSchemaTooNew is matched by *SchemaTooNewError.
	ErrSchemaTooNew = errors.New("store schema too new")
	// ErrNoSchema means the store records no schema version: it was never
	// initialised by a registry replica.
	ErrNoSchema = errors.New("store has no schema version")
	// ErrUnknownRelease means a release is not in the registry's catalog.
	ErrUnknownRelease = errors.New("unknown release")
	// ErrConflict means a write kept conflicting with other writers, or two
	// migrations ran at once.
	ErrConflict = errors.New("store write conflict")
	// ErrNotReady means the replica is not serving yet (or any more).
	ErrNotReady = errors.New("replica not ready")
	// ErrUnauthorized means the admin credentials were missing or wrong.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrInvalid marks bad arguments (a bad name, a bad target schema).
	ErrInvalid = errors.New("invalid argument")
)

// SchemaTooNewError says that the store holds a schema newer than the
// running release knows, and which release is needed.
type SchemaTooNewError struct {
	Stored  int    // schema recorded in the store
	Known   int    // schema the release knows
	Release string // the running release
	Need    string // the earliest release that knows Stored ("" if none)
}

func (e *SchemaTooNewError) Error() string {
	need := "a newer release"
	if e.Need != "" {
		need = "release " + e.Need + " or later"
	}
	return fmt.Sprintf("store schema %d is newer than release %s knows (%d): run %s", e.Stored, e.Release, e.Known, need)
}

// Is makes errors.Is(err, ErrSchemaTooNew) true.
func (e *SchemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// ExitAddrInUse is the exit status of `ladder registry serve` when a listen
// address is taken, so that a driver creating a cluster can choose other
// ports and try again.
const ExitAddrInUse = 5
