package comm_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// TestBoardSendsNoMessage: on a world of one host, the collectives that
// take the shared-memory board (up to 1 KiB per rank) send no message, so
// they complete, with the right values, between ranks with no route to
// each other. (With messages, ranks 0 and 1 fail on the missing route, or
// wait for each other: TestCollectiveWithoutRoute.)
func TestBoardSendsNoMessage(t *testing.T) {
	const n = 3
	cases := []struct {
		name string
		f    func(c *comm.Comm, elems int) error
	}{
		{"barrier", func(c *comm.Comm, elems int) error { return collectives.Barrier(c) }},
		{"allreduce", func(c *comm.Comm, elems int) error {
			out := make([]int64, elems)
			if err := collectives.Allreduce(c, filled(elems, int64(c.Rank()+1)), out, collectives.Sum); err != nil {
				return err
			}
			return expect(out, 6)
		}},
		{"allgather", func(c *comm.Comm, elems int) error {
			out := make([]int64, n*elems)
			if err := collectives.Allgather(c, filled(elems, int64(c.Rank())), out); err != nil {
				return err
			}
			for r := range n {
				if err := expect(out[r*elems:(r+1)*elems], int64(r)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"alltoall", func(c *comm.Comm, elems int) error {
			blk := elems / n
			in := make([]int64, n*blk)
			for r := range n {
				copy(in[r*blk:], filled(blk, int64(10*c.Rank()+r)))
			}
			out := make([]int64, n*blk)
			if err := collectives.Alltoall(c, in, out); err != nil {
				return err
			}
			for r := range n {
				if err := expect(out[r*blk:(r+1)*blk], int64(10*r+c.Rank())); err != nil {
					return err
				}
			}
			return nil
		}},
		{"reduce_scatter", func(c *comm.Comm, elems int) error {
			counts := []int{max(elems-2, 0), min(elems, 1), min(elems, 1)}
			out := make([]int64, counts[c.Rank()])
			if err := collectives.ReduceScatter(c, filled(elems, int64(c.Rank()+1)), out, counts, collectives.Sum); err != nil {
				return err
			}
			return expect(out, 6)
		}},
	}
	for _, tc := range cases {
		for _, elems := range []int{0, 12, 126} { // 126 int64: 1008 bytes
			if tc.name == "reduce_scatter" && elems == 0 {
				continue // empty blocks: a Reduce at rank 0, with messages
			}
			t.Run(fmt.Sprintf("%s/%d", tc.name, elems), func(t *testing.T) {
				ws := commtest.Worlds(t, n, commtest.Shm)
				cause := errors.New("no route, for the test")
				comm.BreakRoute(ws[0], 1, cause)
				comm.BreakRoute(ws[1], 0, cause)
				errs := runRanks(t, ws, "ranks without a route between them wait: the call sent messages", func(_ int, w *comm.Comm) error {
					return tc.f(w, elems)
				})
				for r, err := range errs {
					if err != nil {
						t.Errorf("rank %d: %v; want success on the board", r, err)
					}
				}
			})
		}
	}
}

// runRanks runs f on every rank of ws at once and returns each rank's
// error; if they are not all back within 20 seconds, the test fails with
// hang, which says what waits.
func runRanks(t *testing.T, ws []*comm.Comm, hang string, f func(r int, w *comm.Comm) error) []error {
	t.Helper()
	errs := make([]error, len(ws))
	done := make(chan struct{})
	for r, w := range ws {
		go func() {
			defer func() { done <- struct{}{} }()
			errs[r] = f(r, w)
		}()
	}
	for range ws {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal(hang)
		}
	}
	return errs
}

func filled(n int, v int64) []int64 { return slices.Repeat([]int64{v}, n) }

func expect(xs []int64, v int64) error {
	for i, x := range xs {
		if x != v {
			return fmt.Errorf("element %d is %d, want %d", i, x, v)
		}
	}
	return nil
}

// TestBoardDisagreement: a rank that sends messages where the others
// take the board (its view of the world differs) is seen by the ranks its
// messages reach, and every rank fails with ErrMismatch instead of
// waiting.
func TestBoardDisagreement(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(c *comm.Comm) error
	}{
		{"barrier", func(c *comm.Comm) error { return collectives.Barrier(c) }},
		{"allreduce", func(c *comm.Comm) error {
			return collectives.Allreduce(c, []int64{1}, make([]int64, 1), collectives.Sum)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := commtest.Worlds(t, 3, commtest.Shm)
			comm.NoBoard(ws[2])
			errs := runRanks(t, ws, "ranks that disagree on the board wait", func(_ int, w *comm.Comm) error { return tc.f(w) })
			for r, err := range errs {
				if !errors.Is(err, comm.ErrMismatch) {
					t.Errorf("rank %d: %v; want ErrMismatch", r, err)
				}
			}
		})
	}
}

// TestBoardWakesSleepers: ranks that wait on the board long enough to
// sleep on their bell are woken by the late rank's post, not by the
// sleep's safety timeout, here an hour: at 2 ranks (an exchange) and at 3
// on 2 cores (Barrier through rank 0's release, which rank 0 rings).
func TestBoardWakesSleepers(t *testing.T) {
	comm.SetSleepTimeout(t, time.Hour)        // before the worlds: restored after they end
	t.Setenv("PARLEY_DEBUG", "yield_us=1000") // sleep after 1 ms of waiting
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ws := commtest.Worlds(t, n, commtest.Shm)
			errs := runRanks(t, ws, "ranks asleep on the board were not woken by the post they waited for", func(r int, w *comm.Comm) error {
				if r == n-1 {
					time.Sleep(100 * time.Millisecond)
				}
				if err := collectives.Barrier(w); err != nil {
					return err
				}
				if r == 0 {
					time.Sleep(100 * time.Millisecond)
				}
				return collectives.Allreduce(w, []int64{1}, make([]int64, 1), collectives.Sum)
			})
			for r, err := range errs {
				if err != nil {
					t.Errorf("rank %d: %v", r, err)
				}
			}
		})
	}
}
