package collectives

import (
	"sync"
	"unsafe"
)

// Scratch vectors for the algorithms' intermediate values come from pools
// of byte buffers in power-of-two size classes, so that a collective on a
// short vector does not allocate.
var scratchPools [40]sync.Pool

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
	bp, _ := scratchPools[c].Get().(*[]byte)
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
	if s.b != nil {
		scratchPools[s.class].Put(s.b)
	}
}

// sameVector reports whether a and b are the same memory (an in-place call).
func sameVector[T Elem](a, b []T) bool {
	return len(a) > 0 && len(b) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}
