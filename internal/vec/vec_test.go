package vec

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
)

// TestAddMatchesLoop: every length from 0 to 300, and special values
// (NaN, infinities, signed zeros, subnormals), give the plain loop's bits.
func TestAddMatchesLoop(t *testing.T) {
	specials := []float64{math.NaN(), math.Inf(1), math.Inf(-1), 0, math.Copysign(0, -1), 5e-324, math.MaxFloat64, -1.5}
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 300; n++ {
		d64, s64 := make([]float64, n), make([]float64, n)
		d32, s32 := make([]float32, n), make([]float32, n)
		for i := range n {
			a, b := r.NormFloat64()*1e3, r.NormFloat64()
			if i%17 == 0 {
				a = specials[i%len(specials)]
			}
			if i%13 == 0 {
				b = specials[(i/13)%len(specials)]
			}
			d64[i], s64[i], d32[i], s32[i] = a, b, float32(a), float32(b)
		}
		w64, w32 := append([]float64(nil), d64...), append([]float32(nil), d32...)
		for i := range n {
			w64[i] += s64[i]
			w32[i] += s32[i]
		}
		AddFloat64(d64, s64)
		AddFloat32(d32, s32)
		for i := range n {
			if math.Float64bits(d64[i]) != math.Float64bits(w64[i]) && !(math.IsNaN(d64[i]) && math.IsNaN(w64[i])) {
				t.Fatalf("float64, n=%d, i=%d: %v, want %v", n, i, d64[i], w64[i])
			}
			if math.Float32bits(d32[i]) != math.Float32bits(w32[i]) && !(d32[i] != d32[i] && w32[i] != w32[i]) {
				t.Fatalf("float32, n=%d, i=%d: %v, want %v", n, i, d32[i], w32[i])
			}
		}
	}
	t.Logf("AVX kernels used: %v", hasAVX)
}

func BenchmarkAddFloat32(b *testing.B) {
	d, s := make([]float32, 1<<18), make([]float32, 1<<18) // 1 MiB each
	b.SetBytes(1 << 20)
	for b.Loop() {
		AddFloat32(d, s)
	}
}

func BenchmarkAddFloat32Loop(b *testing.B) {
	d, s := make([]float32, 1<<18), make([]float32, 1<<18)
	b.SetBytes(1 << 20)
	for b.Loop() {
		for i := range d {
			d[i] += s[i]
		}
	}
}

// TestCopy: Copy copies like copy at every size around its pieces and
// limits, including partial pieces, shorter sources, the same slice, and
// overlapping slices in both directions.
func TestCopy(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 512 << 10, 1<<20 - 1, 1 << 20, 1<<20 + 3, 3<<20 + 17, 4<<20 - 1, 4 << 20, 5 << 20} {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(i*7 + i>>16)
		}
		for _, dn := range []int{n, n + 5, n / 2} {
			dst, want := make([]byte, dn), make([]byte, dn)
			if got, w := Copy(dst, src), copy(want, src); got != w || !bytes.Equal(dst, want) {
				t.Fatalf("Copy of %d bytes into %d: returned %d (want %d), bytes equal %v", n, dn, got, w, bytes.Equal(dst, want))
			}
		}
	}
	const n = 3 << 20
	for _, shift := range []int{0, 1, -1, 700 << 10, -(700 << 10)} {
		buf, want := make([]byte, n+2<<20), make([]byte, n+2<<20)
		for i := range buf {
			buf[i] = byte(i * 13)
		}
		copy(want, buf)
		from, to := 1<<20, 1<<20+shift
		copy(want[to:to+n], want[from:from+n])
		Copy(buf[to:to+n], buf[from:from+n])
		if !bytes.Equal(buf, want) {
			t.Fatalf("overlapping Copy, destination shifted by %d: differs from copy", shift)
		}
	}
}
