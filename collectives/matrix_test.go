package collectives_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// worldSizes is the correctness matrix's ranks: 1 to 16, 24 and 32, so
// that non-powers of two and the folding of the extra ranks are covered.
func worldSizes() []int {
	s := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 32}
	if testing.Short() {
		s = []int{1, 2, 3, 4, 5, 7, 8, 13}
	}
	return s
}

// counts covers 0, 1, odd and beyond every threshold (with the forced
// algorithms, "beyond" needs only be a few blocks per rank).
var counts = []int{0, 1, 7, 101}

// val is rank r's element i: small integers, so that float sums are exact
// in every order and the serial reference compares exactly.
func val(r, i int) float64 { return float64((r*7+i*3)%11 - 5) }

// TestMatrix runs every collective, for every world size, count and
// algorithm family, against a serial reference.
func TestMatrix(t *testing.T) {
	for _, n := range worldSizes() {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			for _, alg := range collectives.Algorithms {
				restore := alg.Force()
				commtest.Run(t, ws, func(c *comm.Comm) error { return matrixOnRank(c) })
				restore()
				if t.Failed() {
					t.Fatalf("algorithm family %s failed", alg.Name)
				}
			}
		})
	}
}

func matrixOnRank(c *comm.Comm) error {
	n, me := c.Size(), c.Rank()
	for _, cnt := range counts {
		in := make([]float64, cnt)
		for i := range in {
			in[i] = val(me, i)
		}
		ref := func(op func(a, b float64) float64) []float64 {
			out := make([]float64, cnt)
			for i := range out {
				out[i] = val(0, i)
				for r := 1; r < n; r++ {
					out[i] = op(out[i], val(r, i))
				}
			}
			return out
		}
		sum := ref(func(a, b float64) float64 { return a + b })
		mx := ref(math.Max)
		check := func(what string, got, want []float64) error {
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s count %d: got %v, want %v", what, cnt, head(got), head(want))
			}
			return nil
		}
		out := make([]float64, cnt)
		if err := collectives.Allreduce(c, in, out, collectives.Sum); err != nil {
			return err
		}
		if err := check("allreduce sum", out, sum); err != nil {
			return err
		}
		inplace := slices.Clone(in)
		if err := collectives.Allreduce(c, inplace, inplace, collectives.Max); err != nil {
			return err
		}
		if err := check("allreduce max in place", inplace, mx); err != nil {
			return err
		}
		for _, root := range []int{0, n - 1, n / 2} {
			red := make([]float64, cnt)
			if err := collectives.Reduce(c, in, red, collectives.Sum, root); err != nil {
				return err
			}
			if me == root {
				if err := check(fmt.Sprintf("reduce root %d", root), red, sum); err != nil {
					return err
				}
			}
			ip := slices.Clone(in)
			if err := collectives.Reduce(c, ip, ip, collectives.Sum, root); err != nil {
				return err
			}
			if me == root {
				if err := check(fmt.Sprintf("reduce in place, root %d", root), ip, sum); err != nil {
					return err
				}
			}
			b := make([]float64, cnt)
			if me == root {
				copy(b, sum)
			}
			if err := collectives.Bcast(c, b, root); err != nil {
				return err
			}
			if err := check(fmt.Sprintf("bcast root %d", root), b, sum); err != nil {
				return err
			}
			// Gather and scatter of blocks of cnt elements.
			all := make([]float64, cnt*n)
			if err := collectives.Gather(c, in, all, root); err != nil {
				return err
			}
			if me == root {
				for r := 0; r < n; r++ {
					for i := 0; i < cnt; i++ {
						if all[r*cnt+i] != val(r, i) {
							return fmt.Errorf("gather root %d count %d: block %d element %d is %v", root, cnt, r, i, all[r*cnt+i])
						}
					}
				}
			}
			mine := make([]float64, cnt)
			if err := collectives.Scatter(c, all, mine, root); err != nil {
				return err
			}
			if err := check(fmt.Sprintf("scatter root %d", root), mine, in); err != nil {
				return err
			}
		}
		all := make([]float64, cnt*n)
		if err := collectives.Allgather(c, in, all); err != nil {
			return err
		}
		for r := 0; r < n; r++ {
			for i := 0; i < cnt; i++ {
				if all[r*cnt+i] != val(r, i) {
					return fmt.Errorf("allgather count %d: block %d element %d is %v", cnt, r, i, all[r*cnt+i])
				}
			}
		}
		// Alltoall: block r of rank s's send is val(s*n+r, i).
		send := make([]float64, cnt*n)
		for r := 0; r < n; r++ {
			for i := 0; i < cnt; i++ {
				send[r*cnt+i] = val(me*n+r, i)
			}
		}
		recv := make([]float64, cnt*n)
		if err := collectives.Alltoall(c, send, recv); err != nil {
			return err
		}
		for s := 0; s < n; s++ {
			for i := 0; i < cnt; i++ {
				if recv[s*cnt+i] != val(s*n+me, i) {
					return fmt.Errorf("alltoall count %d: block from %d element %d is %v", cnt, s, i, recv[s*cnt+i])
				}
			}
		}
		// ReduceScatter of a vector of cnt*n elements in blocks of cnt.
		big := make([]float64, cnt*n)
		for i := range big {
			big[i] = val(me, i)
		}
		blk := make([]float64, cnt)
		if err := collectives.ReduceScatterBlock(c, big, blk, collectives.Sum); err != nil {
			return err
		}
		for i := 0; i < cnt; i++ {
			want := 0.0
			for r := 0; r < n; r++ {
				want += val(r, me*cnt+i)
			}
			if blk[i] != want {
				return fmt.Errorf("reduce_scatter count %d: element %d is %v, want %v", cnt, i, blk[i], want)
			}
		}
		// Again with out this rank's own block of in, which every
		// algorithm must read before it writes there.
		own := big[me*cnt : (me+1)*cnt]
		if err := collectives.ReduceScatterBlock(c, big, own, collectives.Sum); err != nil {
			return err
		}
		if !slices.Equal(own, blk) {
			return fmt.Errorf("reduce_scatter count %d, out inside in: %v, want %v", cnt, head(own), head(blk))
		}
		// Scan and Exscan.
		sc := make([]float64, cnt)
		if err := collectives.Scan(c, in, sc, collectives.Sum); err != nil {
			return err
		}
		ex := make([]float64, cnt)
		if err := collectives.Exscan(c, in, ex, collectives.Sum); err != nil {
			return err
		}
		for i := 0; i < cnt; i++ {
			want := 0.0
			for r := 0; r < me; r++ {
				want += val(r, i)
			}
			if me > 0 && ex[i] != want {
				return fmt.Errorf("exscan count %d: element %d is %v, want %v", cnt, i, ex[i], want)
			}
			if sc[i] != want+val(me, i) {
				return fmt.Errorf("scan count %d: element %d is %v, want %v", cnt, i, sc[i], want+val(me, i))
			}
		}
	}
	return collectives.Barrier(c)
}

