package comm_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
	"github.com/parley-hpc/parley/transport"
)

// TestConcurrentCommCreation: goroutines that each Dup a different
// communicator at the same time (legal under THREAD_MULTIPLE) get
// communicators whose messages never cross. Every rank proposed the same
// context id to both creations before ids were claimed atomically, and a
// message sent on one new communicator arrived on the other.
func TestConcurrentCommCreation(t *testing.T) {
	rounds := 150
	if testing.Short() || raceEnabled {
		rounds = 40
	}
	both(t, func(t *testing.T, tr commtest.Transport) {
		ws := commtest.Worlds(t, 3, tr)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			parents := make([]*comm.Comm, 3)
			for i := range parents {
				var err error
				if parents[i], err = c.Dup(); err != nil {
					return err
				}
			}
			var wg sync.WaitGroup
			errs := make([]error, len(parents))
			for g, p := range parents {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for round := range rounds {
						d, err := p.Dup()
						if err != nil {
							errs[g] = err
							return
						}
						msg := []byte(fmt.Sprintf("g%d r%d from %d", g, round, d.Rank()))
						got := make([]byte, 64)
						next, prev := (d.Rank()+1)%d.Size(), (d.Rank()+d.Size()-1)%d.Size()
						st, err := d.Sendrecv(msg, next, 1, got, prev, 1)
						if err != nil {
							errs[g] = err
							return
						}
						want := fmt.Sprintf("g%d r%d from %d", g, round, prev)
						if string(got[:st.Count]) != want {
							errs[g] = fmt.Errorf("round %d: goroutine %d received %q, want %q: messages crossed between communicators", round, g, got[:st.Count], want)
							return
						}
						if err := d.Free(); err != nil {
							errs[g] = err
							return
						}
					}
				}()
			}
			wg.Wait()
			return errors.Join(errs...)
		})
	})
}

// TestSplitExtremeKeys: Split orders ranks by key even for keys at the
// ends of int's range (a subtraction comparing them overflowed).
func TestSplitExtremeKeys(t *testing.T) {
	ws := commtest.Worlds(t, 3, commtest.Shm)
	keys := []int{math.MaxInt, math.MinInt, 0}
	want := []int{2, 0, 1} // new rank of each world rank
	commtest.Run(t, ws, func(c *comm.Comm) error {
		sub, err := c.Split(0, keys[c.Rank()])
		if err != nil {
			return err
		}
		if sub.Rank() != want[c.Rank()] {
			return fmt.Errorf("key %d: rank %d in the split, want %d", keys[c.Rank()], sub.Rank(), want[c.Rank()])
		}
		return sub.Free()
	})
}

// TestReadOutsideLock: the single-copy read of a large message is made
// without the engine's lock, so the rank's other goroutines keep
// communicating while it runs (the read used to be made under the lock:
// a 1 GiB receive held every other goroutine of the rank for about
// 100 ms). The read is held up here by a hook, and a second goroutine's
// exchange must complete meanwhile.
func TestReadOutsideLock(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	comm.SetReadHook(ws[1], func() {
		once.Do(func() { close(entered) })
		<-release
	})
	big := bytes.Repeat([]byte{0xab}, 4<<20)
	send := ws[0].Isend(big, 1, 1)
	got := make([]byte, len(big))
	recvDone := make(chan error, 1)
	go func() {
		_, err := ws[1].Recv(got, 0, 1)
		recvDone <- err
	}()
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the large receive never started its single-copy read")
	}
	// The read is under way (held by the hook): small messages flow.
	small := make(chan error, 1)
	go func() {
		buf := make([]byte, 8)
		for i := range 10 {
			if err := ws[0].Send([]byte{byte(i)}, 1, 2); err != nil {
				small <- err
				return
			}
			if _, err := ws[1].Recv(buf, 0, 2); err != nil {
				small <- err
				return
			}
		}
		small <- nil
	}()
	select {
	case err := <-small:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("small messages did not move while a single-copy read was in progress")
	}
	close(release)
	if err := <-recvDone; err != nil {
		t.Fatal(err)
	}
	if _, err := send.Wait(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("the large message arrived corrupted")
	}
}

