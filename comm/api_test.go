package comm_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
)

func both(t *testing.T, f func(t *testing.T, tr commtest.Transport)) {
	for _, tr := range []commtest.Transport{commtest.Shm, commtest.TCP, commtest.Verbs} {
		t.Run(tr.String(), func(t *testing.T) { f(t, tr) })
	}
}

func TestProbe(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			if c.Rank() == 0 {
				for _, n := range []int{0, 10, 300000} {
					if err := c.Send(make([]byte, n), 1, n%1000); err != nil {
						return err
					}
				}
				return nil
			}
			for _, n := range []int{0, 10, 300000} {
				st, err := c.Probe(comm.AnySource, comm.AnyTag)
				if err != nil {
					return err
				}
				if st.Source != 0 || st.Tag != n%1000 || st.Count != n {
					return fmt.Errorf("probe: %+v, want size %d", st, n)
				}
				// Probing again sees the same message; it is still there.
				ok, st2, err := c.Iprobe(0, st.Tag)
				if err != nil || !ok || st2 != st {
					return fmt.Errorf("iprobe after probe: %v %+v %v", ok, st2, err)
				}
				if _, err := c.Recv(make([]byte, st.Count), st.Source, st.Tag); err != nil {
					return err
				}
			}
			if ok, _, _ := c.Iprobe(comm.AnySource, comm.AnyTag); ok {
				return errors.New("iprobe found a message after all were received")
			}
			return nil
		})
	})
}

func TestCancel(t *testing.T) {
	ws := commtest.Worlds(t, 1, commtest.Shm)
	c := ws[0]
	r := c.Irecv(make([]byte, 4), 0, 5)
	if !r.Cancel() {
		t.Fatal("a pending receive could not be cancelled")
	}
	if _, err := r.Wait(); !errors.Is(err, comm.ErrCancelled) {
		t.Fatalf("cancelled receive: %v", err)
	}
	// The cancelled receive does not take the next message.
	if err := c.Send([]byte("x"), 0, 5); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if st, err := c.Recv(buf, 0, 5); err != nil || st.Count != 1 {
		t.Fatalf("receive after cancel: %+v %v", st, err)
	}
	if r.Cancel() {
		t.Fatal("cancelled twice")
	}
	s := c.Isend([]byte("y"), 0, 6)
	if s.Cancel() {
		t.Fatal("a send was cancelled")
	}
	c.Recv(buf, 0, 6)
	s.Wait()
}

func TestWaitanySome(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 3, tr)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			if c.Rank() != 0 {
				time.Sleep(time.Duration(c.Rank()) * 5 * time.Millisecond)
				return c.Send([]byte{byte(c.Rank())}, 0, 1)
			}
			bufs := [][]byte{make([]byte, 1), make([]byte, 1)}
			reqs := []*comm.Request{c.Irecv(bufs[0], 1, 1), c.Irecv(bufs[1], 2, 1)}
			i, st, err := comm.Waitany(reqs...)
			if err != nil || st.Source != i+1 {
				return fmt.Errorf("waitany: %d %+v %v", i, st, err)
			}
			if reqs[i] != nil {
				return fmt.Errorf("waitany left entry %d in place (MPI sets it to MPI_REQUEST_NULL)", i)
			}
			idx, err := comm.Waitsome(reqs...)
			if err != nil || len(idx) != 1 || idx[0] != 1-i {
				return fmt.Errorf("waitsome: %v %v", idx, err)
			}
			if reqs[1-i] != nil {
				return fmt.Errorf("waitsome left entry %d in place", 1-i)
			}
			if ok, err := comm.Testall(reqs...); !ok || err != nil {
				return fmt.Errorf("testall: %v %v", ok, err)
			}
			if j, _, _ := comm.Waitany(nil, nil); j != -1 {
				return fmt.Errorf("waitany of nothing: %d", j)
			}
			return nil
		})
	})
}

