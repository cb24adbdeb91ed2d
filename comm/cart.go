package comm

import (
	"fmt"
	"slices"
)

// Cartesian grids (MPI's Cartesian topologies): a communicator whose
// ranks are laid out on a grid of dims[0] x dims[1] x ..., row-major (the
// last dimension varies fastest), each dimension open or periodic. Halo
// exchanges ask Shift for their neighbours; past an open edge Shift gives
// ProcNull, to which sends and from which receives complete at once, so
// the same code runs at the edges and inside.

// DimsCreate fills the zero entries of dims with a balanced factorization
// of n (as MPI_Dims_create): the product of all entries is n, and the
// filled ones are as close to each other as possible, in non-increasing
// order. Entries already set are kept and must divide n. With dims nil or
// empty it returns nil and an error: the number of dimensions comes from
// len(dims).
func DimsCreate(n int, dims []int) ([]int, error) {
	if n < 1 || len(dims) == 0 {
		return nil, fmt.Errorf("%w: DimsCreate(%d, %v): need n >= 1 and at least one dimension", ErrInvalidArg, n, dims)
	}
	out := slices.Clone(dims)
	rest, free := n, 0
	for _, d := range out {
		switch {
		case d < 0:
			return nil, fmt.Errorf("%w: DimsCreate(%d, %v): negative dimension", ErrInvalidArg, n, dims)
		case d == 0:
			free++
		case rest%d != 0:
			return nil, fmt.Errorf("%w: DimsCreate(%d, %v): %d does not divide what is left of %d", ErrInvalidArg, n, dims, d, n)
		default:
			rest /= d
		}
	}
	if free == 0 {
		if rest != 1 {
			return nil, fmt.Errorf("%w: DimsCreate(%d, %v): the dimensions multiply to %d, not %d", ErrInvalidArg, n, dims, n/rest, n)
		}
		return out, nil
	}
	// Spread the prime factors of rest, largest first, each onto the
	// currently smallest free dimension.
	f := make([]int, free)
	for i := range f {
		f[i] = 1
	}
	var primes []int
	for p, m := 2, rest; m > 1; {
		if p*p > m {
			primes = append(primes, m)
			break
		}
		if m%p == 0 {
			primes = append(primes, p)
			m /= p
		} else {
			p++
		}
	}
	slices.Reverse(primes)
	for _, p := range primes {
		i := 0
		for j := range f {
			if f[j] < f[i] {
				i = j
			}
		}
		f[i] *= p
	}
	slices.Sort(f)
	slices.Reverse(f)
	k := 0
	for i := range out {
		if out[i] == 0 {
			out[i] = f[k]
			k++
		}
	}
	return out, nil
}

// A Cart is a communicator with a Cartesian grid. It is a *Comm (all of
// its methods, and every collective, work on it) with the grid's own
// methods. Like a Comm it is safe for concurrent use.
type Cart struct {
	*Comm
	dims     []int
	periodic []bool
	coords   []int
}

// CartCreate makes a communicator of the first prod(dims) ranks of c laid
// out on a grid of dims, each dimension periodic (wrapping around) or not.
// It is collective over c. Ranks of c beyond the grid get a nil *Cart and
// no error. reorder lets the runtime renumber ranks for locality; parley
// keeps c's order (which mpirun's mapping already made local).
func (c *Comm) CartCreate(dims []int, periodic []bool, reorder bool) (*Cart, error) {
	if err := c.usable("cart_create"); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) error {
		return &OpError{Op: "cart_create", Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: %s", ErrInvalidArg, fmt.Sprintf(format, args...))}
	}
	if len(dims) == 0 || len(periodic) != len(dims) {
		return nil, fail("%d dimensions and %d periodic flags", len(dims), len(periodic))
	}
	n := 1
	for _, d := range dims {
		if d < 1 {
			return nil, fail("dimension %d in %v", d, dims)
		}
		n *= d
	}
	if n > c.size {
		return nil, fail("a grid of %v needs %d ranks, the communicator has %d", dims, n, c.size)
	}
	color := 0
	if c.rank >= n {
		color = Undefined
	}
	sub, err := c.Split(color, c.rank)
	if err != nil || sub == nil {
		return nil, err
	}
	return newCart(sub, dims, periodic), nil
}

