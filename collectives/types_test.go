package collectives_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// stats is a record a reduction combines: a user operator over structs.
type stats struct {
	Sum   float64
	Count int64
	Max   float32
	_     [4]byte // padding a program might have
}

// TestStructs: collectives move any fixed-size type without pointers, and
// a user operator over a struct sees whole elements (at lengths that take
// every algorithm, the block splits of Rabenseifner's included, and rank
// counts that are not powers of two). A predefined operator on a struct,
// or a type with pointers, is an error before anything is sent.
func TestStructs(t *testing.T) {
	merge := collectives.UserOp(func(inout, in []stats) {
		for i := range inout {
			inout[i].Sum += in[i].Sum
			inout[i].Count += in[i].Count
			inout[i].Max = max(inout[i].Max, in[i].Max)
		}
	}, true)
	for _, n := range []int{1, 2, 3, 5, 8} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			commtest.Run(t, ws, func(c *comm.Comm) error {
				for _, count := range []int{1, 7, 3000} { // 3000 x 24 B: past the long-vector switch
					in := make([]stats, count)
					for i := range in {
						in[i] = stats{Sum: float64(c.Rank() + i), Count: 1, Max: float32(c.Rank())}
					}
					out := make([]stats, count)
					if err := collectives.Allreduce(c, in, out, merge); err != nil {
						return err
					}
					for i := range out {
						want := stats{Sum: float64(n*(n-1)/2 + n*i), Count: int64(n), Max: float32(n - 1)}
						if out[i] != want {
							return fmt.Errorf("count %d: out[%d] = %+v, want %+v", count, i, out[i], want)
						}
					}
					all := make([]stats, count*n)
					if err := collectives.Allgather(c, in, all); err != nil {
						return err
					}
					if all[count*(n-1)].Max != float32(n-1) {
						return fmt.Errorf("allgather of structs: %+v", all[count*(n-1)])
					}
				}
				return nil
			})
		})
	}
	ws := commtest.Worlds(t, 2, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		err := collectives.Allreduce(c, []stats{{}}, make([]stats, 1), collectives.Sum)
		if !errors.Is(err, comm.ErrInvalidArg) || !strings.Contains(err.Error(), "UserOp") {
			return fmt.Errorf("Sum over a struct: %v", err)
		}
		type labelled struct {
			V     float64
			Label string
		}
		err = collectives.Bcast(c, []labelled{{}}, 0)
		if !errors.Is(err, comm.ErrInvalidArg) || !strings.Contains(err.Error(), "field Label is a string") {
			return fmt.Errorf("a struct with a string: %v", err)
		}
		// Neither error began a call: the communicator works.
		return collectives.Barrier(c)
	})
}
