package collectives_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// TestBoardAmongMessages: long runs of collectives, the same random
// sequence on every rank, mixing those that take the shared-memory board
// with those that send messages, and among them rooted ones whose senders
// return at once and run ahead: every result checked. The board reuses
// its two parts by turns, and a rank running ahead must never rewrite a
// part that a slower rank has still to read.
func TestBoardAmongMessages(t *testing.T) {
	calls := 3000
	if testing.Short() {
		calls = 500
	}
	for _, n := range []int{2, 3, 4, 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			commtest.Run(t, ws, func(c *comm.Comm) error { return boardSequence(c, calls) })
		})
	}
}

func boardSequence(c *comm.Comm, calls int) error {
	rng := rand.New(rand.NewPCG(7, 11)) // the same sequence on every rank
	n, me := c.Size(), c.Rank()
	for i := range calls {
		root := rng.IntN(n)
		count := []int{1, 5, 100, 200}[rng.IntN(4)] // 100 int64: on the board; 200: messages
		v := int64(i*10 + me)
		var err error
		switch kind := rng.IntN(7); kind {
		case 0:
			err = collectives.Barrier(c)
		case 1:
			out := make([]int64, count)
			if err = collectives.Allreduce(c, filled(count, v), out, collectives.Sum); err == nil {
				err = expectAll(out, int64(n*i*10+n*(n-1)/2), "allreduce", i)
			}
		case 2:
			xs := filled(count, v)
			if err = collectives.Bcast(c, xs, root); err == nil {
				err = expectAll(xs, int64(i*10+root), "bcast", i)
			}
		case 3:
			out := make([]int64, count*n)
			if err = collectives.Allgather(c, filled(count, v), out); err == nil {
				for r := range n {
					if err = expectAll(out[r*count:(r+1)*count], int64(i*10+r), "allgather", i); err != nil {
						break
					}
				}
			}
		case 4:
			blk := max(count/n, 1)
			in := make([]int64, blk*n)
			for r := range n {
				copy(in[r*blk:], filled(blk, int64(i*100+me*10+r)))
			}
			out := make([]int64, blk*n)
			if err = collectives.Alltoall(c, in, out); err == nil {
				for r := range n {
					if err = expectAll(out[r*blk:(r+1)*blk], int64(i*100+r*10+me), "alltoall", i); err != nil {
						break
					}
				}
			}
		case 5:
			out := make([]int64, count)
			if err = collectives.Reduce(c, filled(count, v), out, collectives.Sum, root); err == nil && me == root {
				err = expectAll(out, int64(n*i*10+n*(n-1)/2), "reduce", i)
			}
		case 6:
			in := filled(count*n, v)
			out := make([]int64, count)
			if err = collectives.ReduceScatterBlock(c, in, out, collectives.Sum); err == nil {
				err = expectAll(out, int64(n*i*10+n*(n-1)/2), "reduce_scatter_block", i)
			}
		}
		if err != nil {
			return fmt.Errorf("call %d: %w", i, err)
		}
	}
	return nil
}

func filled(n int, v int64) []int64 { return slices.Repeat([]int64{v}, n) }

func expectAll(xs []int64, v int64, what string, call int) error {
	for j, x := range xs {
		if x != v {
			return fmt.Errorf("%s (call %d): element %d is %d, want %d", what, call, j, x, v)
		}
	}
	return nil
}