// TestSsend: a synchronous send does not complete before the receive is
// posted, even for a tiny message that a plain send would copy at once.
func TestSsend(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			if c.Rank() == 0 {
				r := c.Issend([]byte("hi"), 1, 3)
				time.Sleep(30 * time.Millisecond)
				if done, _, _ := r.Test(); done {
					return errors.New("ssend completed before the receive was posted")
				}
				if err := c.Send([]byte{1}, 1, 4); err != nil { // tells rank 1 to receive
					return err
				}
				_, err := r.Wait()
				return err
			}
			c.Recv(make([]byte, 1), 0, 4)
			buf := make([]byte, 2)
			_, err := c.Recv(buf, 0, 3)
			if err == nil && string(buf) != "hi" {
				err = fmt.Errorf("got %q", buf)
			}
			return err
		})
	})
}

func TestSendrecvReplace(t *testing.T) {
	ws := commtest.Worlds(t, 3, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		n := c.Size()
		buf := []byte{byte(c.Rank()), 7}
		st, err := c.SendrecvReplace(buf, (c.Rank()+1)%n, 0, (c.Rank()+n-1)%n, 0)
		if err != nil {
			return err
		}
		if buf[0] != byte((c.Rank()+n-1)%n) || st.Count != 2 {
			return fmt.Errorf("replace: %v %+v", buf, st)
		}
		return nil
	})
}

func TestSelfAndZero(t *testing.T) {
	ws := commtest.Worlds(t, 1, commtest.Shm)
	c := ws[0]
	for _, n := range []int{0, 1, 64 << 10, 64<<10 + 1, 3 << 20} {
		msg := bytes.Repeat([]byte{9}, n)
		r := c.Isend(msg, 0, 1)
		buf := make([]byte, n)
		st, err := c.Recv(buf, 0, 1)
		if err != nil || st.Count != n || !bytes.Equal(buf, msg) {
			t.Fatalf("self %d: %+v %v", n, st, err)
		}
		if _, err := r.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCommunicators(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 5, tr)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			dup, err := c.Dup()
			if err != nil {
				return err
			}
			if comm.Compare(c, dup) != comm.Congruent || comm.Compare(c, c) != comm.Ident {
				return errors.New("compare of a dup")
			}
			// Messages on the dup never match receives on the world.
			if c.Rank() == 0 {
				if err := dup.Send([]byte("dup"), 1, 1); err != nil {
					return err
				}
				if err := c.Send([]byte("world"), 1, 1); err != nil {
					return err
				}
			} else if c.Rank() == 1 {
				buf := make([]byte, 8)
				st, err := c.Recv(buf, comm.AnySource, comm.AnyTag)
				if err != nil || string(buf[:st.Count]) != "world" {
					return fmt.Errorf("world receive got %q: %v", buf[:st.Count], err)
				}
				st, err = dup.Recv(buf, 0, 1)
				if err != nil || string(buf[:st.Count]) != "dup" {
					return fmt.Errorf("dup receive got %q: %v", buf[:st.Count], err)
				}
			}
			// Split into evens and odds, ranked by descending world rank;
			// rank 4 opts out.
			color := c.Rank() % 2
			if c.Rank() == 4 {
				color = comm.Undefined
			}
			sub, err := c.Split(color, -c.Rank())
			if err != nil {
				return err
			}
			if c.Rank() == 4 {
				if sub != nil {
					return errors.New("undefined color got a communicator")
				}
				return dup.Free()
			}
			want := map[int][2]int{0: {2, 1}, 2: {2, 0}, 1: {2, 1}, 3: {2, 0}}[c.Rank()]
			if sub.Size() != want[0] || sub.Rank() != want[1] {
				return fmt.Errorf("split: rank %d of %d, want %d of %d", sub.Rank(), sub.Size(), want[1], want[0])
			}
			// A ring inside the sub-communicator.
			got := make([]byte, 1)
			st, err := sub.Sendrecv([]byte{byte(c.Rank())}, (sub.Rank()+1)%sub.Size(), 0, got, (sub.Rank()+1)%sub.Size(), 0)
			if err != nil || st.Source != (sub.Rank()+1)%sub.Size() || int(got[0])%2 != color {
				return fmt.Errorf("sub ring: %+v %v %v", st, got, err)
			}
			if sub.WorldRank(sub.Rank()) != c.Rank() {
				return errors.New("world rank mapping")
			}
			if comm.Compare(c, sub) != comm.Unequal {
				return errors.New("compare of a split")
			}
			if err := sub.Free(); err != nil {
				return err
			}
			if err := sub.Send(nil, 0, 0); !errors.Is(err, comm.ErrFreed) {
				return fmt.Errorf("send on a freed communicator: %v", err)
			}
			if err := sub.Free(); !errors.Is(err, comm.ErrFreed) {
				return fmt.Errorf("second Free: %v", err)
			}
			return dup.Free()
		})
	})
}