func newCart(c *Comm, dims []int, periodic []bool) *Cart {
	g := &Cart{Comm: c, dims: slices.Clone(dims), periodic: slices.Clone(periodic)}
	g.coords = g.CoordsOf(c.rank)
	return g
}

// Dims returns the grid's dimensions.
func (g *Cart) Dims() []int { return slices.Clone(g.dims) }

// Periodic returns which dimensions wrap around.
func (g *Cart) Periodic() []bool { return slices.Clone(g.periodic) }

// Coords returns the calling rank's coordinates.
func (g *Cart) Coords() []int { return slices.Clone(g.coords) }

// CoordsOf returns the coordinates of rank (nil for a rank outside the
// grid).
func (g *Cart) CoordsOf(rank int) []int {
	if rank < 0 || rank >= g.size {
		return nil
	}
	coords := make([]int, len(g.dims))
	for i := len(g.dims) - 1; i >= 0; i-- {
		coords[i] = rank % g.dims[i]
		rank /= g.dims[i]
	}
	return coords
}

// RankOf returns the rank at coords. A coordinate outside an open
// dimension is an error (ErrInvalidArg); in a periodic one it wraps.
func (g *Cart) RankOf(coords []int) (int, error) {
	if len(coords) != len(g.dims) {
		return ProcNull, fmt.Errorf("%w: %d coordinates on a %d-dimensional grid", ErrInvalidArg, len(coords), len(g.dims))
	}
	rank := 0
	for i, x := range coords {
		d := g.dims[i]
		if x < 0 || x >= d {
			if !g.periodic[i] {
				return ProcNull, fmt.Errorf("%w: coordinate %d is outside 0..%d of open dimension %d", ErrInvalidArg, x, d-1, i)
			}
			x = ((x % d) + d) % d
		}
		rank = rank*d + x
	}
	return rank, nil
}

// Shift returns the ranks disp steps away along dimension dim: src, from
// which a shift by disp receives, and dest, to which it sends (as
// MPI_Cart_shift). Past the edge of an open dimension the answer is
// ProcNull.
func (g *Cart) Shift(dim, disp int) (src, dest int) {
	if dim < 0 || dim >= len(g.dims) {
		return ProcNull, ProcNull
	}
	at := func(delta int) int {
		c := slices.Clone(g.coords)
		c[dim] += delta
		r, err := g.RankOf(c)
		if err != nil {
			return ProcNull
		}
		return r
	}
	return at(-disp), at(disp)
}

// Sub splits the grid into the sub-grids that keep the dimensions where
// keep is true (as MPI_Cart_sub): ranks that agree on the dropped
// coordinates form one. It is collective over g.
func (g *Cart) Sub(keep []bool) (*Cart, error) {
	if err := g.usable("cart_sub"); err != nil {
		return nil, err
	}
	if len(keep) != len(g.dims) {
		return nil, &OpError{Op: "cart_sub", Comm: g.name(), Rank: g.rank, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: %d flags on a %d-dimensional grid", ErrInvalidArg, len(keep), len(g.dims))}
	}
	color, key := 0, 0
	var dims []int
	var periodic []bool
	for i, k := range keep {
		if k {
			key = key*g.dims[i] + g.coords[i]
			dims = append(dims, g.dims[i])
			periodic = append(periodic, g.periodic[i])
		} else {
			color = color*g.dims[i] + g.coords[i]
		}
	}
	sub, err := g.Split(color, key)
	if err != nil {
		return nil, err
	}
	if len(dims) == 0 {
		dims, periodic = []int{1}, []bool{false}
	}
	return newCart(sub, dims, periodic), nil
}

// Neighbors returns, for each dimension in order, the ranks one step
// below and above (ProcNull past an open edge): the 2*len(Dims()) ranks of
// the neighbourhood collectives, in their order.
func (g *Cart) Neighbors() []int {
	out := make([]int, 0, 2*len(g.dims))
	for d := range g.dims {
		src, dest := g.Shift(d, 1)
		out = append(out, src, dest)
	}
	return out
}
