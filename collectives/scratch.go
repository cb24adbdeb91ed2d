package collectives

import (
	"sync"
	"unsafe"

	"github.com/parley-hpc/parley/comm"
)

// Scratch vectors for the algorithms' intermediate values come from pools
// of byte buffers in power-of-two size classes, so that a collective on a
// short vector does not allocate.
var scratchPools [40]sync.Pool

// Large buffers (from 64 KiB) are kept in lists of their own, which the
// garbage collector does not empty as it empties a sync.Pool: a 1 MiB
// reduce whose scratch came back fresh after each collection paid for
// faulting in its pages every time, and the buffers themselves brought the
// next collection sooner (in a sweep of sizes, Reduce at 1 MiB took 395 us
// instead of 126). Each class keeps at most keepLarge buffers.
const (
	largeClass = 13 // 8<<13 = 64 KiB
	keepLarge  = 4
)

var large [40]struct {
	mu   sync.Mutex
	bufs []*[]byte
}

// scratch returns a vector of n elements of unspecified contents, and the
// handle that gives it back (a value, not a closure: nothing allocates).
func scratch[T Elem](n int) ([]T, scratchBuf) {
	size := n * elemSize[T]()
	if size == 0 {
		return []T{}, scratchBuf{}
	}
	c := 0
	for 8<<c < size {
		c++
	}
	var bp *[]byte
	if c >= largeClass {
		l := &large[c]
		l.mu.Lock()
		if n := len(l.bufs); n > 0 {
			bp = l.bufs[n-1]
			l.bufs = l.bufs[:n-1]
		}
		l.mu.Unlock()
	} else {
		bp, _ = scratchPools[c].Get().(*[]byte)
	}
	if bp == nil {
		b := make([]byte, 8<<c)
		bp = &b
	}
	xs := unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(*bp))), n)
	return xs, scratchBuf{bp, c}
}

// scratchBuf is a scratch vector's buffer, for release.
type scratchBuf struct {
	b     *[]byte
	class int
}

func (s scratchBuf) release() {
	switch {
	case s.b == nil:
	case s.class >= largeClass:
		l := &large[s.class]
		l.mu.Lock()
		if len(l.bufs) < keepLarge {
			l.bufs = append(l.bufs, s.b)
		}
		l.mu.Unlock()
	default:
		scratchPools[s.class].Put(s.b)
	}
}

// sameVector reports whether a and b are the same memory (an in-place call).
func sameVector[T Elem](a, b []T) bool {
	return len(a) > 0 && len(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// checkApart fails a reduction whose in and out overlap without being the
// same vector (which reduces in place): the algorithms read in while out
// fills, and such a call gave wrong values (a Reduce root of 3 elements
// with out one element on from in; Allreduce of long vectors).
func checkApart[T Elem](k *call, in, out []T) error {
	if sameVector(in, out) || apart(in, out) {
		return nil
	}
	return k.errorf("%w: in and out overlap without being the same vector (pass one slice as both to reduce in place)", comm.ErrInvalidArg)
}

// apart reports whether a and b share no byte of memory.
func apart[T Elem](a, b []T) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	na, nb := uintptr(len(a))*uintptr(elemSize[T]()), uintptr(len(b))*uintptr(elemSize[T]())
	return pa+na <= pb || pb+nb <= pa
}

// elemsOf views the first n elements' bytes of b as a vector of T. b must
// hold them and be aligned for T: the board's parts (coll.BoardPart) begin
// on a cache line.
func elemsOf[T Elem](b []byte, n int) []T {
	if n == 0 {
		return nil
	}
	_ = b[n*elemSize[T]()-1]
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), n)
}
