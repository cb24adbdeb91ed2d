package vec

import "golang.org/x/sys/cpu"

// hasAVX: the CPU has AVX and the OS saves its registers (cpu checks
// OSXSAVE and XCR0).
var hasAVX = cpu.X86.HasAVX

// addFloat32AVX adds n float32 (a multiple of 32) of s into d.
//
//go:noescape
func addFloat32AVX(d, s *float32, n int)

// addFloat64AVX adds n float64 (a multiple of 16) of s into d.
//
//go:noescape
func addFloat64AVX(d, s *float64, n int)
