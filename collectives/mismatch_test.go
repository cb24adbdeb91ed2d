package collectives_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// TestMismatches: ranks that call different collectives, or the same one
// with arguments that must agree, get ErrMismatch naming what differs
// instead of wrong results. Each case says which ranks detect it (the doc
// of the package lists what is not caught: a root that only sends).
func TestMismatches(t *testing.T) {
	want := func(err error, what ...string) error {
		if !errors.Is(err, comm.ErrMismatch) {
			return fmt.Errorf("got %v; want ErrMismatch", err)
		}
		for _, w := range what {
			if !strings.Contains(err.Error(), w) {
				return fmt.Errorf("error %q does not mention %q", err, w)
			}
		}
		return nil
	}
	cases := []struct {
		name string
		n    int
		f    func(c *comm.Comm) error
	}{
		{"allreduce sum against max", 3, func(c *comm.Comm) error {
			op := collectives.Sum
			if c.Rank() == 1 {
				op = collectives.Max
			}
			out := make([]float64, 4)
			// Every rank receives in recursive doubling: every rank detects.
			return want(collectives.Allreduce(c, []float64{1, 2, 3, 4}, out, op), "allreduce", "other arguments")
		}},
		{"allreduce long vectors, different operators", 2, func(c *comm.Comm) error {
			op := collectives.Sum
			if c.Rank() == 1 {
				op = collectives.Min
			}
			in := make([]float64, 1<<16)
			return want(collectives.Allreduce(c, in, make([]float64, len(in)), op), "allreduce")
		}},
		{"reduce against allreduce", 2, func(c *comm.Comm) error {
			out := make([]int64, 3)
			if c.Rank() == 0 {
				err := collectives.Reduce(c, []int64{1, 2, 3}, out, collectives.Sum, 0)
				return want(err, "allreduce", "reduce")
			}
			// This rank may find the mismatch itself, or hear of it first
			// from rank 0: either way the error names both collectives.
			err := collectives.Allreduce(c, []int64{1, 2, 3}, out, collectives.Sum)
			return want(err, "allreduce", "reduce")
		}},
		{"iallreduce against allreduce", 2, func(c *comm.Comm) error {
			out := make([]int32, 2)
			if c.Rank() == 0 {
				_, err := collectives.Iallreduce(c, []int32{1, 2}, out, collectives.Sum).Wait()
				return want(err, "iallreduce")
			}
			return want(collectives.Allreduce(c, []int32{1, 2}, out, collectives.Sum), "iallreduce")
		}},
		{"bcast counts differ", 3, func(c *comm.Comm) error {
			xs := make([]int32, 10)
			if c.Rank() == 2 {
				xs = make([]int32, 12)
			}
			err := collectives.Bcast(c, xs, 0)
			if c.Rank() == 2 {
				return want(err, "bcast")
			}
			// The root only sends, and rank 1 got what it expected: they
			// may return before rank 2's word arrives. Their next
			// collective fails, naming the bcast that went wrong.
			if err == nil {
				err = collectives.Barrier(c)
			}
			return want(err, "bcast", "rank 2")
		}},
		{"reduce_scatter counts differ, same total", 4, func(c *comm.Comm) error {
			// Ranks 0-2 give rank 0 the one element, rank 3 takes it.
			// Rank 0 reduces (the blocks of the others are empty) and
			// finds rank 3's word; rank 3 waits for a block and hears of
			// the mismatch; ranks 1 and 2 only send, and their next
			// collective fails.
			counts := []int{1, 0, 0, 0}
			if c.Rank() == 3 {
				counts = []int{0, 0, 0, 1}
			}
			err := collectives.ReduceScatter(c, []int32{1}, make([]int32, 1), counts, collectives.Sum)
			if c.Rank() == 0 {
				return want(err, "reduce_scatter", "rank 3", "counts")
			}
			if err == nil {
				err = collectives.Barrier(c)
			}
			return want(err)
		}},
		// Over TCP a short vector takes a flat exchange and a long one
		// recursive doubling: every rank waits for a message of the call
		// that its peer, in the other algorithm, never sends, while the
		// messages that were sent wait unmatched (a cycle, before
		// otherCheckPosted). Over shared memory the short one takes the
		// board.
		{"allreduce counts differ, algorithms differ, 3 ranks", 3, allreduceCounts(want)},
		{"allreduce counts differ, algorithms differ, 4 ranks", 4, allreduceCounts(want)},
		// The board (a world on one host): every rank waits there for
		// every other's part, and a part or an arrival word of another
		// call is a mismatch.
		{"board: allreduce counts differ, one rank beyond the board", 3, func(c *comm.Comm) error {
			n := 4 // 32 bytes: the board
			if c.Rank() == 2 {
				n = 200 // 1600 bytes: messages
			}
			err := collectives.Allreduce(c, make([]float64, n), make([]float64, n), collectives.Sum)
			if c.Rank() == 2 {
				return want(err) // told by the others, which revoked the call
			}
			return want(err, "allreduce", "rank 2", "other arguments")
		}},
		{"board: allgather against barrier", 4, func(c *comm.Comm) error {
			if c.Rank() == 3 {
				return want(collectives.Barrier(c))
			}
			return want(collectives.Allgather(c, []int32{1}, make([]int32, 4)))
		}},
		{"board: a root that only sends goes past the barrier", 3, func(c *comm.Comm) error {
			// Rank 0 broadcasts twice (returning at once) where the others
			// enter a barrier, then waits in a nonblocking barrier, which
			// posts nothing on the board: its arrival word says it went
			// past their barrier.
			if c.Rank() == 0 {
				for range 2 {
					if err := collectives.Bcast(c, []int64{1}, 0); err != nil {
						return err
					}
				}
				_, err := collectives.Ibarrier(c).Wait()
				return want(err)
			}
			return want(collectives.Barrier(c), "barrier", "rank 0")
		}},
		{"bcast roots differ", 2, func(c *comm.Comm) error {
			// Each rank believes it is the root: both only send, and both
			// return. The next collective finds the message nobody took.
			// The peer's bcast message left before its first barrier's, on
			// the same link, so it is here by the time that barrier is
			// over: the second barrier finds it at the latest.
			if err := collectives.Bcast(c, []int64{int64(c.Rank())}, c.Rank()); err != nil {
				return err
			}
			err := collectives.Barrier(c)
			if err == nil {
				err = collectives.Barrier(c)
			}
			return want(err, "bcast")
		}},
		{"bcast roots differ, the news late", 3, func(c *comm.Comm) error {
			// Rank 0 names root 0, ranks 1 and 2 root 1; rank 0 comes late.
			// Ranks 1 and 2 are done (rank 1 sent, rank 2 received from it)
			// and wait in the barrier before rank 0's message reaches them;
			// rank 0 finds rank 1's message at the barrier's start, and
			// must tell them, or they would wait for it forever.
			root := 1
			if c.Rank() == 0 {
				root = 0
				time.Sleep(100 * time.Millisecond)
			}
			if err := collectives.Bcast(c, []int64{7}, root); err != nil {
				return err
			}
			if c.Rank() == 0 {
				// Rank 1's message is here by now; a probe takes it from
				// the ring, so that the barrier's start can see it.
				time.Sleep(10 * time.Millisecond)
				if _, _, err := c.Iprobe(comm.AnySource, 99); err != nil {
					return err
				}
			}
			err := collectives.Barrier(c)
			if c.Rank() == 0 {
				return want(err, "bcast", "rank 1")
			}
			return want(err) // the revocation, which matches ErrMismatch
		}},
	}
	// Over shared memory the collectives that take the board detect
	// there; over TCP every collective sends messages, whose receives
	// detect the cases that do not begin "board:" (in the others a rank
	// may wait for a message of a rank that waits elsewhere: the hang
	// report names both).
	for _, tr := range []commtest.Transport{commtest.Shm, commtest.TCP} {
		for _, tc := range cases {
			if tr == commtest.TCP && strings.HasPrefix(tc.name, "board:") {
				continue
			}
			t.Run(fmt.Sprintf("%s/%v", tc.name, tr), func(t *testing.T) {
				ws := commtest.Worlds(t, tc.n, tr)
				commtest.Run(t, ws, tc.f)
			})
		}
	}
}

// allreduceCounts is a case of TestMismatches: the last rank reduces 300
// elements where the others reduce 3.
func allreduceCounts(want func(error, ...string) error) func(c *comm.Comm) error {
	return func(c *comm.Comm) error {
		n := 3
		if c.Rank() == c.Size()-1 {
			n = 300
		}
		err := collectives.Allreduce(c, make([]float64, n), make([]float64, n), collectives.Sum)
		return want(err, "allreduce")
	}
}
