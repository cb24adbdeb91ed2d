package shm

// This file holds the package's unsafe code (with Expose in shm.go): the
// views of a segment's header, bitmap, rings and board over a mapped (or,
// in tests, heap) region. See doc.go for the layout and the memory ordering.

import (
	"encoding/binary"
	"fmt"
	"structs"
	"sync/atomic"
	"unsafe"

	"github.com/parley-hpc/parley/internal/jobfiles"
	"github.com/parley-hpc/parley/transport"
)

const (
	magic        = jobfiles.Magic
	layoutVer    = 4 // 3: short frames (flagShort); 4: the board
	cacheLine    = jobfiles.CacheLine
	slotSize     = jobfiles.SlotSize
	ringsOff     = jobfiles.RingsOff
	boardBytes   = jobfiles.BoardBytes
	bitmapOff    = 128
	seqLen       = 8
	hdrLen       = 40 // wire.HeaderLen
	frameHdrOff  = seqLen
	frameDataOff = seqLen + hdrLen
	// A frame whose header has no Cookie and no Aux (an eager message, a
	// barrier's empty one) is written short: the header's first 24 bytes,
	// with flagShort, and the payload from byte 32, so that up to 32 payload
	// bytes travel in one slot instead of 16.
	shortHdrLen  = 24
	shortDataOff = seqLen + shortHdrLen
	maxRings     = (ringsOff - bitmapOff) * 8 // what the bitmap can name
)

// header is the segment's first two cache lines, overlaid on shared memory.
type header struct {
	_       structs.HostLayout
	magic   uint64
	version uint32
	nrings  uint32
	nslots  uint32
	closed  atomic.Uint32 // 1 once the owner closed the transport: frames for it can never be read
	pid     uint64
	start   uint64 // the owner's start time (clock ticks after boot), against pid reuse
	_       [cacheLine - 40]byte
	bell    atomic.Uint32
	_       [cacheLine - 4]byte
}

// Offsets the layout comment promises; ring_test.go checks them.
const offBell = 64

// region is a view of one segment's memory.
type region struct {
	mem       []byte
	hdr       *header
	nrings    int
	nslots    uint64
	ringBytes int
	boardOff  int
}

func ringBytesFor(nslots int) int { return cacheLine + nslots*slotSize }

// regionSize is the size of a segment with nrings rings of nslots slots.
func regionSize(nrings, nslots int) int { return jobfiles.RegionSize(nrings, nslots) }

// newRegion views mem as a segment. With init it writes a fresh header for
// nrings rings of nslots slots owned by pid; otherwise it validates the
// header it finds, which another process wrote and may have corrupted.
func newRegion(mem []byte, nrings, nslots, pid int, start uint64, init bool) (*region, error) {
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%cacheLine != 0 {
		return nil, fmt.Errorf("shm region is not cache-line aligned")
	}
	if len(mem) < ringsOff {
		return nil, fmt.Errorf("shm region of %d bytes is too small", len(mem))
	}
	h := (*header)(unsafe.Pointer(unsafe.SliceData(mem)))
	if init {
		if nslots&(nslots-1) != 0 || nslots < 64 || nrings < 1 || nrings > maxRings {
			return nil, fmt.Errorf("shm segment of %d rings of %d slots: need 1..%d rings of a power of two >= 64 slots", nrings, nslots, maxRings)
		}
		if regionSize(nrings, nslots) > len(mem) {
			return nil, fmt.Errorf("shm segment of %d rings of %d slots does not fit %d bytes", nrings, nslots, len(mem))
		}
		h.magic, h.version, h.nrings, h.nslots, h.pid, h.start = magic, layoutVer, uint32(nrings), uint32(nslots), uint64(pid), start
		h.bell.Store(0)
	} else {
		if h.magic != magic {
			return nil, fmt.Errorf("not a parley segment (magic %#x)", h.magic)
		}
		if h.version != layoutVer {
			return nil, fmt.Errorf("segment layout version %d, this program uses %d", h.version, layoutVer)
		}
		nrings, nslots = int(h.nrings), int(h.nslots)
		if nslots&(nslots-1) != 0 || nslots < 64 || nrings < 1 || nrings > maxRings || regionSize(nrings, nslots) > len(mem) {
			return nil, fmt.Errorf("segment claims %d rings of %d slots in %d bytes", nrings, nslots, len(mem))
		}
	}
	return &region{mem: mem, hdr: h, nrings: nrings, nslots: uint64(nslots), ringBytes: ringBytesFor(nslots),
		boardOff: jobfiles.BoardOff(nrings, nslots)}, nil
}

