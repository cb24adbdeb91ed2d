package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"unsafe"

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
	g, err := newRegion(mem, nrings, nslots, os.Getpid(), startTime(os.Getpid()), true)
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
	g, err := newRegion(mem, 0, 0, 0, 0, false)
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

// startTime returns process pid's start time in clock ticks after boot
// (field 22 of /proc/PID/stat), or 0 if unknown.
func startTime(pid int) uint64 {
	start, _ := procStat(pid)
	return start
}

// procStat returns a process's start time and whether it has exited (is
// gone or a zombie waiting to be reaped).
func procStat(pid int) (start uint64, exited bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0, false
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v, f[0] == "Z" || f[0] == "X"
}

// Sweep removes the segments under dir (default /dev/shm) whose owner is
// gone: jobs that ended without their agent's clean-up. A segment whose
// owner pid is alive with the same start time is kept; so is anything
// that is not a readable parley segment. It returns the names removed.
func Sweep(dir string) []string {
	if dir == "" {
		dir = "/dev/shm"
	}
	names, _ := filepath.Glob(filepath.Join(dir, "parley-*"))
	var removed []string
	for _, path := range names {
		if ownerAlive(path) {
			continue
		}
		if os.Remove(path) == nil {
			removed = append(removed, filepath.Base(path))
		}
	}
	return removed
}

// ownerAlive reads a segment's header and reports whether its owner runs.
// Anything unreadable or foreign counts as alive: never remove what we do
// not understand.
func ownerAlive(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return true
	}
	defer f.Close()
	var b [40]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return true
	}
	le := func(o int) uint64 {
		var v uint64
		for i := 7; i >= 0; i-- {
			v = v<<8 | uint64(b[o+i])
		}
		return v
	}
	if le(0) != magic {
		return true
	}
	pid, start := int(le(24)), le(32)
	if pid <= 0 {
		return true
	}
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
		return false
	}
	now, exited := procStat(pid)
	if exited {
		return false // a zombie: its parent died before reaping it
	}
	return start == 0 || now == start
}
