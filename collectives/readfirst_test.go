package collectives_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// TestSingleCopyHost runs collectives with vectors above the eager limit
// where messages move by single copy (commtest.ShmRead: Bcast then sends
// from the root to every rank at once) and where they move as chains,
// against a serial reference.
func TestSingleCopyHost(t *testing.T) {
	for _, tr := range []commtest.Transport{commtest.Shm, commtest.ShmRead} {
		for _, n := range []int{2, 3, 4, 5} {
			t.Run(fmt.Sprintf("%v/%d", tr, n), func(t *testing.T) {
				ws := commtest.Worlds(t, n, tr)
				commtest.Run(t, ws, func(c *comm.Comm) error {
					// Every count runs, so that a rank that found a wrong
					// value leaves nobody waiting for its next call.
					var first error
					for _, count := range []int{4096, 5000, 8192, 40000} { // 16 (the eager limit), 20, 32 and 160 KB of float32
						if err := singleCopyOnRank(c, count); err != nil && first == nil {
							first = fmt.Errorf("%d elements: %w", count, err)
						}
					}
					return first
				})
			})
		}
	}
}

func singleCopyOnRank(c *comm.Comm, count int) error {
	n, me := c.Size(), c.Rank()
	v := func(r, i int) float32 { return float32((r*5+i)%13 - 6) }
	mine := make([]float32, count)
	for i := range mine {
		mine[i] = v(me, i)
	}
	for root := 0; root < n; root++ {
		b := make([]float32, count)
		if me == root {
			copy(b, mine)
		}
		if err := collectives.Bcast(c, b, root); err != nil {
			return err
		}
		for i := range b {
			if b[i] != v(root, i) {
				return fmt.Errorf("bcast from %d: element %d is %v, want %v", root, i, b[i], v(root, i))
			}
		}
	}
	sum := make([]float32, count)
	if err := collectives.Allreduce(c, mine, sum, collectives.Sum); err != nil {
		return err
	}
	red := make([]float32, count)
	if err := collectives.Reduce(c, mine, red, collectives.Sum, n-1); err != nil {
		return err
	}
	// A wrong sum is reported at the end: returned here, it would leave
	// the other ranks waiting in the calls below.
	var wrongSum error
	for i := range sum {
		want := float32(0)
		for r := 0; r < n; r++ {
			want += v(r, i)
		}
		if sum[i] != want || me == n-1 && red[i] != want {
			wrongSum = fmt.Errorf("allreduce/reduce element %d: %v and %v, want %v", i, sum[i], red[i], want)
			break
		}
	}
	all := make([]float32, n*count)
	if err := collectives.Allgather(c, mine, all); err != nil {
		return err
	}
	g := make([]float32, n*count)
	if err := collectives.Gather(c, mine, g, 0); err != nil {
		return err
	}
	for r := 0; r < n; r++ {
		for i := 0; i < count; i++ {
			if all[r*count+i] != v(r, i) || me == 0 && g[r*count+i] != v(r, i) {
				return fmt.Errorf("allgather/gather block %d element %d", r, i)
			}
		}
	}
	back := make([]float32, count)
	if err := collectives.Scatter(c, all, back, n-1); err != nil {
		return err
	}
	if !slices.Equal(back, mine) {
		return fmt.Errorf("scatter: rank %d's block differs", me)
	}
	// Alltoall: block r of rank s holds v(s*n+r, i).
	send := make([]float32, n*count)
	for r := 0; r < n; r++ {
		for i := 0; i < count; i++ {
			send[r*count+i] = v(me*n+r, i)
		}
	}
	recv := make([]float32, n*count)
	if err := collectives.Alltoall(c, send, recv); err != nil {
		return err
	}
	for s := 0; s < n; s++ {
		for i := 0; i < count; i++ {
			if recv[s*count+i] != v(s*n+me, i) {
				return fmt.Errorf("alltoall block from %d element %d", s, i)
			}
		}
	}
	return wrongSum
}
