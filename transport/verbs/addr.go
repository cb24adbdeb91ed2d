package verbs

// This file holds the package's one unsafe operation outside the cgo
// layer: taking the address of a buffer, as the adapter names memory.
//
// Invariants: an address taken here is handed to the adapter only inside
// a registered region whose buffer the transport keeps reachable and
// pinned (runtime.Pinner) for as long as the region exists. Go's heap does
// not move objects, so the address stays the buffer's; the pin also keeps
// the garbage collector from freeing it while the adapter may still write
// or a peer may still read it.

import "unsafe"

// addrOf is the address of buf's first byte (0 for an empty buf).
func addrOf(buf []byte) uint64 {
	if len(buf) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
}
