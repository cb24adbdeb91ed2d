//go:build !race

#include "textflag.h"

// func Store64(w *atomic.Uint64, v uint64)
// A plain MOV: under x86-64's store order it is a release store.
TEXT ·Store64(SB), NOSPLIT, $0-16
	MOVQ w+0(FP), AX
	MOVQ v+8(FP), BX
	MOVQ BX, (AX)
	RET

// func SetTrue(b *atomic.Bool)
// atomic.Bool holds a uint32, 1 for true.
TEXT ·SetTrue(SB), NOSPLIT, $0-8
	MOVQ b+0(FP), AX
	MOVL $1, (AX)
	RET

// func Store32(w *atomic.Uint32, v uint32)
// A plain MOV, as Store64.
TEXT ·Store32(SB), NOSPLIT, $0-12
	MOVQ w+0(FP), AX
	MOVL v+8(FP), BX
	MOVL BX, (AX)
	RET