func head(xs []float64) []float64 {
	if len(xs) > 8 {
		return xs[:8]
	}
	return xs
}

// affine is a non-commutative, associative operator: elements are maps
// x -> m*x + c (Value m, Index c), combined left then right.
var affine = collectives.UserOp(func(inout, in []collectives.Loc[int64]) {
	for i := range inout {
		m1, c1 := inout[i].Value, inout[i].Index
		m2, c2 := in[i].Value, in[i].Index
		inout[i] = collectives.Loc[int64]{Value: m1 * m2, Index: m2*c1 + c2}
	}
}, false)

func affineVal(r, i int) collectives.Loc[int64] {
	return collectives.Loc[int64]{Value: int64(r%3 + 1 + i%2), Index: int64(r*5 - i)}
}

// TestOperators covers every operator on several types, the
// non-commutative user operator in rank order, and MinLoc/MaxLoc.
func TestOperators(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			for _, alg := range collectives.Algorithms {
				restore := alg.Force()
				commtest.Run(t, ws, func(c *comm.Comm) error { return operatorsOnRank(c) })
				restore()
			}
		})
	}
}

func operatorsOnRank(c *comm.Comm) error {
	n, me := c.Size(), c.Rank()
	const cnt = 9
	ints := make([]int32, cnt)
	u8 := make([]uint8, cnt)
	cx := make([]complex128, cnt)
	for i := range ints {
		ints[i] = int32(me*3 + i + 1)
		u8[i] = uint8(1 << (me % 8))
		cx[i] = complex(float64(me+1), float64(i))
	}
	type intCase struct {
		op   collectives.Op
		want func(i int) int32
	}
	for _, ic := range []intCase{
		{collectives.Sum, func(i int) int32 { return int32(3*n*(n-1)/2 + n*(i+1)) }},
		{collectives.Min, func(i int) int32 { return int32(i + 1) }},
		{collectives.Max, func(i int) int32 { return int32((n-1)*3 + i + 1) }},
		// A reduction over one rank is its input, as in MPI.
		{collectives.Land, func(i int) int32 { return map[bool]int32{true: int32(i + 1), false: 1}[n == 1] }},
		{collectives.Lor, func(i int) int32 { return map[bool]int32{true: int32(i + 1), false: 1}[n == 1] }},
	} {
		out := make([]int32, cnt)
		if err := collectives.Allreduce(c, ints, out, ic.op); err != nil {
			return err
		}
		for i := range out {
			if out[i] != ic.want(i) {
				return fmt.Errorf("allreduce %s int32: element %d is %d, want %d", ic.op, i, out[i], ic.want(i))
			}
		}
	}
	var bor, bxor uint8
	band := uint8(0xff)
	for r := 0; r < n; r++ {
		bor |= 1 << (r % 8)
		bxor ^= 1 << (r % 8)
		band &= 1 << (r % 8)
	}
	for _, bc := range []struct {
		op   collectives.Op
		want uint8
	}{{collectives.Bor, bor}, {collectives.Bxor, bxor}, {collectives.Band, band}} {
		out := make([]uint8, cnt)
		if err := collectives.Allreduce(c, u8, out, bc.op); err != nil {
			return err
		}
		if out[0] != bc.want {
			return fmt.Errorf("allreduce %s uint8: %#x, want %#x", bc.op, out[0], bc.want)
		}
	}
	prod := make([]complex128, cnt)
	if err := collectives.Allreduce(c, cx, prod, collectives.Prod); err != nil {
		return err
	}
	want := complex(1, 0)
	for r := 0; r < n; r++ {
		want *= complex(float64(r+1), 0)
	}
	if prod[0] != want {
		return fmt.Errorf("allreduce prod complex128: %v, want %v", prod[0], want)
	}
	// MinLoc / MaxLoc: value and rank.
	loc := []collectives.Loc[float64]{{Value: float64((me * 5) % 7), Index: int64(me)}}
	minl, maxl := make([]collectives.Loc[float64], 1), make([]collectives.Loc[float64], 1)
	if err := collectives.Allreduce(c, loc, minl, collectives.MinLoc); err != nil {
		return err
	}
	if err := collectives.Allreduce(c, loc, maxl, collectives.MaxLoc); err != nil {
		return err
	}
	bestMin, bestMax := collectives.Loc[float64]{Value: math.Inf(1)}, collectives.Loc[float64]{Value: math.Inf(-1)}
	for r := 0; r < n; r++ {
		v := float64((r * 5) % 7)
		if v < bestMin.Value {
			bestMin = collectives.Loc[float64]{Value: v, Index: int64(r)}
		}
		if v > bestMax.Value {
			bestMax = collectives.Loc[float64]{Value: v, Index: int64(r)}
		}
	}
	if minl[0] != bestMin || maxl[0] != bestMax {
		return fmt.Errorf("minloc %+v (want %+v), maxloc %+v (want %+v)", minl[0], bestMin, maxl[0], bestMax)
	}
	// A non-commutative user operator: every rank must get the maps
	// composed in rank order.
	av := make([]collectives.Loc[int64], cnt)
	for i := range av {
		av[i] = affineVal(me, i)
	}
	aout := make([]collectives.Loc[int64], cnt)
	if err := collectives.Allreduce(c, av, aout, affine); err != nil {
		return err
	}
	iout := make([]collectives.Loc[int64], cnt)
	if _, err := collectives.Iallreduce(c, av, iout, affine).Wait(); err != nil {
		return err
	}
	sc := make([]collectives.Loc[int64], cnt)
	if err := collectives.Scan(c, av, sc, affine); err != nil {
		return err
	}
	// ReduceScatter of the affine operator: block me of the maps composed
	// in rank order.
	big := make([]collectives.Loc[int64], cnt*n)
	for i := range big {
		big[i] = affineVal(me, i)
	}
	rs := make([]collectives.Loc[int64], cnt)
	if err := collectives.ReduceScatterBlock(c, big, rs, affine); err != nil {
		return err
	}
	for i := 0; i < cnt; i++ {
		acc := affineVal(0, me*cnt+i)
		for r := 1; r < n; r++ {
			nx := affineVal(r, me*cnt+i)
			acc = collectives.Loc[int64]{Value: acc.Value * nx.Value, Index: nx.Value*acc.Index + nx.Index}
		}
		if rs[i] != acc {
			return fmt.Errorf("reduce_scatter of the affine operator: element %d is %+v, want %+v", i, rs[i], acc)
		}
	}
	for i := 0; i < cnt; i++ {
		acc := affineVal(0, i)
		for r := 1; r < n; r++ {
			nx := affineVal(r, i)
			acc = collectives.Loc[int64]{Value: acc.Value * nx.Value, Index: nx.Value*acc.Index + nx.Index}
			if r == me {
				if sc[i] != acc {
					return fmt.Errorf("scan of the affine operator: %+v, want %+v", sc[i], acc)
				}
			}
		}
		if aout[i] != acc || iout[i] != acc {
			return fmt.Errorf("allreduce of the affine operator: %+v / iallreduce %+v, want %+v", aout[i], iout[i], acc)
		}
	}
	// Operators that do not apply are errors.
	if err := collectives.Allreduce(c, []float64{1}, make([]float64, 1), collectives.Band); !errors.Is(err, comm.ErrInvalidArg) {
		return fmt.Errorf("band on floats: %v", err)
	}
	return nil
}