func TestTyped(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	commtest.Run(t, ws, func(c *comm.Comm) error {
		if c.Rank() == 0 {
			if err := comm.Send(c, []float64{1.5, -2, 3}, 1, 0); err != nil {
				return err
			}
			return c.Send(make([]byte, 10), 1, 1)
		}
		xs := make([]float64, 4)
		st, err := comm.Recv(c, xs, 0, 0)
		if err != nil || st.Count != 3 || xs[0] != 1.5 || xs[2] != 3 {
			return fmt.Errorf("typed recv: %+v %v %v", st, xs, err)
		}
		// 10 bytes are not a whole number of float64.
		if _, err := comm.Recv(c, xs, 0, 1); !errors.Is(err, comm.ErrInvalidArg) {
			return fmt.Errorf("10 bytes as float64: %v", err)
		}
		return nil
	})
}

func TestInvalidArguments(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	c := ws[0]
	cases := []struct {
		name string
		err  error
	}{
		{"rank out of range", c.Send(nil, 2, 0)},
		{"negative rank", c.Send(nil, -3, 0)},
		{"negative tag", c.Send(nil, 1, -1)},
		{"tag too large", c.Send(nil, 1, comm.MaxTag+1)},
		{"any source to send", c.Send(nil, comm.AnySource, 0)},
	}
	for _, tc := range cases {
		var oe *comm.OpError
		if !errors.Is(tc.err, comm.ErrInvalidArg) || !errors.As(tc.err, &oe) {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
	if _, err := c.Recv(nil, 5, 0); !errors.Is(err, comm.ErrInvalidArg) {
		t.Errorf("recv from rank 5: %v", err)
	}
}

func TestUseAfterFinalize(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	commtest.Finalize(t, ws)
	if err := ws[0].Send(nil, 1, 0); !errors.Is(err, comm.ErrFinalized) {
		t.Fatalf("send after finalize: %v", err)
	}
	if _, err := ws[1].Recv(nil, 0, 0); !errors.Is(err, comm.ErrFinalized) {
		t.Fatalf("recv after finalize: %v", err)
	}
	if err := ws[0].Finalize(); err != nil {
		t.Fatalf("second finalize: %v", err)
	}
}

// TestManyGoroutines uses one communicator from many goroutines at once
// (MPI's THREAD_MULTIPLE): each goroutine has its own tag, and the
// messages of one goroutine arrive in order.
func TestManyGoroutines(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		const goroutines, msgs = 8, 200
		commtest.Run(t, ws, func(c *comm.Comm) error {
			var wg sync.WaitGroup
			errs := make(chan error, goroutines)
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					peer := 1 - c.Rank()
					buf := make([]byte, 8)
					for i := 0; i < msgs; i++ {
						size := 8
						if i%50 == 0 {
							size = 100000
						}
						out := make([]byte, size)
						out[0], out[1] = byte(g), byte(i)
						r := c.Isend(out, peer, g)
						in := make([]byte, max(size, len(buf)))
						st, err := c.Recv(in, peer, g)
						if err == nil && (in[0] != byte(g) || in[1] != byte(i) || st.Count != size) {
							err = fmt.Errorf("goroutine %d message %d: got %d/%d", g, i, in[0], in[1])
						}
						if err == nil {
							_, err = r.Wait()
						}
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			return <-errs
		})
	})
}

// TestHugeMessage moves a 1 GiB message (256 MiB under the race detector,
// whose shadow memory would quadruple the footprint) and checks that the
// runtime allocated no copy of it on the way.
func TestHugeMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("huge message skipped in -short mode")
	}
	size := 1 << 30
	if raceEnabled {
		size = 256 << 20
	}
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		send := make([]byte, size)
		recv := make([]byte, size)
		for i := 0; i < size; i += 4096 {
			send[i] = byte(i >> 12)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			if c.Rank() == 0 {
				return c.Send(send, 1, 0)
			}
			st, err := c.Recv(recv, 0, 0)
			if err == nil && st.Count != size {
				err = fmt.Errorf("received %d bytes", st.Count)
			}
			return err
		})
		runtime.ReadMemStats(&after)
		if grown := after.TotalAlloc - before.TotalAlloc; grown > 64<<20 {
			t.Errorf("moving %d MiB allocated %d MiB", size>>20, grown>>20)
		}
		for i := 0; i < size; i += 4096 {
			if recv[i] != byte(i>>12) {
				t.Fatalf("byte %d differs", i)
			}
		}
	})
}

