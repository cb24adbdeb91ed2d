//go:build !race

#include "textflag.h"

// func Store64(w *atomic.Uint64, v uint64)
// STLR: store-release.
TEXT ·Store64(SB), NOSPLIT, $0-16
	MOVD w+0(FP), R0
	MOVD v+8(FP), R1
	STLR R1, (R0)
	RET

// func SetTrue(b *atomic.Bool)
// atomic.Bool holds a uint32, 1 for true.
TEXT ·SetTrue(SB), NOSPLIT, $0-8
	MOVD  b+0(FP), R0
	MOVW  $1, R1
	STLRW R1, (R0)
	RET

// func Store32(w *atomic.Uint32, v uint32)
// STLRW: store-release of a word.
TEXT ·Store32(SB), NOSPLIT, $0-12
	MOVD  w+0(FP), R0
	MOVWU v+8(FP), R1
	STLRW R1, (R0)
	RET