// TestOverlapRefused: in and out that overlap without being the same
// vector (a window shifted by one element) are refused by the reductions,
// whichever algorithm the size picks (they read in while out fills: a
// Reduce root of 3 elements got 2 3 4 for 2 2 2), naming the overlap:
// Allreduce on every rank (each finds it in its own arguments, or hears
// of it from a rank that did), Reduce at the root, and the nonblocking
// forms alike.
func TestOverlapRefused(t *testing.T) {
	calls := []struct {
		name string
		f    func(c *comm.Comm, in, out []float32) error
		all  bool // every rank overlaps; else only the root (rank 0)
	}{
		{"allreduce", func(c *comm.Comm, in, out []float32) error {
			return collectives.Allreduce(c, in, out, collectives.Sum)
		}, true},
		{"iallreduce", func(c *comm.Comm, in, out []float32) error {
			_, err := collectives.Iallreduce(c, in, out, collectives.Sum).Wait()
			return err
		}, true},
		{"reduce", func(c *comm.Comm, in, out []float32) error {
			return collectives.Reduce(c, in, out, collectives.Sum, 0)
		}, false},
		{"ireduce", func(c *comm.Comm, in, out []float32) error {
			_, err := collectives.Ireduce(c, in, out, collectives.Sum, 0).Wait()
			return err
		}, false},
	}
	for _, call := range calls {
		for _, n := range []int{2, 3, 4} {
			for _, cnt := range []int{3, 100, 40000} {
				ws := commtest.Worlds(t, n, commtest.Shm)
				errs := make([]error, n)
				commtest.Run(t, ws, func(c *comm.Comm) error {
					buf := make([]float32, cnt+1)
					in, out := buf[:cnt], buf[1:]
					if !call.all && c.Rank() != 0 {
						out = make([]float32, cnt)
					}
					errs[c.Rank()] = call.f(c, in, out)
					return nil
				})
				for r, err := range errs {
					if !call.all && r != 0 {
						continue // a rank that only sends may return first
					}
					if err == nil || !strings.Contains(err.Error(), "in and out overlap") {
						t.Errorf("%s, %d ranks, %d elements: rank %d got %v, want the overlap named", call.name, n, cnt, r, err)
					}
				}
				if !slices.ContainsFunc(errs, func(err error) bool { return errors.Is(err, comm.ErrInvalidArg) }) {
					t.Errorf("%s, %d ranks, %d elements: no rank reported ErrInvalidArg: %v", call.name, n, cnt, errs)
				}
			}
		}
	}
}

