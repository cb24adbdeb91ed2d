package collectives_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

func TestBasics(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 5, 7, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			commtest.Run(t, ws, func(c *comm.Comm) error {
				if err := collectives.Barrier(c); err != nil {
					return err
				}
				for _, count := range []int{0, 1, 7, 20000} {
					in := make([]float64, count)
					for i := range in {
						in[i] = float64(c.Rank()*1000 + i)
					}
					out := make([]float64, count)
					if err := collectives.Allreduce(c, in, out, collectives.Sum); err != nil {
						return err
					}
					for i := range out {
						want := float64(1000*n*(n-1)/2 + n*i)
						if out[i] != want {
							return fmt.Errorf("allreduce count %d: out[%d] = %v, want %v", count, i, out[i], want)
						}
					}
					for root := 0; root < n; root++ {
						red := make([]float64, count)
						if err := collectives.Reduce(c, in, red, collectives.Max, root); err != nil {
							return err
						}
						if c.Rank() == root {
							for i := range red {
								if want := float64((n-1)*1000 + i); red[i] != want {
									return fmt.Errorf("reduce: %v want %v", red[i], want)
								}
							}
						}
						b := make([]int32, count)
						if c.Rank() == root {
							for i := range b {
								b[i] = int32(i + root)
							}
						}
						if err := collectives.Bcast(c, b, root); err != nil {
							return err
						}
						for i := range b {
							if b[i] != int32(i+root) {
								return fmt.Errorf("bcast root %d: b[%d]=%d", root, i, b[i])
							}
						}
					}
				}
				return nil
			})
		})
	}
}

// TestRootRunsAhead: the root of many short Bcasts and Scatters (blocking
// sends in turn, sendInTurnMax) runs ahead of ranks that start late, fills
// their rings or sockets and waits for room; every call's data arrives,
// in order, on every rank.
func TestRootRunsAhead(t *testing.T) {
	const calls, blk = 2000, 64 // 1 KiB messages (below sendInTurnMax) and 512 B blocks
	for _, tr := range []commtest.Transport{commtest.Shm, commtest.TCP} {
		t.Run(fmt.Sprint(tr), func(t *testing.T) {
			ws := commtest.Worlds(t, 4, tr)
			commtest.Run(t, ws, func(c *comm.Comm) error {
				n, me := c.Size(), c.Rank()
				if me != 0 {
					time.Sleep(50 * time.Millisecond)
				}
				xs := make([]int64, 128)
				send := make([]int64, blk*n)
				recv := make([]int64, blk)
				for i := range calls {
					if me == 0 {
						for j := range xs {
							xs[j] = int64(i*1000 + j)
						}
						for j := range send {
							send[j] = int64(i*100000 + j)
						}
					}
					if err := collectives.Bcast(c, xs, 0); err != nil {
						return err
					}
					if err := collectives.Scatter(c, send, recv, 0); err != nil {
						return err
					}
					if xs[127] != int64(i*1000+127) || recv[blk-1] != int64(i*100000+me*blk+blk-1) {
						return fmt.Errorf("call %d: bcast got %d, scatter %d", i, xs[127], recv[blk-1])
					}
				}
				return nil
			})
		})
	}
}