// TestPostingLeavesTheRead: an Irecv that matches a large message already
// announced returns without copying it; the single-copy read is made by
// the wait. Made in the Irecv, a read of megabytes kept a program's Irecv
// then Isend (and a collective's receives then sends) from announcing
// anything to the peer for the length of the copy. Persistent receives
// (Start, Startall) and an Isend after the Irecv leave it too.
func TestPostingLeavesTheRead(t *testing.T) {
	for _, post := range []string{"Irecv", "Start", "Startall", "Irecv+Isend"} {
		t.Run(post, func(t *testing.T) {
			ws := commtest.Worlds(t, 2, commtest.Shm)
			var reads atomic.Int32
			comm.SetReadHook(ws[1], func() { reads.Add(1) })
			big := bytes.Repeat([]byte{0xcd}, 1<<20)
			send := ws[0].Isend(big, 1, 1)
			for {
				ok, _, err := ws[1].Iprobe(0, 1)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					break
				}
				time.Sleep(time.Millisecond)
			}
			got := make([]byte, len(big))
			var r *comm.Request
			switch post {
			case "Irecv", "Irecv+Isend":
				r = ws[1].Irecv(got, 0, 1)
			default:
				var err error
				if r, err = ws[1].RecvInit(got, 0, 1); err != nil {
					t.Fatal(err)
				}
				if post == "Start" {
					err = r.Start()
				} else {
					err = comm.Startall(r)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var back *comm.Request
			if post == "Irecv+Isend" {
				back = ws[1].Isend([]byte{1}, 0, 2)
			}
			if n := reads.Load(); n != 0 {
				t.Fatalf("%s made %d single-copy reads before the wait", post, n)
			}
			if _, err := r.Wait(); err != nil {
				t.Fatal(err)
			}
			if reads.Load() == 0 {
				t.Fatal("the receive completed without a single-copy read (was the message not announced?)")
			}
			if !bytes.Equal(got, big) {
				t.Fatal("the large message arrived corrupted")
			}
			if _, err := send.Wait(); err != nil {
				t.Fatal(err)
			}
			if back != nil {
				if _, err := ws[0].Recv(make([]byte, 1), 1, 2); err != nil {
					t.Fatal(err)
				}
				if _, err := back.Wait(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestForgedFrames: a frame is believed only if it comes from the peer
// it claims, and names a request that this rank gave that very peer.
// Anything else ends the world with an error naming the offending rank;
// it never completes another peer's request (a forged FIN used to
// complete a send early) and never leaves a receive waiting forever (a
// refused data frame used to be delivered as nothing).
func TestForgedFrames(t *testing.T) {
	protocolErr := func(err error, rank int) error {
		var pe *transport.PeerError
		if !errors.Is(err, comm.ErrProtocol) || !errors.As(err, &pe) || pe.Rank != rank {
			return fmt.Errorf("got %v; want a protocol error naming rank %d", err, rank)
		}
		return nil
	}
	t.Run("source", func(t *testing.T) {
		ws := commtest.Worlds(t, 3, commtest.TCP)
		r := ws[0].Irecv(make([]byte, 8), comm.AnySource, comm.AnyTag)
		// A frame on the link from rank 2 that says it is from rank 1.
		comm.DeliverFrame(ws[0], 2, transport.Header{Kind: comm.KindEager, Source: 1, Tag: 3, Len: 2}, []byte("hi"))
		if _, err := r.Wait(); protocolErr(err, 2) != nil {
			t.Fatal(protocolErr(err, 2))
		}
	})
	t.Run("fin for another peer's send", func(t *testing.T) {
		ws := commtest.Worlds(t, 3, commtest.TCP)
		big := make([]byte, 1<<20) // rendezvous: the send waits for rank 1
		send := ws[0].Isend(big, 1, 5)
		cookie := comm.Cookie(send)
		if cookie == 0 {
			t.Fatal("a 1 MiB send has no rendezvous cookie")
		}
		comm.DeliverFrame(ws[0], 2, transport.Header{Kind: comm.KindFin, Source: 2, Cookie: cookie}, nil)
		_, err := send.Wait()
		if err == nil {
			t.Fatal("a FIN from rank 2 completed a send to rank 1")
		}
		if e := protocolErr(err, 2); e != nil {
			t.Fatal(e)
		}
	})
	t.Run("data outside the message", func(t *testing.T) {
		ws := commtest.Worlds(t, 2, commtest.TCP)
		// The connection first, both ways: while a link comes up, rank 0's
		// flusher polls for it, and could answer the request for data.
		for _, p := range [][2]int{{0, 1}, {1, 0}} {
			if err := ws[p[0]].Send([]byte{1}, p[1], 9); err != nil {
				t.Fatal(err)
			}
			if _, err := ws[p[1]].Recv(make([]byte, 1), p[0], 9); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, 1<<20)
		recv := ws[1].Irecv(got, 0, 6)
		send := ws[0].Isend(make([]byte, 1<<20), 1, 6)
		// Wait until the receive has asked for data (its cookie exists).
		// Only rank 1 makes progress: rank 0 never reads the request for
		// data, so no real data can complete the receive first.
		var cookie uint64
		deadline := time.Now().Add(20 * time.Second)
		for cookie == 0 && time.Now().Before(deadline) {
			recv.Test()
			cookie = comm.Cookie(recv)
		}
		_ = send
		if cookie == 0 {
			t.Fatal("the receive never asked for data")
		}
		comm.DeliverFrame(ws[1], 0, transport.Header{Kind: comm.KindData, Flags: transport.FlagDirect, Source: 0,
			Cookie: cookie, Aux: 1 << 20, Len: 16}, make([]byte, 16))
		done := make(chan error, 1)
		go func() { _, err := recv.Wait(); done <- err }()
		select {
		case err := <-done:
			if e := protocolErr(err, 0); e != nil {
				t.Fatal(e)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a receive whose data frame was refused never completed")
		}
	})
}

// TestHangRecords: every wait path records what its goroutine waits for,
// one record per goroutine (the first to finish used to clear the record
// for all), and the report names the call: probe, waitany, a collective.
func TestHangRecords(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.Shm)
	c := ws[0]
	started := make(chan struct{}, 4)
	var wg sync.WaitGroup
	wg.Add(4)
	go func() {
		defer wg.Done()
		r := c.Irecv(make([]byte, 1), 1, 15)
		started <- struct{}{}
		for done := false; !done; time.Sleep(time.Millisecond) {
			done, _, _ = r.Test()
		}
	}()
	go func() {
		defer wg.Done()
		started <- struct{}{}
		c.Probe(1, 11)
		c.Recv(make([]byte, 1), 1, 11)
	}()
	go func() {
		defer wg.Done()
		reqs := []*comm.Request{c.Irecv(make([]byte, 1), 1, 12), c.Irecv(make([]byte, 1), 1, 13)}
		started <- struct{}{}
		comm.Waitany(reqs...)
		comm.Waitall(reqs...)
	}()
	go func() {
		defer wg.Done()
		started <- struct{}{}
		c.Recv(make([]byte, 1), 1, 14)
	}()
	for range 4 {
		<-started
	}
	// The unexpected message the report lists.
	ws[1].Send([]byte("stray"), 0, 99)
	var text string
	ok := false
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		text = comm.Report(c)
		if strings.Count("\n"+text, "\nblocked in") == 4 &&
			strings.Contains(text, "arrived that no receive matches") {
			ok = true
			break
		}
	}
	if !ok {
		t.Fatalf("report of 3 blocked goroutines and a stray message:\n%s", text)
	}
	for _, want := range []string{"blocked in probe from rank 1, tag 11 on world", "blocked in waitany over 2 requests",
		"blocked in recv from rank 1, tag 14 on world", "from rank 1, tag 99 on world, 5 bytes",
		"blocked in a loop testing a request of a recv from rank 1, tag 15 on world"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	// Let them finish.
	for _, tag := range []int{11, 12, 13, 14, 15} {
		ws[1].Send([]byte{1}, 0, tag)
	}
	wg.Wait()
	if text := comm.Report(c); !strings.HasPrefix(text, "running (not blocked in a parley call)") {
		t.Fatalf("records left after the waits ended:\n%s", text)
	}
}

// eagerFence is a store whose fences after the first (Start's) return
// at once, as Hydra's PMI-2 kvs-fence answers a rank before the others
// arrive.
type eagerFence struct {
	*commtest.Store
	startFences int // how many fences are Start's: the ranks
	mu          sync.Mutex
	fences      int
}

func (s *eagerFence) Fence() error {
	s.mu.Lock()
	s.fences++
	first := s.fences <= s.startFences
	s.mu.Unlock()
	if first {
		return s.Store.Fence()
	}
	return nil
}

// TestFinalizeWaitsForEveryRank: a rank that finalizes early does not
// close its links under ranks still communicating, even when the process
// manager's fence is no barrier. Over Hydra, such a rank closed its TCP
// links, and a peer still waiting for a third rank failed with "lost a
// peer: unexpected EOF".
func TestFinalizeWaitsForEveryRank(t *testing.T) {
	both(t, func(t *testing.T, tr commtest.Transport) {
		const n = 3
		store := &eagerFence{Store: commtest.NewStore(n), startFences: n}
		secret := bytes.Repeat([]byte{7}, 32)
		job := fmt.Sprintf("finwait-%s-%d", tr, time.Now().UnixNano())
		errs := make([]error, n)
		var wg sync.WaitGroup
		for r := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := comm.Options{Rank: r, Size: n, LocalRank: r, LocalSize: n, JobID: job, Secret: secret, KV: store,
					TCPAdvertise: "127.0.0.1", Node: job, ForceTCP: tr == commtest.TCP, NoShm: tr == commtest.TCP}
				comm.LooseFence(&o)
				c, err := comm.Start(o)
				if err != nil {
					errs[r] = err
					return
				}
				buf := make([]byte, 16)
				switch r {
				case 0: // done at once: straight to Finalize
					err = c.Send([]byte("from 0"), 1, 9)
				case 1:
					if _, err = c.Recv(buf, 0, 9); err == nil {
						_, err = c.Recv(buf, 2, 9) // rank 2 is late
					}
				case 2:
					time.Sleep(300 * time.Millisecond)
					err = c.Send([]byte("from 2"), 1, 9)
				}
				errs[r] = errors.Join(err, c.Finalize())
			}()
		}
		wg.Wait()
		for r, err := range errs {
			if err != nil {
				t.Errorf("rank %d: %v", r, err)
			}
		}
	})
}