// TestBitIdentical: with random floating-point inputs (where the order of
// additions changes the result), every rank gets the same bits.
func TestBitIdentical(t *testing.T) {
	for _, n := range []int{2, 3, 5, 6, 8, 13} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			for _, alg := range collectives.Algorithms {
				restore := alg.Force()
				results := make([][]float64, n)
				commtest.Run(t, ws, func(c *comm.Comm) error {
					rng := rand.New(rand.NewPCG(uint64(c.Rank()), 5))
					in := make([]float64, 1000)
					for i := range in {
						in[i] = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10))
					}
					out := make([]float64, len(in))
					err := collectives.Allreduce(c, in, out, collectives.Sum)
					results[c.Rank()] = out
					return err
				})
				restore()
				for r := 1; r < n; r++ {
					for i := range results[0] {
						if math.Float64bits(results[r][i]) != math.Float64bits(results[0][i]) {
							t.Fatalf("%s: rank %d element %d = %v, rank 0 has %v", alg.Name, r, i, results[r][i], results[0][i])
						}
					}
				}
			}
		})
	}
}

// TestMismatch: ranks that disagree on a count get an error, not
// corrupted data. (With more ranks, the ranks that do not see the bad
// message may keep waiting; a program ends the job on such an error.)
func TestMismatch(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		cnt := 4
		if c.Rank() == 1 {
			cnt = 5
		}
		err := collectives.Allreduce(c, make([]float64, cnt), make([]float64, cnt), collectives.Sum)
		if err == nil {
			return errors.New("mismatched counts were not reported")
		}
		return nil
	})
}

