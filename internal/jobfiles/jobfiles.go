// Package jobfiles handles what a job leaves on a host: its shared-memory
// segments under /dev/shm and its temporary directories. Both the node
// agent (which creates a host's segments before its ranks start, and
// removes them however the job ends) and the shm transport (which opens
// them) use it; a later job sweeps what dead jobs left.
//
// Files in /dev/shm and /tmp are in directories every local user can write,
// so everything here assumes another user may have planted something:
// names carry a random token the job's ranks learn only through the
// bootstrap; segments are created with O_EXCL|O_NOFOLLOW and opened only if
// they are regular files of this user, of the size expected, with
// O_NONBLOCK (a FIFO planted under a segment's name cannot block an open);
// sweeps look only at regular files and directories of this user, never
// follow links, and never block.
//
// Segments are reserved whole (fallocate) when they are created: a sparse
// file in a /dev/shm too small for it fails only when a page is first
// touched, with SIGBUS, in whichever rank touches it.
package jobfiles

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The start of a segment's header, which sweeps read (transport/shm owns
// the rest of the layout and checks these offsets against its struct).
const (
	Magic      = 0x324d4853594c5250 // "PRLYSHM2", little endian
	OffPid     = 24
	OffStart   = 32
	headerRead = 40
)

// The segment layout's sizes, which transport/shm uses (and checks against
// its structs): a control block of RingsOff bytes, then one ring per local
// rank, each a line of CacheLine bytes and its slots of SlotSize bytes,
// then the board of BoardBytes (small collectives on one host).
const (
	RingsOff   = 4096
	CacheLine  = 64
	SlotSize   = 64
	MaxSlots   = 4096
	BoardBytes = 4096
)

// RingSlots is the ring size for a host of localSize ranks: the most
// slots, up to MaxSlots, whose rings fit 2 MiB per rank (4096 slots, 256
// KiB, up to 8 local ranks; 2048 up to 16), then 1024 while they fit 4 MiB
// (64 local ranks), then 512. A frame takes at most a quarter of a ring and
// a chained message half of it: the eager and chain limits shrink to fit.
func RingSlots(localSize int) int {
	slots := MaxSlots
	for slots > 1024 && localSize*slots*SlotSize > 2<<20 {
		slots /= 2
	}
	for slots > 512 && localSize*slots*SlotSize > 4<<20 {
		slots /= 2
	}
	return slots
}

// RegionSize is the size of a segment with nrings rings of nslots slots
// and its board.
func RegionSize(nrings, nslots int) int { return BoardOff(nrings, nslots) + BoardBytes }

// BoardOff is where the board of a segment with nrings rings of nslots
// slots begins: after the rings.
func BoardOff(nrings, nslots int) int { return RingsOff + nrings*(CacheLine+nslots*SlotSize) }

// SegmentSize is the size of one rank's segment on a host of localSize
// ranks.
func SegmentSize(localSize int) int { return RegionSize(localSize, RingSlots(localSize)) }

// Prefix begins the name of every segment and temporary directory.
const Prefix = "parley-"

// DefaultDir is where segments live.
const DefaultDir = "/dev/shm"

// NewToken returns a random token for the names of a job's segments on a
// host: 96 bits, so that nobody can create a file under a name the job
// will use before it does.
func NewToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SegmentName is the name of rank's segment in job, with the host's token.
func SegmentName(job, token string, rank int) string {
	return fmt.Sprintf("%s%s-%s-%d", Prefix, job, token, rank)
}

// CapacityError says that a host's segments do not fit its /dev/shm.
type CapacityError struct {
	Dir           string
	Ranks         int    // segments asked for
	Each          int    // bytes per segment
	Free          uint64 // bytes free in Dir
	FreeInodes    uint64
	InodesLimited bool // the file system limits inodes and too few are left
}

func (e *CapacityError) Error() string {
	if e.InodesLimited {
		return fmt.Sprintf("%s has room for %d more files, the %d ranks of this host need %d", e.Dir, e.FreeInodes, e.Ranks, e.Ranks)
	}
	need := uint64(e.Ranks) * uint64(e.Each)
	return fmt.Sprintf("%s has %s free, the %d ranks of this host need %s (%d x %s); give it more room (in Docker: docker run --shm-size=%dm)",
		e.Dir, human(e.Free), e.Ranks, human(need), e.Ranks, human(uint64(e.Each)), roundUp(need*2)>>20)
}

// Reserve creates the segments names in dir, each of size bytes, all or
// none: it checks the file system's room first (statfs), then creates each
// file exclusively with mode 0600 and reserves its pages. owner (a pid) is
// written in each header, so that a sweep can tell whether the job lives.
// On any failure it removes what it created and returns the reason.
func Reserve(dir string, names []string, size int, owner int) error {
	free, freeInodes, limited, err := room(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	ce := &CapacityError{Dir: dir, Ranks: len(names), Each: size, Free: free, FreeInodes: freeInodes}
	if limited && freeInodes < uint64(len(names)) {
		ce.InodesLimited = true
		return ce
	}
	if free < uint64(len(names))*uint64(size) {
		return ce
	}
	var made []string
	undo := func() {
		for _, p := range made {
			os.Remove(p)
		}
	}
	for _, name := range names {
		p, err := create(dir, name, size, owner)
		if err != nil {
			undo()
			if errors.Is(err, errNoSpace) {
				return ce
			}
			return err
		}
		made = append(made, p)
	}
	return nil
}

var errNoSpace = errors.New("no space")

// create makes one segment file and reserves its pages.
func create(dir, name string, size int, owner int) (string, error) {
	if filepath.Base(name) != name || !strings.HasPrefix(name, Prefix) {
		return "", fmt.Errorf("segment name %q is not a plain %s* file name", name, Prefix)
	}
	path := filepath.Join(dir, name)
	f, err := createExclusive(path)
	if err != nil {
		return "", fmt.Errorf("create segment %s: %w", path, err)
	}
	defer f.Close()
	if err := allocate(f, size); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("reserve %d bytes for segment %s: %w", size, path, err)
	}
	var h [headerRead]byte
	binary.LittleEndian.PutUint64(h[0:], Magic)
	binary.LittleEndian.PutUint64(h[OffPid:], uint64(owner))
	binary.LittleEndian.PutUint64(h[OffStart:], StartTime(owner))
	if _, err := f.WriteAt(h[:], 0); err != nil {
		os.Remove(path)
		return "", fmt.Errorf("write segment %s: %w", path, err)
	}
	return path, nil
}

