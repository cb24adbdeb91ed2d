package comm_test

import (
	"errors"
	"testing"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
	"github.com/parley-hpc/parley/transport"
)

// TestCollectiveWithoutRoute: when ranks 0 and 1 cannot reach each other
// (on one host, a shared-memory segment of another layout version, with
// no TCP between local ranks), a collective returns on every rank, with
// an error naming the missing route on those two, instead of waiting
// forever: a rank whose send fails abandons the call before it waits for
// its receives, which fails them and tells the ranks it can reach. Allreduce on 2 ranks exchanges;
// Alltoall on 3 ranks posts every receive and send at once.
func TestCollectiveWithoutRoute(t *testing.T) {
	cases := []struct {
		name string
		n    int
		call func(c *comm.Comm) error
	}{
		// 2 KiB: beyond what the board takes (comm's board.go reads
		// the others' parts in place, without routes).
		{"allreduce", 2, func(c *comm.Comm) error {
			return collectives.Allreduce(c, make([]float64, 256), make([]float64, 256), collectives.Sum)
		}},
		{"alltoall", 3, func(c *comm.Comm) error {
			return collectives.Alltoall(c, make([]byte, 3*400), make([]byte, 3*400)) // beyond the board
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := commtest.Worlds(t, tc.n, commtest.Shm)
			cause := errors.New("segment layout version 2, this program uses 3")
			comm.BreakRoute(ws[0], 1, cause)
			comm.BreakRoute(ws[1], 0, cause)
			type result struct {
				rank int
				err  error
			}
			results := make(chan result, tc.n)
			for r, w := range ws {
				go func() { results <- result{r, tc.call(w)} }()
			}
			for range tc.n {
				select {
				case res := <-results:
					switch {
					case res.rank < 2 && !errors.Is(res.err, transport.ErrNoRoute):
						t.Errorf("rank %d: %v; want an error naming the missing route", res.rank, res.err)
					case res.rank >= 2 && res.err != nil && !errors.Is(res.err, comm.ErrRevoked):
						// Rank 2 reaches both: it may finish before the
						// news that the call failed arrives.
						t.Errorf("rank %d: %v; want success or the revocation", res.rank, res.err)
					}
				case <-time.After(20 * time.Second):
					t.Fatal("a collective between ranks that cannot reach each other never returned")
				}
			}
		})
	}
}