// TestNoAllocations: a blocking send and receive of a small message
// allocate nothing, on either transport (the echoing rank included:
// AllocsPerRun counts the whole process).
func TestNoAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				st, err := ws[1].Recv(buf, 0, comm.AnyTag)
				if err != nil || st.Tag == 1 {
					return
				}
				ws[1].Send(buf[:st.Count], 0, 0)
			}
		}()
		out, in := make([]byte, 32), make([]byte, 64)
		pingpong := func() {
			ws[0].Send(out, 1, 0)
			ws[0].Recv(in, 1, 0)
		}
		for i := 0; i < 200; i++ {
			pingpong()
		}
		allocs := testing.AllocsPerRun(2000, pingpong)
		ws[0].Send(nil, 1, 1)
		wg.Wait()
		close(stop)
		if allocs > 0 {
			t.Errorf("%.2f allocations per round trip", allocs)
		}
	})
}

// TestUnexpectedPayloads: eager messages that arrive before their receives
// are held and handed over whole, at sizes inline in the message record,
// in the pooled classes (up to TCP's 64 KiB eager limit) and between
// them, over shared memory and TCP; held buffers come back and are reused
// without one message's bytes showing in another's. Once warm, holding
// them allocates nothing.
func TestUnexpectedPayloads(t *testing.T) {
	for _, tr := range []commtest.Transport{commtest.Shm, commtest.TCP} {
		t.Run(tr.String(), func(t *testing.T) {
			ws := commtest.Worlds(t, 2, tr)
			sizes := []int{64, 65, 128, 1000, 4096, 16 << 10} // up to shm's eager limit
			if tr == commtest.TCP {
				sizes = append(sizes, 64<<10)
			}
			in := make([]byte, 64<<10+1)
			round := func(seed int) {
				// Sends within the eager limit return at once; rank 1's
				// first receive drains every frame, and the others wait,
				// unexpected, until their receives come.
				for i, n := range sizes {
					if err := ws[0].Send(bytes.Repeat([]byte{byte(seed + i)}, n), 1, i); err != nil {
						t.Fatal(err)
					}
				}
				for i, n := range sizes {
					clear(in)
					st, err := ws[1].Recv(in, 0, i)
					if err != nil {
						t.Fatal(err)
					}
					if st.Count != n || !bytes.Equal(in[:n], bytes.Repeat([]byte{byte(seed + i)}, n)) || in[n] != 0 {
						t.Fatalf("round %d, message %d: %d bytes, want %d of %#x", seed, i, st.Count, n, byte(seed+i))
					}
				}
			}
			for seed := range 20 {
				round(seed)
			}
			if raceEnabled {
				return // the race detector allocates, and empties pools at random
			}
			out := make([]byte, 4000)
			lens := []int{100, 1000, 4000}
			allocs := testing.AllocsPerRun(20, func() {
				for i, n := range lens {
					ws[0].Send(out[:n], 1, i)
				}
				for i := range lens {
					ws[1].Recv(in, 0, i)
				}
			})
			if allocs > 0 {
				t.Errorf("%.2f allocations per %d unexpected messages", allocs, len(lens))
			}
		})
	}
}

