package collectives_test

import (
	"fmt"
	"testing"

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
