package comm_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

func TestPingPong(t *testing.T) {
	for _, tr := range []commtest.Transport{commtest.TCP, commtest.Shm, commtest.Verbs} {
		t.Run(tr.String(), func(t *testing.T) { testPingPong(t, tr) })
	}
	// Large messages through the rings in data frames, as where the kernel
	// refuses process_vm_readv.
	t.Run("shm-pipelined", func(t *testing.T) {
		t.Setenv("PARLEY_DEBUG", "no_cma=1")
		testPingPong(t, commtest.Shm)
	})
}

func testPingPong(t *testing.T, tr commtest.Transport) {
	for _, size := range []int{0, 1, 16, 17, 100, 4 << 10, 4<<10 + 1, 8 << 10, 8<<10 + 1, 8<<10 + 3, 16 << 10, 16<<10 + 1, 64 << 10, 64<<10 + 1, 1 << 20, 5<<20 + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ws := commtest.Worlds(t, 2, tr)
			commtest.Run(t, ws, func(c *comm.Comm) error {
				msg := bytes.Repeat([]byte{byte(size)}, size)
				buf := make([]byte, size)
				for i := 0; i < 3; i++ {
					if c.Rank() == 0 {
						if err := c.Send(msg, 1, 5); err != nil {
							return err
						}
						st, err := c.Recv(buf, 1, 6)
						if err != nil {
							return err
						}
						if st.Count != size || st.Source != 1 || st.Tag != 6 || !bytes.Equal(buf, msg) {
							return fmt.Errorf("bad reply %+v", st)
						}
					} else {
						st, err := c.Recv(buf, comm.AnySource, comm.AnyTag)
						if err != nil {
							return err
						}
						if st.Count != size || st.Source != 0 || st.Tag != 5 {
							return fmt.Errorf("bad status %+v", st)
						}
						if err := c.Send(buf, 0, 6); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	}
}

func TestTruncated(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.TCP)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		for _, n := range []int{10, 200 << 10} {
			if c.Rank() == 0 {
				if err := c.Send(make([]byte, n), 1, 1); err != nil {
					return err
				}
			} else {
				_, err := c.Recv(make([]byte, n-1), 0, 1)
				var te *comm.TruncatedError
				if !errors.Is(err, comm.ErrTruncated) || !errors.As(err, &te) || te.Message != n || te.Buffer != n-1 {
					return fmt.Errorf("want ErrTruncated with sizes %d/%d, got %v", n, n-1, err)
				}
			}
		}
		return nil
	})
}

// TestTrafficModel is the property test: random traffic among N ranks
// (random tags, wildcards, sizes from 0 to 1 MiB, blocking and
// nonblocking), checked against MPI's matching rules.
func TestTrafficModel(t *testing.T) {
	sizes := []int{1, 2, 3, 4, 5, 8}
	if !testing.Short() {
		sizes = append(sizes, 32)
	}
	for _, tr := range []commtest.Transport{commtest.Shm, commtest.TCP, commtest.Verbs} {
		for _, n := range sizes {
			if tr == commtest.Verbs && n > 8 {
				continue // each verbs link registers a megabyte of buffers
			}
			t.Run(fmt.Sprintf("%s/%d", tr, n), func(t *testing.T) {
				per := 12
				if n >= 32 {
					per = 2
				}
				ws := commtest.Worlds(t, n, tr)
				traffic := commtest.Traffic{Seed: uint64(n)*31 + 7, Messages: per, MaxSize: 1 << 20}
				commtest.Run(t, ws, traffic.Run)
			})
		}
	}
}

// TestWaitStopsAtItsMessage: a Recv whose message is the first of several
// waiting in the shared-memory ring returns without handing on the others
// (engine.Satisfied: they stay in the ring, not in the unexpected queue),
// unless the ranks share cores, where a wait drains everything; the
// messages arrive whole and in order either way.
func TestWaitStopsAtItsMessage(t *testing.T) {
	for _, polite := range []bool{false, true} {
		ws := commtest.Worlds(t, 2, commtest.Shm)
		comm.SetPolitely(ws[1], polite)
		for tag := 1; tag <= 3; tag++ {
			if err := ws[0].Send([]byte{byte(tag)}, 1, tag); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, 1)
		if _, err := ws[1].Recv(got, 0, 1); err != nil || got[0] != 1 {
			t.Fatalf("polite %v: Recv = %v, %v", polite, got, err)
		}
		held, want := strings.Count(comm.DebugEngine(ws[1]), "unexpected src="), 0
		if polite {
			want = 2
		}
		if held != want {
			t.Fatalf("polite %v: %d messages handed on past the one waited for, want %d\n%s", polite, held, want, comm.DebugEngine(ws[1]))
		}
		for tag := 2; tag <= 3; tag++ {
			if _, err := ws[1].Recv(got, 0, tag); err != nil || got[0] != byte(tag) {
				t.Fatalf("polite %v: tag %d: %v, %v", polite, tag, got, err)
			}
		}
	}
}
