package vec

import "unsafe"

// AddFloat32 sets d[i] += s[i] for every i of d; s must be at least as
// long.
func AddFloat32(d, s []float32) {
	s = s[:len(d)]
	i := 0
	if hasAVX && len(d) >= 32 {
		i = len(d) &^ 31
		addFloat32AVX(&d[0], &s[0], i)
	}
	for ; i < len(d); i++ {
		d[i] += s[i]
	}
}

// AddFloat64 sets d[i] += s[i] for every i of d; s must be at least as
// long.
func AddFloat64(d, s []float64) {
	s = s[:len(d)]
	i := 0
	if hasAVX && len(d) >= 16 {
		i = len(d) &^ 15
		addFloat64AVX(&d[0], &s[0], i)
	}
	for ; i < len(d); i++ {
		d[i] += s[i]
	}
}

// Copy copies src into dst like the built-in copy and returns the number
// of bytes copied, keeping the destination in the cache where copy would
// not. Go's copy switches at 1 MiB to non-temporal stores, which write
// around the cache: the right choice for copies larger than the cache, a
// slow one for the 1-4 MiB blocks of the collectives, whose destination is
// read again soon (bench limits on a 2-vCPU AMD EPYC VM with 32 MiB of L3:
// 1-4 MiB alone at 25-28 GB/s with copy, 42-49 GB/s in 512 KiB pieces;
// 8 MiB 17-29 either way; inside a 2-rank Gather of 4 MiB blocks, whose
// buffers fill the L3 with the peer's, pieces were slower: 892 against
// 565 us). Copy moves blocks from CopyPiecesMin up to CopyCachedMax in
// pieces below the switch; it leaves shorter and longer copies, and
// overlapping slices, to copy.
func Copy(dst, src []byte) int {
	n := min(len(dst), len(src))
	if n < CopyPiecesMin || n >= CopyCachedMax || overlap(dst[:n], src[:n]) {
		return copy(dst, src)
	}
	for off := 0; off < n; off += copyPiece {
		end := min(off+copyPiece, n)
		copy(dst[off:end], src[off:end])
	}
	return n
}

// overlap reports whether a and b share memory (but for being the same
// slice, which a forward copy handles). Its unsafe use only compares
// addresses; nothing is read through them.
func overlap(a, b []byte) bool {
	pa, pb := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return pa != pb && pa < pb+uintptr(len(b)) && pb < pa+uintptr(len(a))
}

const (
	// CopyPiecesMin is where Go's copy switches to non-temporal stores
	// (runtime/memmove_amd64.s), and Copy to pieces.
	CopyPiecesMin = 1 << 20
	// CopyCachedMax is the size from which Copy leaves a copy to copy.
	CopyCachedMax = 4 << 20

	copyPiece = CopyPiecesMin / 2
)
