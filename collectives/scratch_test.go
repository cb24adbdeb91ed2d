package collectives

import "testing"

// TestApart: apart tells which in and out the reductions refuse
// (checkApart: overlapping, not the same) and when 2-rank ReduceScatter
// may receive straight into out; overlaps of every kind count.
func TestApart(t *testing.T) {
	buf := make([]float32, 16)
	cases := []struct {
		name  string
		a, b  []float32
		apart bool
	}{
		{"disjoint", buf[0:4], buf[8:12], true},
		{"adjacent", buf[0:4], buf[4:8], true},
		{"adjacent, other order", buf[4:8], buf[0:4], true},
		{"same", buf[0:4], buf[0:4], false},
		{"shifted by one", buf[0:4], buf[1:5], false},
		{"shifted back", buf[3:7], buf[0:4], false},
		{"inside", buf[0:8], buf[2:4], false},
		{"last element shared", buf[0:4], buf[3:8], false},
		{"empty", buf[0:0], buf[0:4], true},
		{"other arrays", make([]float32, 4), make([]float32, 4), true},
	}
	for _, c := range cases {
		if got := apart(c.a, c.b); got != c.apart {
			t.Errorf("%s: apart = %v, want %v", c.name, got, c.apart)
		}
	}
}