// Create makes one segment for a rank that has no agent to make it (a
// rank started by srun, or a test): as Reserve, for one file.
func Create(dir, name string, size int, owner int) error {
	return Reserve(dir, []string{name}, size, owner)
}

// Open opens segment name in dir for reading and writing, if it is a
// regular file of this user of exactly size bytes (size 0: any size up to
// 16 GiB, for segments of peers, whose header the caller checks).
func Open(dir, name string) (*os.File, error) {
	if filepath.Base(name) != name || !strings.HasPrefix(name, Prefix) {
		return nil, fmt.Errorf("segment name %q is not a plain %s* file name", name, Prefix)
	}
	path := filepath.Join(dir, name)
	f, err := openNoFollow(path, true)
	if err != nil {
		return nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	if err := checkOwned(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	return f, nil
}

// Sweep removes the segments in dir (default /dev/shm) whose owner process
// is gone: what jobs left whose agents were killed. Only regular files of
// this user that carry a segment's magic are candidates; a segment whose
// owner runs (same pid, same start time) is kept. Nothing here blocks:
// files are opened with O_NONBLOCK and non-regular ones are never opened.
// It returns the names removed.
func Sweep(dir string) []string {
	if dir == "" {
		dir = DefaultDir
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), Prefix) || e.Type()&os.ModeType != 0 {
			continue // not ours, or not a regular file: never opened
		}
		path := filepath.Join(dir, e.Name())
		if ownerAlive(path) {
			continue
		}
		if os.Remove(path) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

// ownerAlive reads a segment's header and reports whether its owner runs.
// Anything unreadable, foreign or not a regular file of this user counts
// as alive: never remove what we do not understand.
func ownerAlive(path string) bool {
	f, err := openNoFollow(path, false)
	if err != nil {
		return true
	}
	defer f.Close()
	if checkOwned(f) != nil {
		return true
	}
	var b [headerRead]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return true
	}
	if binary.LittleEndian.Uint64(b[0:]) != Magic {
		return true
	}
	pid, start := int(binary.LittleEndian.Uint64(b[OffPid:])), binary.LittleEndian.Uint64(b[OffStart:])
	return Alive(pid, start)
}

// Alive reports whether process pid runs and started at start (clock ticks
// after boot, 0: unknown), so that a reused pid does not count.
func Alive(pid int, start uint64) bool {
	if pid <= 0 {
		return true
	}
	now, exited := procStat(pid)
	if exited {
		return false
	}
	return start == 0 || now == start
}

// StartTime returns process pid's start time in clock ticks after boot
// (field 22 of /proc/PID/stat), or 0 if unknown.
func StartTime(pid int) uint64 {
	start, _ := procStat(pid)
	return start
}

// procStat returns a process's start time and whether it has exited (is
// gone, or a zombie waiting to be reaped).
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

// TempDir makes a job's temporary directory under the system's (mode
// 0700), named for job, with an owner file that SweepDirs reads.
func TempDir(job string) (string, error) {
	dir, err := os.MkdirTemp("", Prefix+job+"-")
	if err != nil {
		return "", err
	}
	pid := os.Getpid()
	owner := fmt.Sprintf("%d %d\n", pid, StartTime(pid))
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

const ownerFile = "owner"

// SweepDirs removes the temporary directories (under dir, default the
// system's) that jobs of this user left when their process was killed:
// directories named parley-*, of this user, whose owner file names a
// process that is gone. It returns the names removed.
func SweepDirs(dir string) []string {
	if dir == "" {
		dir = os.TempDir()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), Prefix) || !e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if !ownedDir(path) {
			continue
		}
		b, err := readSmall(filepath.Join(path, ownerFile))
		if err != nil {
			continue
		}
		var pid int
		var start uint64
		if n, _ := fmt.Sscanf(string(b), "%d %d", &pid, &start); n != 2 || Alive(pid, start) {
			continue
		}
		if os.RemoveAll(path) == nil {
			removed = append(removed, e.Name())
		}
	}
	return removed
}

func human(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// roundUp rounds n up to a size a person would type: a power of two of MiB.
func roundUp(n uint64) uint64 {
	m := uint64(64 << 20)
	for m < n {
		m *= 2
	}
	return m
}

// Probe reports the room in dir and whether a segment of size bytes can
// be made there now: it creates one (as Reserve does, pages reserved) and
// removes it. For mpirun --info.
func Probe(dir string, size int) (free uint64, err error) {
	free, _, _, err = room(dir)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dir, err)
	}
	name := Prefix + "probe-" + NewToken()
	if err := Reserve(dir, []string{name}, size, os.Getpid()); err != nil {
		return free, err
	}
	os.Remove(filepath.Join(dir, name))
	return free, nil
}

// Human prints a byte count for people ("64 MiB").
func Human(n uint64) string { return human(n) }
