package vec

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