// TestStartallOverTCP: the frames of a window of persistent sends that
// Startall starts together leave in a few write system calls, not one
// each, and arrive whole and in order.
func TestStartallOverTCP(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.TCP)
	const n = 40
	var sends, recvs []*comm.Request
	ins := make([][]byte, n)
	for i := range n {
		s, err := ws[0].SendInit(bytes.Repeat([]byte{byte(i)}, 16+i), 1, i)
		if err != nil {
			t.Fatal(err)
		}
		ins[i] = make([]byte, 16+i)
		r, err := ws[1].RecvInit(ins[i], 0, i)
		if err != nil {
			t.Fatal(err)
		}
		sends, recvs = append(sends, s), append(recvs, r)
	}
	for round := range 3 {
		if err := comm.Startall(recvs...); err != nil {
			t.Fatal(err)
		}
		before := comm.WriteCalls(ws[0])
		if err := comm.Startall(sends...); err != nil {
			t.Fatal(err)
		}
		if w := comm.WriteCalls(ws[0]) - before; w > 4 {
			t.Errorf("round %d: %d sends took %d write calls", round, n, w)
		}
		if _, err := comm.Waitall(append(sends, recvs...)...); err != nil {
			t.Fatal(err)
		}
		for i, in := range ins {
			if !bytes.Equal(in, bytes.Repeat([]byte{byte(i)}, 16+i)) {
				t.Fatalf("round %d: message %d arrived as % x", round, i, in[:4])
			}
		}
	}
}

