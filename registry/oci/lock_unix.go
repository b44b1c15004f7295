//go:build unix

package oci

import (
	"os"
	"syscall"
)

// lockFile takes an exclusive advisory lock on f, waiting for it. Replicas
// sharing the blob folder serialize their work on one upload this way.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}

func unlockFile(f *os.File) error { return syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
