package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// segment is a mapped segment file.
type segment struct {
	name string
	path string
	mem  []byte
	g    *region
}

// createSegment creates (exclusively, mode 0600) and maps a segment with
// nrings rings of nslots slots. The file is sparse: pages cost memory once
// touched.
func createSegment(dir, name string, nrings, nslots int) (*segment, error) {
	path := filepath.Join(dir, name)
	size := regionSize(nrings, nslots)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("size segment %s: %w", path, err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("map segment %s: %w", path, err)
	}
	g, err := newRegion(mem, nrings, nslots, os.Getpid(), true)
	if err != nil {
		unix.Munmap(mem)
		os.Remove(path)
		return nil, err
	}
	return &segment{name: name, path: path, mem: mem, g: g}, nil
}

// openSegment maps a peer's segment. Its size and control block are
// checked: the file is another process's and may be anything.
func openSegment(dir, name string) (*segment, error) {
	if filepath.Base(name) != name {
		return nil, fmt.Errorf("segment name %q is not a plain file name", name)
	}
	path := filepath.Join(dir, name)
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat segment %s: %w", path, err)
	}
	if st.Size < int64(ringsOff+ringBytesFor(64)) || st.Size > 1<<34 {
		return nil, fmt.Errorf("segment %s has an implausible size of %d bytes", path, st.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(st.Size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map segment %s: %w", path, err)
	}
	g, err := newRegion(mem, 0, 0, 0, false)
	if err != nil {
		unix.Munmap(mem)
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	return &segment{name: name, path: path, mem: mem, g: g}, nil
}

func (s *segment) close() error {
	if s.mem == nil {
		return nil
	}
	err := unix.Munmap(s.mem)
	s.mem, s.g = nil, nil
	return err
}

func (s *segment) remove() error {
	if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
