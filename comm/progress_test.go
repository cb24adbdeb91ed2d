package comm_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

// TestAsyncProgress: rank 1 posts a receive for a large message, then
// computes for a while without calling the runtime. With asynchronous
// progress, rank 0's blocking send of that message (a rendezvous, which
// needs the receiver to act) completes while rank 1 still computes;
// without it, not before rank 1 next calls in. Both ways are checked, so
// the test fails if the progress goroutine stops working or if it turns
// out not to be needed. "announced": rank 1 posts the receive only once
// the message is announced (Iprobe), so that the Irecv matches it at once
// and leaves its single-copy read (shared memory) to whoever polls next:
// the progress goroutine, or rank 1's own Wait.
func TestAsyncProgress(t *testing.T) {
	const compute = 1500 * time.Millisecond
	for _, c := range []struct {
		mode      string
		announced bool
		duringRun bool // the send completes while rank 1 computes
	}{{"on", false, true}, {"off", false, false}, {"on", true, true}, {"off", true, false}} {
		for _, tr := range []commtest.Transport{commtest.Shm, commtest.TCP, commtest.Verbs} {
			if c.announced && tr != commtest.Shm {
				continue
			}
			name := c.mode
			if c.announced {
				name += "/announced"
			}
			t.Run(fmt.Sprintf("%s/%v", name, tr), func(t *testing.T) {
				t.Setenv("PARLEY_PROGRESS", c.mode)
				worlds := commtest.Worlds(t, 2, tr)
				buf := make([]byte, 4<<20)
				sentAt := make(chan time.Time, 1)
				var computeEnd time.Time
				commtest.Run(t, worlds, func(w *comm.Comm) error {
					if w.Rank() == 0 {
						if err := w.Send(buf, 1, 3); err != nil {
							return err
						}
						sentAt <- time.Now()
						return nil
					}
					for c.announced {
						ok, _, err := w.Iprobe(0, 3)
						if err != nil {
							return err
						}
						if ok {
							break
						}
						time.Sleep(time.Millisecond)
					}
					r := w.Irecv(make([]byte, len(buf)), 0, 3)
					end := time.Now().Add(compute)
					x := 1.0
					for time.Now().Before(end) {
						for i := 0; i < 1000; i++ {
							x = x*1.0000001 + 1e-9
						}
					}
					computeEnd = time.Now()
					_, err := r.Wait()
					return err
				})
				sent := <-sentAt
				if during := sent.Before(computeEnd); during != c.duringRun {
					t.Errorf("PARLEY_PROGRESS=%s: the send completed %v before the receiver stopped computing (want completion during the computation: %v)",
						c.mode, computeEnd.Sub(sent).Round(time.Millisecond), c.duringRun)
				}
			})
		}
	}
}

// TestAsyncProgressCollective: the same for a nonblocking collective of
// several rounds: rank 0 waits for an Iallreduce of 4 ranks while the
// other three compute; each round after the first needs every rank's
// schedule to post it, which only a progress goroutine does meanwhile.
func TestAsyncProgressCollective(t *testing.T) {
	const compute = 1500 * time.Millisecond
	for _, c := range []struct {
		mode      string
		duringRun bool
	}{{"on", true}, {"off", false}} {
		t.Run(c.mode, func(t *testing.T) {
			t.Setenv("PARLEY_PROGRESS", c.mode)
			worlds := commtest.Worlds(t, 4, commtest.Shm)
			doneAt := make(chan time.Time, 1)
			ends := make([]time.Time, 4)
			commtest.Run(t, worlds, func(w *comm.Comm) error {
				in := []float64{float64(w.Rank() + 1)}
				out := make([]float64, 1)
				r := collectives.Iallreduce(w, in, out, collectives.Sum)
				if w.Rank() != 0 {
					end := time.Now().Add(compute)
					x := 1.0
					for time.Now().Before(end) {
						for i := 0; i < 1000; i++ {
							x = x*1.0000001 + 1e-9
						}
					}
					ends[w.Rank()] = time.Now()
				}
				if _, err := r.Wait(); err != nil {
					return err
				}
				if out[0] != 10 {
					return fmt.Errorf("rank %d: sum %v, want 10", w.Rank(), out[0])
				}
				if w.Rank() == 0 {
					doneAt <- time.Now()
				}
				return nil
			})
			done := <-doneAt
			first := ends[1]
			for _, e := range ends[2:] {
				if e.Before(first) {
					first = e
				}
			}
			if during := done.Before(first); during != c.duringRun {
				t.Errorf("PARLEY_PROGRESS=%s: rank 0's Iallreduce completed %v before the others stopped computing (want during: %v)",
					c.mode, first.Sub(done).Round(time.Millisecond), c.duringRun)
			}
		})
	}
}
