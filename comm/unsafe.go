package comm

import (
	"encoding/binary"
	"unsafe"

	"github.com/parley-hpc/parley/internal/linux"
)

// This file holds comm's only unsafe code: the address of a send buffer,
// which a rendezvous request carries so that a receiver on the same host
// can copy the payload straight out of the sender's memory.
//
// It is safe because Go's heap objects do not move, a buffer handed to a
// send escapes to the heap (the request keeps it), and the sender keeps
// the request, and so the buffer, alive until the receiver's FIN says the
// copy is over.

func putAddr(dst, buf []byte) {
	binary.LittleEndian.PutUint64(dst, uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))))
}

func getAddr(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// readRemote copies len(dst) bytes from address addr of process pid.
func readRemote(dst []byte, pid int, addr uintptr) error {
	return linux.ReadRemote(dst, pid, addr)
}

// asBytes views a slice of fixed-size numbers as its bytes, without a copy.
func asBytes[T Number](xs []T) []byte {
	if len(xs) == 0 {
		return []byte{}
	}
	var z T
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(xs))), len(xs)*int(unsafe.Sizeof(z)))
}

// sizeOf returns the size of one T in bytes.
func sizeOf[T Number]() int {
	var z T
	return int(unsafe.Sizeof(z))
}