// TestCompletedSends: a small send that completes as it starts (its frame
// went straight into the peer's ring) returns a request that behaves as
// any completed send: Wait and Test report success with a zero status, as
// often as asked, and Cancel refuses. Such sends allocate nothing, and the
// messages arrive whole and in order.
func TestCompletedSends(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	const n = 200
	msg := func(i int) []byte { return []byte{byte(i), byte(i >> 8), 7, 9} }
	var reqs []*comm.Request
	for i := range n {
		reqs = append(reqs, ws[0].Isend(msg(i), 1, i%3))
	}
	for i, r := range reqs {
		for range 2 {
			if st, err := r.Wait(); err != nil || st != (comm.Status{}) {
				t.Fatalf("send %d: Wait = %+v, %v; want a zero status and no error", i, st, err)
			}
		}
		if done, st, err := r.Test(); !done || err != nil || st != (comm.Status{}) {
			t.Fatalf("send %d: Test = %v, %+v, %v", i, done, st, err)
		}
		if r.Cancel() {
			t.Fatalf("send %d: Cancel of a completed send succeeded", i)
		}
	}
	if _, err := comm.Waitall(reqs...); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	for i := range n {
		st, err := ws[1].Recv(buf, 0, comm.AnyTag)
		if err != nil {
			t.Fatal(err)
		}
		if st.Tag != i%3 || !bytes.Equal(buf[:st.Count], msg(i)) {
			t.Fatalf("message %d: tag %d, % x; want tag %d, % x", i, st.Tag, buf[:st.Count], i%3, msg(i))
		}
	}
	if raceEnabled {
		return // the race detector allocates
	}
	// Each Isend returns a request of its own, the program's for as long
	// as it holds it: one allocation, and nothing else. 5 x 64 frames fit
	// in the ring, so none waits for room.
	small := []byte("x")
	allocs := testing.AllocsPerRun(4, func() {
		for range 64 {
			if _, err := ws[0].Isend(small, 1, 5).Wait(); err != nil {
				t.Fatal(err)
			}
		}
	})
	if allocs > 64 {
		t.Errorf("%.2f allocations per 64 small Isends, want 64 (the requests)", allocs)
	}
	for range 5 * 64 {
		if _, err := ws[1].Recv(buf, 0, 5); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRelease: a released request is never given to another operation:
// every later use reports ErrReleased, however many operations ran since
// (the runtime used to recycle released requests, and a stale one then
// showed another operation's status). An operation released in flight
// still completes: the message it matched is consumed. Releasing nil does
// nothing.
func TestRelease(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	buf := make([]byte, 8)

	done := ws[1].Irecv(buf, 0, 1)
	if err := ws[0].Send([]byte("first"), 1, 1); err != nil {
		t.Fatal(err)
	}
	if st, err := done.Wait(); err != nil || st.Count != 5 {
		t.Fatalf("first receive: %+v, %v", st, err)
	}
	done.Release()
	var nilReq *comm.Request
	nilReq.Release()
	// Many operations later, the released request is still only that.
	for i := range 300 {
		r := ws[1].Irecv(buf, 0, 2)
		if err := ws[0].Send([]byte{byte(i)}, 1, 2); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := done.Wait(); !errors.Is(err, comm.ErrReleased) || st != (comm.Status{}) {
		t.Fatalf("Wait after Release = %+v, %v; want ErrReleased", st, err)
	}
	if _, _, err := done.Test(); !errors.Is(err, comm.ErrReleased) {
		t.Fatalf("Test after Release = %v; want ErrReleased", err)
	}
	if done.Cancel() {
		t.Fatal("Cancel after Release succeeded")
	}

	// Released in flight: the operation goes on and consumes its message.
	pending := ws[1].Irecv(make([]byte, 8), 0, 3)
	pending.Release()
	for _, m := range []string{"late", "next"} {
		if err := ws[0].Send([]byte(m), 1, 3); err != nil {
			t.Fatal(err)
		}
	}
	st, err := ws[1].Recv(buf, 0, 3)
	if err != nil || string(buf[:st.Count]) != "next" {
		t.Fatalf("after a released receive: got %q, %v; want \"next\" (the released one took \"late\")", buf[:st.Count], err)
	}
}

// TestPersistent: persistent requests repeat their operation at each
// Start without allocating; starting an active request, or one that is
// not persistent, is an error; Wait on one never started returns at once.
func TestPersistent(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		out, in := make([]byte, 16), make([]byte, 16)
		send, err := ws[0].SendInit(out, 1, 4)
		if err != nil {
			t.Fatal(err)
		}
		recv, err := ws[1].RecvInit(in, 0, 4)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := recv.Wait(); err != nil || st != (comm.Status{}) {
			t.Fatalf("Wait on an inactive persistent request: %+v, %v", st, err)
		}
		round := func(i int) {
			out[0] = byte(i)
			if err := comm.Startall(recv, send); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				if err := recv.Start(); !errors.Is(err, comm.ErrInvalidArg) {
					t.Fatalf("Start of an active request: %v", err)
				}
			}
			if _, err := send.Wait(); err != nil {
				t.Fatal(err)
			}
			st, err := recv.Wait()
			if err != nil || st.Count != 16 || st.Source != 0 || st.Tag != 4 || in[0] != byte(i) {
				t.Fatalf("round %d: %+v, %v, in[0] = %d", i, st, err, in[0])
			}
		}
		for i := range 50 {
			round(i)
		}
		if err := ws[0].Isend(out, 1, 9).Start(); !errors.Is(err, comm.ErrInvalidArg) {
			t.Fatalf("Start of a request that is not persistent: %v", err)
		}
		ws[1].Recv(in, 0, 9)
		if raceEnabled {
			return
		}
		i := 1
		if n := testing.AllocsPerRun(200, func() { round(i); i++ }); n > 0 {
			t.Errorf("%.2f allocations per persistent round", n)
		}
	})
}

