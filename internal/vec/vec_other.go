//go:build !amd64

package vec

const hasAVX = false

func addFloat32AVX(d, s *float32, n int) { panic("vec: no AVX kernel on this architecture") }
func addFloat64AVX(d, s *float64, n int) { panic("vec: no AVX kernel on this architecture") }
