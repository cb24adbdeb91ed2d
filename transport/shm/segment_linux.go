//go:build linux && !parleyportable

package shm

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/parley-hpc/parley/internal/jobfiles"
)

// segment is a mapped segment file.
type segment struct {
	name string
	path string
	mem  []byte
	g    *region
}

// openOwnSegment maps this rank's own segment, which exists already
// (reserved by the agent, or by Open), and writes a fresh header for
// nrings rings of nslots slots owned by this process. The file must be a
// regular file of this user of exactly the expected size (jobfiles.Open).
func openOwnSegment(dir, name string, nrings, nslots int) (*segment, error) {
	size := regionSize(nrings, nslots)
	f, err := jobfiles.Open(dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != int64(size) {
		return nil, fmt.Errorf("segment %s is not the %d bytes this rank needs", f.Name(), size)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map segment %s: %w", f.Name(), err)
	}
	pid := os.Getpid()
	g, err := newRegion(mem, nrings, nslots, pid, jobfiles.StartTime(pid), true)
	if err != nil {
		unix.Munmap(mem)
		return nil, err
	}
	return &segment{name: name, path: f.Name(), mem: mem, g: g}, nil
}

// openSegment maps a peer's segment. Its size and control block are
// checked: the file is another process's and may be anything.
func openSegment(dir, name string) (*segment, error) {
	f, err := jobfiles.Open(dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat segment %s: %w", f.Name(), err)
	}
	if fi.Size() < int64(ringsOff+ringBytesFor(64)) {
		return nil, fmt.Errorf("segment %s has an implausible size of %d bytes", f.Name(), fi.Size())
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map segment %s: %w", f.Name(), err)
	}
	g, err := newRegion(mem, 0, 0, 0, 0, false)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("segment %s: %w", f.Name(), err)
	}
	return &segment{name: name, path: f.Name(), mem: mem, g: g}, nil
}

func (s *segment) close() error {
	if s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem, s.g = nil, nil
	return err
}

// retire unmaps this rank's own segment in a way that is safe for readers
// that hold no lock (Transport.MayPoll, called by waiting goroutines): the
// range is replaced, in one mmap call, by private read-only zero pages, so
// a late reader sees empty rings instead of faulting; the range itself is
// released once the segment is unreachable, when no reader can be left.
func (s *segment) retire() error {
	if s.mem == nil {
		return nil
	}
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(&s.mem[0]), uintptr(len(s.mem)),
		unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED)
	if err != nil {
		// Refused (it never is on Linux for a range this process
		// mapped): unmap plainly, and a racing reader could fault.
		return s.close()
	}
	runtime.AddCleanup(s, func(mem []byte) { unix.Munmap(mem) }, s.mem)
	return nil
}

func (s *segment) remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Sweep removes the segments under dir (default /dev/shm) whose owner is
// gone (see jobfiles.Sweep).
func Sweep(dir string) []string { return jobfiles.Sweep(dir) }