func TestVariants(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			for _, alg := range collectives.Algorithms {
				restore := alg.Force()
				commtest.Run(t, ws, func(c *comm.Comm) error { return variantsOnRank(c) })
				restore()
				if t.Failed() {
					t.Fatalf("algorithm family %s failed", alg.Name)
				}
			}
		})
	}
}

// variantsOnRank runs the v collectives with uneven counts on one rank.
func variantsOnRank(c *comm.Comm) error {
	me, n := c.Rank(), c.Size()
	// Rank r contributes r+1 elements (value r).
	counts := make([]int, n)
	displs := make([]int, n)
	total := 0
	for r := range counts {
		counts[r] = r + 1
		displs[r] = total + r // a gap between blocks
		total += r + 1 + r
	}
	mine := make([]int64, me+1)
	for i := range mine {
		mine[i] = int64(me)
	}
	all := make([]int64, total)
	if err := collectives.Allgatherv(c, mine, all, counts, displs); err != nil {
		return err
	}
	g := make([]int64, total)
	if err := collectives.Gatherv(c, mine, g, counts, displs, n-1); err != nil {
		return err
	}
	for r := 0; r < n; r++ {
		for i := 0; i < counts[r]; i++ {
			if all[displs[r]+i] != int64(r) || me == n-1 && g[displs[r]+i] != int64(r) {
				return fmt.Errorf("allgatherv/gatherv: block %d element %d", r, i)
			}
		}
	}
	// Allgatherv with the blocks packed in rank order (nil displs), one
	// of them empty: what recursive doubling takes on a power of two.
	packedCounts := slices.Clone(counts)
	packedCounts[n/2] = 0
	packed := make([]int64, total)
	if err := collectives.Allgatherv(c, mine[:packedCounts[me]], packed[:total-n*(n-1)/2-counts[n/2]], packedCounts, nil); err != nil {
		return err
	}
	at := 0
	for r := 0; r < n; r++ {
		for i := 0; i < packedCounts[r]; i++ {
			if packed[at] != int64(r) {
				return fmt.Errorf("allgatherv, packed: block %d element %d is %d", r, i, packed[at])
			}
			at++
		}
	}
	back := make([]int64, me+1)
	if err := collectives.Scatterv(c, all, counts, displs, back, 0); err != nil {
		return err
	}
	if !slices.Equal(back, mine) {
		return fmt.Errorf("scatterv: %v", back)
	}
	// Alltoallv: rank s sends s+1 copies of (s*100+r) to rank r.
	sc, rc := make([]int, n), make([]int, n)
	for r := range sc {
		sc[r] = me + 1
		rc[r] = r + 1
	}
	send := make([]int64, (me+1)*n)
	for r := 0; r < n; r++ {
		for i := 0; i <= me; i++ {
			send[r*(me+1)+i] = int64(me*100 + r)
		}
	}
	recv := make([]int64, n*(n+1)/2)
	if err := collectives.Alltoallv(c, send, sc, nil, recv, rc, nil); err != nil {
		return err
	}
	off := 0
	for s := 0; s < n; s++ {
		for i := 0; i <= s; i++ {
			if recv[off+i] != int64(s*100+me) {
				return fmt.Errorf("alltoallv from %d: %d", s, recv[off+i])
			}
		}
		off += s + 1
	}
	// ReduceScatter with uneven counts.
	in := make([]int64, total)
	for i := range in {
		in[i] = int64(i)
	}
	rsCounts := padCounts(counts, total)
	out := make([]int64, rsCounts[me])
	if err := collectives.ReduceScatter(c, in, out, rsCounts, collectives.Sum); err != nil {
		return err
	}
	start := 0
	for r := 0; r < me; r++ {
		start += padCounts(counts, total)[r]
	}
	for i := range out {
		if out[i] != int64(n*(start+i)) {
			return fmt.Errorf("reduce_scatter: element %d is %d", i, out[i])
		}
	}
	// ReduceScatter with empty blocks: the odd ranks get none (rank 0
	// reduces and sends the others theirs, in the "short" and "tree"
	// families).
	var holeCounts []int
	holes := 0
	for r := 0; r < n; r++ {
		holeCounts = append(holeCounts, (1-r%2)*(r+2))
		holes += holeCounts[r]
	}
	hin := make([]int64, holes)
	for i := range hin {
		hin[i] = int64(i * (me + 1))
	}
	hout := make([]int64, holeCounts[me]+1) // one more than the block: untouched
	hout[len(hout)-1] = -7
	if err := collectives.ReduceScatter(c, hin, hout, holeCounts, collectives.Sum); err != nil {
		return err
	}
	hstart := 0
	for r := 0; r < me; r++ {
		hstart += holeCounts[r]
	}
	// A wrong value is reported at the end: returned here, it would
	// leave the other ranks waiting in the calls below.
	var holeErr error
	for i := range holeCounts[me] {
		if want := int64((hstart + i) * n * (n + 1) / 2); hout[i] != want && holeErr == nil {
			holeErr = fmt.Errorf("reduce_scatter with empty blocks: element %d is %d, want %d", i, hout[i], want)
		}
	}
	if hout[len(hout)-1] != -7 {
		holeErr = fmt.Errorf("reduce_scatter with empty blocks wrote past rank %d's block", me)
	}
	// Nonblocking: Ibarrier and Ibcast overlapping.
	b := make([]int32, 10)
	if me == 2%n {
		for i := range b {
			b[i] = int32(i)
		}
	}
	r1 := collectives.Ibcast(c, b, 2%n)
	r2 := collectives.Ibarrier(c)
	if _, err := comm.Waitall(r1, r2); err != nil {
		return err
	}
	if b[9] != 9 {
		return fmt.Errorf("ibcast: %v", b)
	}
	return holeErr
}

// padCounts makes counts add up to total (the last block takes the rest).
func padCounts(counts []int, total int) []int {
	c := slices.Clone(counts)
	sum := 0
	for _, x := range c {
		sum += x
	}
	c[len(c)-1] += total - sum
	return c
}
