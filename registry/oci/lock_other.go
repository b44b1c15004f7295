//go:build !unix

package oci

import "os"

// lockFile is a no-op where flock is unavailable: uploads are then
// serialized only by the clients, as the spec requires of them.
func lockFile(*os.File) error { return nil }

func unlockFile(*os.File) error { return nil }
