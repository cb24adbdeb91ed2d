//go:build !linux || parleyportable

package shm

import (
	"fmt"
	"runtime"

	"github.com/parley-hpc/parley/internal/linux"
)

// Shared memory between ranks is Linux-only: elsewhere (and in the
// parleyportable build, which tests this path on Linux) Open fails with an
// error wrapping ErrNotSupported, and ranks of one host use TCP.

type segment struct {
	name string
	path string
	mem  []byte
	g    *region
}

func notSupported(what string) error {
	return fmt.Errorf("%s on %s/%s: %w", what, runtime.GOOS, runtime.GOARCH, linux.ErrNotSupported)
}

func openOwnSegment(dir, name string, nrings, nslots int) (*segment, error) {
	return nil, notSupported("shared-memory segments")
}

func openSegment(dir, name string) (*segment, error) {
	return nil, notSupported("shared-memory segments")
}

func (s *segment) close() error  { return nil }
func (s *segment) retire() error { return nil }
func (s *segment) remove() error { return nil }

// Sweep finds nothing to sweep here.
func Sweep(dir string) []string { return nil }
