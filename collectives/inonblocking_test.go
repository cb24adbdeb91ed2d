package collectives_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// TestEveryNonblocking: each nonblocking collective gives what its
// blocking form gives, at rank counts that are not powers of two, with
// all of them in flight at once (started in one order, waited for in
// another), and a non-commutative operator in rank order.
func TestEveryNonblocking(t *testing.T) {
	concat := collectives.UserOp(func(inout, in []int64) {
		for i := range inout {
			inout[i] = inout[i]*10 + in[i] // not commutative: the order shows
		}
	}, false)
	for _, n := range []int{1, 2, 3, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			commtest.Run(t, ws, func(c *comm.Comm) error {
				me := c.Rank()
				const blk = 3
				mine := []int64{int64(me), int64(me + 1), int64(me + 2)}
				all := make([]int64, blk*n)
				for p := 0; p < n; p++ {
					copy(all[p*blk:], []int64{int64(p), int64(p + 1), int64(p + 2)})
				}
				counts, displs := make([]int, n), make([]int, n)
				total := 0
				for p := range counts {
					counts[p], displs[p] = p+1, total
					total += p + 1
				}
				vmine := make([]int64, me+1)
				for i := range vmine {
					vmine[i] = int64(me)
				}
				root := n - 1
				gat, sca, allg, a2a := make([]int64, blk*n), make([]int64, blk), make([]int64, blk*n), make([]int64, blk*n)
				gatv, allgv, scav := make([]int64, total), make([]int64, total), make([]int64, me+1)
				red, rs, scan, exscan := make([]int64, blk), make([]int64, 1), make([]int64, blk), make([]int64, blk)
				for i := range exscan {
					exscan[i] = -7
				}
				send := make([]int64, blk*n)
				for p := range n {
					send[p*blk] = int64(me*100 + p)
				}
				rsIn := make([]int64, n)
				for p := range rsIn {
					rsIn[p] = int64(me + 1)
				}
				reqs := []*comm.Request{
					collectives.Igather(c, mine, gat, root),
					collectives.Iscatter(c, all, sca, root),
					collectives.Iallgather(c, mine, allg),
					collectives.Ialltoall(c, send, a2a),
					collectives.Igatherv(c, vmine, gatv, counts, displs, root),
					collectives.Iallgatherv(c, vmine, allgv, counts, displs),
					collectives.Iscatterv(c, allgvWant(n), counts, displs, scav, root),
					collectives.Ireduce(c, mine, red, concat, root),
					collectives.IreduceScatter(c, rsIn, rs, onesOf(n), collectives.Sum),
					collectives.Iscan(c, mine, scan, concat),
					collectives.Iexscan(c, mine, exscan, concat),
				}
				slices.Reverse(reqs)
				if _, err := comm.Waitall(reqs...); err != nil {
					return err
				}
				check := func(name string, got, want []int64) error {
					if !slices.Equal(got, want) {
						return fmt.Errorf("%s: %v, want %v", name, got, want)
					}
					return nil
				}
				for _, e := range []error{
					when(me == root, check("igather", gat, all)),
					check("iscatter", sca, all[me*blk:(me+1)*blk]),
					check("iallgather", allg, all),
					check("iallgatherv", allgv, allgvWant(n)),
					check("iscatterv", scav, vmine),
					when(me == root, check("igatherv", gatv, allgvWant(n))),
					check("ireduce_scatter", rs, []int64{int64(n * (n + 1) / 2)}),
				} {
					if e != nil {
						return e
					}
				}
				for p := range n {
					if a2a[p*blk] != int64(p*100+me) {
						return fmt.Errorf("ialltoall: block %d starts %d", p, a2a[p*blk])
					}
				}
				// Blocking forms of the reductions, for comparison.
				red2, scan2, exscan2 := make([]int64, blk), make([]int64, blk), slices.Clone(exscan)
				for i := range exscan2 {
					exscan2[i] = -7
				}
				if err := collectives.Reduce(c, mine, red2, concat, root); err != nil {
					return err
				}
				if err := collectives.Scan(c, mine, scan2, concat); err != nil {
					return err
				}
				if err := collectives.Exscan(c, mine, exscan2, concat); err != nil {
					return err
				}
				for _, e := range []error{when(me == root, check("ireduce", red, red2)), check("iscan", scan, scan2), check("iexscan", exscan, exscan2)} {
					if e != nil {
						return e
					}
				}
				return nil
			})
		})
	}
}

func when(cond bool, err error) error {
	if cond {
		return err
	}
	return nil
}

// allgvWant is rank p's p+1 copies of p, for every p, packed.
func allgvWant(n int) []int64 {
	var out []int64
	for p := range n {
		for range p + 1 {
			out = append(out, int64(p))
		}
	}
	return out
}

func onesOf(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = 1
	}
	return out
}

// TestNeighbors: neighbourhood collectives on grids, periodic dimensions
// of size 2 included (both neighbours are the same rank, and each block
// must still come from the right direction), open edges left untouched.
func TestNeighbors(t *testing.T) {
	for _, tc := range []struct {
		dims     []int
		periodic []bool
	}{
		{[]int{2}, []bool{true}},
		{[]int{3}, []bool{false}},
		{[]int{2, 3}, []bool{true, false}},
		{[]int{1, 4}, []bool{true, true}},
	} {
		n := tc.dims[0]
		if len(tc.dims) > 1 {
			n *= tc.dims[1]
		}
		t.Run(fmt.Sprint(tc.dims, tc.periodic), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			commtest.Run(t, ws, func(c *comm.Comm) error {
				g, err := c.CartCreate(tc.dims, tc.periodic, false)
				if err != nil {
					return err
				}
				nb := g.Neighbors()
				recv := make([]int64, len(nb))
				for i := range recv {
					recv[i] = -1
				}
				if err := collectives.NeighborAllgather(g, []int64{int64(g.Rank())}, recv); err != nil {
					return err
				}
				send := make([]int64, len(nb))
				for i := range send {
					send[i] = int64(g.Rank()*10 + i) // block i: to neighbour i
				}
				a2a := make([]int64, len(nb))
				for i := range a2a {
					a2a[i] = -1
				}
				if err := collectives.NeighborAlltoall(g, send, a2a); err != nil {
					return err
				}
				for i, p := range nb {
					if p == comm.ProcNull {
						if recv[i] != -1 || a2a[i] != -1 {
							return fmt.Errorf("block %d of a ProcNull neighbour was written", i)
						}
						continue
					}
					if recv[i] != int64(p) {
						return fmt.Errorf("allgather block %d: %d, want %d", i, recv[i], p)
					}
					// Neighbour p sent this rank its block for the opposite
					// direction: i^1 (below <-> above).
					if want := int64(p*10 + i ^ 1); a2a[i] != want {
						return fmt.Errorf("alltoall block %d: %d, want %d", i, a2a[i], want)
					}
				}
				return nil
			})
		})
	}
}