// activeWord returns word i of the active bitmap.
func (g *region) activeWord(i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&g.mem[bitmapOff+8*i]))
}

// bitmapWords is the number of bitmap words covering the rings.
func (g *region) bitmapWords() int { return (g.nrings + 63) / 64 }

// heapMem returns zeroed, cache-line aligned heap memory of n bytes, for
// segments that live in one process (tests, MeasureMedium); the race
// detector sees accesses to it, which it cannot for a mapping.
func heapMem(n int) []byte {
	words := make([]uint64, (n+2*cacheLine)/8)
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), len(words)*8)
	off := int(uintptr(cacheLine) - uintptr(unsafe.Pointer(&b[0]))%cacheLine)
	return b[off%cacheLine : off%cacheLine+n]
}

// ring is a view of one ring of a segment.
type ring struct {
	tail   *atomic.Uint64
	sender *atomic.Uint64 // the producer's world rank + 1, stored once when it attaches
	slots  []byte         // nslots*slotSize bytes
	nslots uint64
	mask   uint64
}

// ring returns ring i (i < nrings).
func (g *region) ring(i int) *ring {
	off := ringsOff + i*g.ringBytes
	return &ring{
		tail:   (*atomic.Uint64)(unsafe.Pointer(&g.mem[off])),
		sender: (*atomic.Uint64)(unsafe.Pointer(&g.mem[off+8])),
		slots:  g.mem[off+cacheLine : off+g.ringBytes : off+g.ringBytes],
		nslots: g.nslots,
		mask:   g.nslots - 1,
	}
}

// seq returns the sequence word of slot i (i < nslots).
func (r *ring) seq(i uint64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.slots[i*slotSize]))
}

// publish stores a frame's sequence word, which makes the frame visible
// to the consumer (see publish.go).
func (r *ring) publish(i, v uint64) { publishSeq(r.seq(i), v) }

// clearSeq overwrites the sequence word of slot i with a plain store; the
// producer does this to a free slot whose word holds payload, before it
// publishes the frame that ends there (see doc.go).
func (r *ring) clearSeq(i uint64) {
	binary.LittleEndian.PutUint64(r.slots[i*slotSize:], 0)
}

// frame returns the bytes of k slots starting at slot i (i+k <= nslots).
func (r *ring) frame(i, k uint64) []byte {
	return r.slots[i*slotSize : (i+k)*slotSize]
}

// slotsFor returns how many slots a frame with n payload bytes takes when
// its payload starts at byte dataOff (frameDataOff, or shortDataOff).
func slotsFor(dataOff, n int) uint64 {
	return uint64((dataOff + n + slotSize - 1) / slotSize)
}

// dataOffFor returns where the payload of a frame with header h starts:
// short frames carry no Cookie and no Aux.
func dataOffFor(h *transport.Header) int {
	if h.Cookie == 0 && h.Aux == 0 {
		return shortDataOff
	}
	return frameDataOff
}

// The board's layout, from the region's boardOff: the arrival word and
// the release word, each on a line of its own, then two parts, each a
// line holding its word and BoardMax bytes of data.
const (
	boardReleaseOff = cacheLine
	boardPartOff    = 2 * cacheLine
	boardPartBytes  = cacheLine + BoardMax
)

// boardView is a view of one segment's board, and of its owner's bell.
type boardView struct {
	arrival *atomic.Uint64
	release *atomic.Uint64
	word    [2]*atomic.Uint64
	data    [2][]byte
	bell    *atomic.Uint32
}

// board returns the view of g's board.
func (g *region) board() boardView {
	var v boardView
	v.arrival = (*atomic.Uint64)(unsafe.Pointer(&g.mem[g.boardOff]))
	v.release = (*atomic.Uint64)(unsafe.Pointer(&g.mem[g.boardOff+boardReleaseOff]))
	for i := range v.word {
		off := g.boardOff + boardPartOff + i*boardPartBytes
		v.word[i] = (*atomic.Uint64)(unsafe.Pointer(&g.mem[off]))
		v.data[i] = g.mem[off+cacheLine : off+cacheLine+BoardMax : off+cacheLine+BoardMax]
	}
	v.bell = &g.hdr.bell
	return v
}

// The board fits its place in the segment.
var _ [boardBytes - boardPartOff - 2*boardPartBytes]struct{}
