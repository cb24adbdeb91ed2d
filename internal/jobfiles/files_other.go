//go:build !linux || parleyportable

package jobfiles

import (
	"errors"
	"os"

	"github.com/parley-hpc/parley/internal/linux"
)

// Shared-memory segments are Linux-only: elsewhere every call reports
// that, wrapping linux.ErrNotSupported.

var errNotLinux = linux.ErrNotSupported

func createExclusive(path string) (*os.File, error)          { return nil, errNotLinux }
func openNoFollow(path string, write bool) (*os.File, error) { return nil, errNotLinux }
func checkOwned(f *os.File) error                            { return errNotLinux }
func allocate(f *os.File, size int) error                    { return errNotLinux }
func room(dir string) (uint64, uint64, bool, error)          { return 0, 0, false, errNotLinux }
func ownedDir(path string) bool                              { return false }
func readSmall(path string) ([]byte, error)                  { return nil, errors.New("not supported") }