// TestStartallMixed: Startall starts every valid request of a list that
// mixes engines (two ranks' requests) with invalid entries, and returns the
// first error.
func TestStartallMixed(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 2, tr)
		a, b := make([]byte, 4), make([]byte, 4)
		sendA, _ := ws[0].SendInit([]byte("aaaa"), 1, 5)
		sendB, _ := ws[0].SendInit([]byte("bbbb"), 1, 6)
		recvA, _ := ws[1].RecvInit(a, 0, 5)
		recvB, _ := ws[1].RecvInit(b, 0, 6)
		plain := ws[1].Irecv(make([]byte, 4), 0, 7)
		err := comm.Startall(recvA, nil, sendA, plain, recvB, sendB)
		if !errors.Is(err, comm.ErrInvalidArg) || !strings.Contains(err.Error(), "nil request") {
			t.Fatalf("Startall with a nil request = %v, want the nil request's error first", err)
		}
		if err := comm.WaitallNoStatus(sendA, sendB, recvA, recvB); err != nil || string(a) != "aaaa" || string(b) != "bbbb" {
			t.Fatalf("after Startall: %v, got %q %q", err, a, b)
		}
		ws[0].Send([]byte("pppp"), 1, 7)
		plain.Wait()
	})
}

// TestWaitallNoStatus: it waits for every request and reports the first
// error, like Waitall, without allocating.
func TestWaitallNoStatus(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	a, b := make([]byte, 4), make([]byte, 4)
	reqs := []*comm.Request{ws[1].Irecv(a, 0, 1), ws[1].Irecv(b, 0, 2)}
	ws[0].Send([]byte("two!"), 1, 2)
	ws[0].Send([]byte("one!"), 1, 1)
	if err := comm.WaitallNoStatus(reqs...); err != nil || string(a) != "one!" || string(b) != "two!" {
		t.Fatalf("WaitallNoStatus = %v; got %q %q", err, a, b)
	}
	bad := ws[1].Irecv(a, 7, 1) // no rank 7
	if err := comm.WaitallNoStatus(reqs[0], bad, nil); err == nil {
		t.Fatalf("WaitallNoStatus with a failed request = %v", err)
	}
	// Both wait for the last request first; the error reported is still
	// the one of the lowest index.
	bad1, bad2 := ws[1].Irecv(a, 7, 1), ws[1].Irecv(a, 8, 1) // no ranks 7 and 8
	if err := comm.WaitallNoStatus(bad1, bad2); err == nil || !strings.Contains(err.Error(), "7") || strings.Contains(err.Error(), "8") {
		t.Fatalf("WaitallNoStatus of two failed requests = %v, want the first's (rank 7)", err)
	}
	bad1, bad2 = ws[1].Irecv(a, 7, 1), ws[1].Irecv(a, 8, 1)
	if _, err := comm.Waitall(bad1, bad2); err == nil || !strings.Contains(err.Error(), "7") || strings.Contains(err.Error(), "8") {
		t.Fatalf("Waitall of two failed requests = %v, want the first's (rank 7)", err)
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { comm.WaitallNoStatus(reqs...) }); n > 0 {
		t.Errorf("%.1f allocations per call", n)
	}
}

