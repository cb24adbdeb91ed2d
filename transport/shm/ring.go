package shm

// This file holds all of the package's unsafe code: the views of the
// control block and of the slots over a mapped (or, in tests, heap)
// region. See doc.go for the layout and the memory ordering.

import (
	"encoding/binary"
	"fmt"
	"structs"
	"sync/atomic"
	"unsafe"
)

const (
	magic        = 0x314d4853594c5250 // "PRLYSHM1", little endian
	layoutVer    = 1
	cacheLine    = 64
	slotSize     = 64
	ctlSize      = 4096
	seqLen       = 8
	frameHdrOff  = seqLen                  // header starts after the sequence word
	frameDataOff = seqLen + hdrLen         // payload starts here in the first slot
	hdrLen       = 40                      // wire.HeaderLen
	firstSlotCap = slotSize - frameDataOff // payload bytes in the first slot
)

// control is the segment's control block, overlaid on shared memory.
type control struct {
	_       structs.HostLayout
	magic   uint64
	version uint32
	nslots  uint32
	pid     uint64
	_       [cacheLine - 24]byte
	head    atomic.Uint64
	_       [cacheLine - 8]byte
	tail    atomic.Uint64
	_       [cacheLine - 8]byte
	bell    atomic.Uint32
	_       [cacheLine - 4]byte
}

// Offsets the layout comment promises; ring_test.go checks them against
// unsafe.Offsetof.
const (
	offHead = 64
	offTail = 128
	offBell = 192
)

// ring is a view of one segment's queue.
type ring struct {
	mem    []byte // the whole region: control block and slots
	ctl    *control
	slots  []byte // len == nslots*slotSize
	nslots uint64
	mask   uint64
}

// newRing views mem as a ring. When init is true it writes a fresh control
// block for nslots slots owned by pid; otherwise it validates the control
// block found there, which another process wrote and may have corrupted.
func newRing(mem []byte, nslots int, pid int, init bool) (*ring, error) {
	if uintptr(unsafe.Pointer(unsafe.SliceData(mem)))%8 != 0 {
		return nil, fmt.Errorf("shm region is not 8-byte aligned")
	}
	if len(mem) < ctlSize+slotSize {
		return nil, fmt.Errorf("shm region of %d bytes is too small", len(mem))
	}
	ctl := (*control)(unsafe.Pointer(unsafe.SliceData(mem)))
	if init {
		if nslots&(nslots-1) != 0 || nslots < 64 {
			return nil, fmt.Errorf("shm ring of %d slots: need a power of two >= 64", nslots)
		}
		if ctlSize+nslots*slotSize > len(mem) {
			return nil, fmt.Errorf("shm ring of %d slots does not fit %d bytes", nslots, len(mem))
		}
		ctl.magic = magic
		ctl.version = layoutVer
		ctl.nslots = uint32(nslots)
		ctl.pid = uint64(pid)
		ctl.head.Store(0)
		ctl.tail.Store(0)
		ctl.bell.Store(0)
	} else {
		if ctl.magic != magic {
			return nil, fmt.Errorf("not a parley segment (magic %#x)", ctl.magic)
		}
		if ctl.version != layoutVer {
			return nil, fmt.Errorf("segment layout version %d, this program uses %d", ctl.version, layoutVer)
		}
		nslots = int(ctl.nslots)
		if nslots&(nslots-1) != 0 || nslots < 64 || ctlSize+nslots*slotSize > len(mem) {
			return nil, fmt.Errorf("segment claims %d slots in %d bytes", nslots, len(mem))
		}
	}
	return &ring{mem: mem, ctl: ctl, slots: mem[ctlSize : ctlSize+nslots*slotSize], nslots: uint64(nslots), mask: uint64(nslots - 1)}, nil
}

// seq returns the sequence word of slot i (i < nslots).
func (r *ring) seq(i uint64) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.slots[i*slotSize]))
}

// clearSeq overwrites the sequence word of slot i with a plain store; only
// the consumer does this, before it gives the slot back (see doc.go).
func (r *ring) clearSeq(i uint64) {
	binary.LittleEndian.PutUint64(r.slots[i*slotSize:], 0)
}

// frame returns the bytes of k slots starting at slot i (i+k <= nslots).
func (r *ring) frame(i, k uint64) []byte {
	return r.slots[i*slotSize : (i+k)*slotSize]
}

// slotsFor returns how many slots a frame with n payload bytes takes.
func slotsFor(n int) uint64 {
	return uint64((frameDataOff + n + slotSize - 1) / slotSize)
}