// TestWorldOfOne: a program run without mpirun is a world of one, on any
// system (TestPortableBuild runs this with the non-Linux files): messages
// to itself, blocking and not, communicators; and after Finalize, Init
// fails. It runs in a process of its own (the world is process-wide).
func TestWorldOfOne(t *testing.T) {
	if os.Getenv("COMM_TEST_WORLD_OF_ONE") != "1" {
		exe, _ := os.Executable()
		cmd := exec.Command(exe, "-test.run=^TestWorldOfOne$", "-test.v")
		cmd.Env = append(os.Environ(), "COMM_TEST_WORLD_OF_ONE=1")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS: TestWorldOfOne") {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	w, err := comm.Init()
	if err != nil {
		t.Fatal(err)
	}
	if w.Rank() != 0 || w.Size() != 1 {
		t.Fatalf("rank %d of %d", w.Rank(), w.Size())
	}
	if err := w.Send([]byte("self"), 0, 1); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if st, err := w.Recv(buf, 0, 1); err != nil || string(buf[:st.Count]) != "self" {
		t.Fatalf("recv from self: %+v %v", st, err)
	}
	r := w.Irecv(buf, comm.AnySource, 2)
	if err := w.Send([]byte("again"), 0, 2); err != nil {
		t.Fatal(err)
	}
	if st, err := r.Wait(); err != nil || st.Count != 5 {
		t.Fatalf("irecv from self: %+v %v", st, err)
	}
	d, err := w.Dup()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Free(); err != nil {
		t.Fatal(err)
	}
	if err := comm.Finalize(); err != nil {
		t.Fatal(err)
	}
	if w, err := comm.Init(); !errors.Is(err, comm.ErrFinalized) || w != nil {
		t.Fatalf("Init after Finalize = %v, %v; want ErrFinalized", w, err)
	}
	if err := w.Send(nil, 0, 0); !errors.Is(err, comm.ErrFinalized) {
		t.Fatalf("send after Finalize: %v", err)
	}
}

// particle is a struct a program would send: fixed size, no pointers,
// with padding (the bool).
type particle struct {
	Pos, Vel [3]float64
	ID       int32
	Alive    bool
}

// TestTypedStructs: structs travel through the generic calls, counted in
// elements everywhere (Recv, Sendrecv, a typed Irecv's Wait, RecvInit);
// a type with a pointer is refused before anything is sent, naming the
// field.
func TestTypedStructs(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	ps := make([]particle, 5)
	for i := range ps {
		ps[i] = particle{Pos: [3]float64{float64(i), 2, 3}, ID: int32(i), Alive: i%2 == 0}
	}
	commtest.Run(t, ws, func(c *comm.Comm) error {
		peer := 1 - c.Rank()
		if c.Rank() == 0 {
			if err := comm.Send(c, ps, 1, 1); err != nil {
				return err
			}
			req := comm.Irecv(c, make([]particle, 8), 1, 2)
			if st, err := req.Wait(); err != nil || st.Count != 3 {
				return fmt.Errorf("typed Irecv: %+v %v, want 3 elements", st, err)
			}
		} else {
			got := make([]particle, 10)
			st, err := comm.Recv(c, got, 0, 1)
			if err != nil || st.Count != 5 || got[3] != ps[3] {
				return fmt.Errorf("typed Recv: %+v %v %+v", st, err, got[3])
			}
			if err := comm.Send(c, ps[:3], 0, 2); err != nil {
				return err
			}
		}
		back := make([]particle, 5)
		st, err := comm.Sendrecv(c, ps[:2], peer, 3, back, peer, 3)
		if err != nil || st.Count != 2 || back[1] != ps[1] {
			return fmt.Errorf("typed Sendrecv: %+v %v", st, err)
		}
		return nil
	})
	type named struct {
		ID   int
		Name string
	}
	err := comm.Send(ws[0], []named{{1, "a"}}, 1, 1)
	if !errors.Is(err, comm.ErrInvalidArg) || !strings.Contains(err.Error(), "field Name is a string") {
		t.Fatalf("a struct with a string: %v", err)
	}
	if r := comm.Irecv(ws[0], []map[int]int{nil}, 1, 1); r == nil {
		t.Fatal("nil request")
	} else if _, err := r.Wait(); !errors.Is(err, comm.ErrInvalidArg) {
		t.Fatalf("a map element: %v", err)
	}
}
