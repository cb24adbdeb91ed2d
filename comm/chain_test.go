package comm_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-hpc/parley/collectives"
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/comm/commtest"
	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/coll"
	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/shm"
)

// pattern fills a message whose every byte says where it lies and which
// message it is, so that a piece placed at the wrong offset shows.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8 + seed)
	}
	return b
}

// TestChains: messages between the eager limit and shm.ChainLimit travel
// as chains of frames (comm/chain.go), over real shared memory. Each case
// would fail if the receiver placed a piece wrongly, matched a chain
// before it was whole, or lost the frames behind a dropped one.
func TestChains(t *testing.T) {
	sizes := []int{shm.EagerLimit + 1, 20000, 32 << 10, 40001, shm.ChainLimit}
	t.Run("matched and unexpected", func(t *testing.T) {
		ws := commtest.Worlds(t, 2, commtest.Shm)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			for i, n := range sizes {
				if c.Rank() == 0 {
					if err := c.Send(pattern(n, i), 1, i); err != nil {
						return err
					}
					continue
				}
				got := make([]byte, n+5)
				if i%2 == 1 {
					// Unexpected: Probe sees the message only once whole.
					st, err := c.Probe(0, i)
					if err != nil {
						return err
					}
					if st.Count != n {
						return fmt.Errorf("probe of a %d-byte chain says %d bytes", n, st.Count)
					}
				}
				st, err := c.Recv(got, 0, i)
				if err != nil {
					return err
				}
				if st.Count != n || !bytes.Equal(got[:n], pattern(n, i)) {
					return fmt.Errorf("a %d-byte chain arrived as %d bytes, or with other contents", n, st.Count)
				}
			}
			return nil
		})
	})
	t.Run("order with other messages", func(t *testing.T) {
		// Chains and single frames from one sender, received by AnyTag in
		// the order sent; from two senders at once, by AnySource.
		ws := commtest.Worlds(t, 3, commtest.Shm)
		lens := []int{40000, 3, 0, 50000, 16 << 10, 20000, 1 << 20, 33000}
		commtest.Run(t, ws, func(c *comm.Comm) error {
			if c.Rank() != 0 {
				var reqs []*comm.Request
				for i, n := range lens {
					reqs = append(reqs, c.Isend(pattern(n, i+c.Rank()), 0, i))
				}
				_, err := comm.Waitall(reqs...)
				return err
			}
			next := [3]int{}
			for range 2 * len(lens) {
				got := make([]byte, 1<<20)
				st, err := c.Recv(got, comm.AnySource, comm.AnyTag)
				if err != nil {
					return err
				}
				i := next[st.Source]
				next[st.Source]++
				if st.Tag != i || st.Count != lens[i] || !bytes.Equal(got[:st.Count], pattern(lens[i], i+st.Source)) {
					return fmt.Errorf("message %d from rank %d came as tag %d, %d bytes (want %d), or with other contents", i, st.Source, st.Tag, st.Count, lens[i])
				}
			}
			return nil
		})
	})
	t.Run("truncated, then the next", func(t *testing.T) {
		// A receive too short fails at the head; the chain's pieces are
		// dropped, and the message behind them arrives whole.
		ws := commtest.Worlds(t, 2, commtest.Shm)
		commtest.Run(t, ws, func(c *comm.Comm) error {
			if c.Rank() == 0 {
				if err := c.Send(pattern(50000, 1), 1, 1); err != nil {
					return err
				}
				return c.Send(pattern(30000, 2), 1, 2)
			}
			_, err := c.Recv(make([]byte, 100), 0, 1)
			var te *comm.TruncatedError
			if !errors.As(err, &te) || te.Message != 50000 || te.Buffer != 100 {
				return fmt.Errorf("a 50000-byte chain into 100 bytes: got %v, want ErrTruncated with both sizes", err)
			}
			got := make([]byte, 30000)
			if _, err := c.Recv(got, 0, 2); err != nil {
				return err
			}
			if !bytes.Equal(got, pattern(30000, 2)) {
				return errors.New("the message after a dropped chain arrived with other contents")
			}
			return nil
		})
	})
	t.Run("traffic", func(t *testing.T) {
		// The matching rules of TestTrafficModel, with most sizes in the
		// range of chains.
		for _, n := range []int{3, 5} {
			ws := commtest.Worlds(t, n, commtest.Shm)
			traffic := commtest.Traffic{Seed: uint64(n) * 13, Messages: 12, MaxSize: shm.ChainLimit}
			commtest.Run(t, ws, traffic.Run)
		}
	})
}

// TestChainPieces hands the engine the frames of a chain one by one (rank
// 1 sends nothing itself), to check what happens between them: a receive
// matched by the head cannot be cancelled; an unmatched chain stays
// invisible until whole, then meets a receive posted meanwhile; and frames
// that break the chain are protocol errors naming the sender.
func TestChainPieces(t *testing.T) {
	const n = 20000
	msg := pattern(n, 3)
	head := transport.Header{Kind: comm.KindChain, Source: 1, Tag: 4, Len: 8192, Aux: n}
	piece := func(off, end int) (transport.Header, []byte) {
		return transport.Header{Kind: comm.KindPiece, Flags: transport.FlagDirect, Source: 1, Len: uint32(end - off), Aux: uint64(off)}, msg[off:end]
	}
	deliverRest := func(c *comm.Comm) {
		for _, p := range [][2]int{{8192, 16384}, {16384, n}} {
			h, b := piece(p[0], p[1])
			comm.DeliverFrame(c, 1, h, b)
		}
	}
	check := func(r *comm.Request, got []byte) error {
		st, err := r.Wait()
		if err != nil {
			return err
		}
		if st.Count != n || st.Source != 1 || !bytes.Equal(got[:n], msg) {
			return fmt.Errorf("the chain completed as %d bytes from rank %d, or with other contents", st.Count, st.Source)
		}
		return nil
	}
	t.Run("matched at the head", func(t *testing.T) {
		ws := commtest.Worlds(t, 2, commtest.Shm)
		got := make([]byte, n)
		r := ws[0].Irecv(got, 1, 4)
		comm.DeliverFrame(ws[0], 1, head, msg[:8192])
		if done, _, _ := r.Test(); done {
			t.Fatal("a receive completed with one piece of three")
		}
		if r.Cancel() {
			t.Fatal("Cancel withdrew a receive its message had matched")
		}
		deliverRest(ws[0])
		if err := check(r, got); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("whole before it matches", func(t *testing.T) {
		ws := commtest.Worlds(t, 2, commtest.Shm)
		comm.DeliverFrame(ws[0], 1, head, msg[:8192])
		if ok, _, err := ws[0].Iprobe(1, 4); ok || err != nil {
			t.Fatalf("Iprobe found a chain with one piece of three (%v)", err)
		}
		got := make([]byte, n)
		r := ws[0].Irecv(got, 1, 4)
		deliverRest(ws[0])
		if err := check(r, got); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("receive failed midway", func(t *testing.T) {
		// The world ends between the head and the rest: the receive fails
		// at once, and the pieces that still come touch nothing.
		ws := commtest.Worlds(t, 2, commtest.Shm)
		got := make([]byte, n)
		r := ws[0].Irecv(got, 1, 4)
		comm.DeliverFrame(ws[0], 1, head, msg[:8192])
		comm.DeliverFrame(ws[0], 1, transport.Header{Kind: comm.KindEager, Source: 0, Tag: 3, Len: 2}, []byte("hi"))
		done := make(chan error, 1)
		go func() { _, err := r.Wait(); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, comm.ErrProtocol) {
				t.Fatalf("got %v; want the protocol error that ended the world", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a receive its chain had matched outlived the world")
		}
		deliverRest(ws[0])
		if !bytes.Equal(got[:8192], msg[:8192]) || !bytes.Equal(got[8192:], make([]byte, n-8192)) {
			t.Fatal("pieces that came after the receive failed were placed in its buffer")
		}
	})
	// A chain that a collective's receive matched, cut short by a
	// revocation, or refused at its head for another collective's check
	// word: the receive fails at once, the pieces that still come are
	// dropped, and the world goes on.
	for _, tc := range []struct {
		name  string
		check uint32
		cut   bool // revoke after the head
		want  error
	}{
		{"revoked midway", coll.Check(coll.Bcast|coll.Nonblocking, coll.Args{Root: 1, ElemSize: 1, Count: n}), true, comm.ErrRevoked},
		{"mismatched head", coll.Check(coll.Allreduce, coll.Args{ElemSize: 1, Count: n}), false, comm.ErrMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := commtest.Worlds(t, 2, commtest.Shm)
			got := make([]byte, n)
			r := collectives.Ibcast(ws[0], got, 1) // its receive from rank 1 is posted
			r.Test()
			h := head
			h.Context, h.Tag, h.Check = comm.CollContext(ws[0]), 1, tc.check
			comm.DeliverFrame(ws[0], 1, h, msg[:8192])
			if tc.cut {
				if done, _, _ := r.Test(); done {
					t.Fatal("the collective completed with one piece of three")
				}
				comm.DeliverFrame(ws[0], 1, transport.Header{Kind: comm.KindRevoke, Source: 1,
					Context: comm.CollContext(ws[0]), Tag: 1}, []byte("a test revokes it"))
			}
			done := make(chan error, 1)
			go func() { _, err := r.Wait(); done <- err }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v; want %v", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the collective never completed")
			}
			deliverRest(ws[0])
			if !bytes.Equal(got[8192:], make([]byte, n-8192)) {
				t.Fatal("pieces that came after the receive failed were placed in its buffer")
			}
			if err := ws[1].Send([]byte("after"), 0, 7); err != nil {
				t.Fatal(err)
			}
			if _, err := ws[0].Recv(make([]byte, 8), 1, 7); err != nil {
				t.Fatalf("after the dropped pieces: %v", err)
			}
		})
	}
	forged := []struct {
		name   string
		frames func(c *comm.Comm)
	}{
		{"piece without a head", func(c *comm.Comm) {
			h, b := piece(0, 100)
			comm.DeliverFrame(c, 1, h, b)
		}},
		{"piece out of order", func(c *comm.Comm) {
			comm.DeliverFrame(c, 1, head, msg[:8192])
			h, b := piece(16384, n)
			comm.DeliverFrame(c, 1, h, b)
		}},
		{"piece past the end", func(c *comm.Comm) {
			comm.DeliverFrame(c, 1, head, msg[:8192])
			h, b := piece(8192, 16384)
			h.Len, b = n, make([]byte, n)
			comm.DeliverFrame(c, 1, h, b)
		}},
		{"head inside a chain", func(c *comm.Comm) {
			comm.DeliverFrame(c, 1, head, msg[:8192])
			comm.DeliverFrame(c, 1, head, msg[:8192])
		}},
		{"head of a huge message", func(c *comm.Comm) {
			h := head
			h.Aux = 1 << 40
			comm.DeliverFrame(c, 1, h, msg[:8192])
		}},
	}
	for _, f := range forged {
		t.Run(f.name, func(t *testing.T) {
			ws := commtest.Worlds(t, 2, commtest.Shm)
			r := ws[0].Irecv(make([]byte, 8), 0, 99) // from self: only the world's end completes it
			f.frames(ws[0])
			done := make(chan error, 1)
			go func() { _, err := r.Wait(); done <- err }()
			select {
			case err := <-done:
				var pe *transport.PeerError
				if !errors.Is(err, comm.ErrProtocol) || !errors.As(err, &pe) || pe.Rank != 1 {
					t.Fatalf("got %v; want a protocol error naming rank 1", err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("a broken chain did not end the world")
			}
		})
	}
}

// TestReadFirst: where the node agent measured the single copy faster
// (Options.ShmReadFirst), a message between the eager limit and the chain
// limit is read out of the sender's memory instead of sent as a chain;
// elsewhere it is a chain and nothing is read. Messages at and below the
// eager limit travel in one frame either way. Where single copy is off
// (PARLEY_DEBUG=no_cma, as where the kernel refuses it), they travel
// through the ring, intact, and nothing is read.
func TestReadFirst(t *testing.T) {
	cases := []struct {
		tr        commtest.Transport
		size      int
		noCMA     bool
		wantReads bool
	}{
		{commtest.Shm, 32 << 10, false, false},
		{commtest.ShmRead, 32 << 10, false, true},
		{commtest.ShmRead, shm.ChainLimit, false, true},
		{commtest.ShmRead, shm.EagerLimit, false, false},
		{commtest.ShmRead, 32 << 10, true, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%v/%d/nocma=%v", tc.tr, tc.size, tc.noCMA), func(t *testing.T) {
			if tc.noCMA {
				t.Setenv(bootstrap.EnvDebugOpts, "no_cma=1")
			}
			ws := commtest.Worlds(t, 2, tc.tr)
			reads := 0 // written by rank 1's engine only, read after Run
			comm.SetReadHook(ws[1], func() { reads++ })
			commtest.Run(t, ws, func(c *comm.Comm) error {
				if c.Rank() == 0 {
					return c.Send(pattern(tc.size, 3), 1, 0)
				}
				got := make([]byte, tc.size)
				if _, err := c.Recv(got, 0, 0); err != nil {
					return err
				}
				if !bytes.Equal(got, pattern(tc.size, 3)) {
					return errors.New("the message arrived with other contents")
				}
				return nil
			})
			if (reads > 0) != tc.wantReads {
				t.Errorf("%d single-copy reads at the receiver; want reads: %v", reads, tc.wantReads)
			}
		})
	}
}

// TestReadFirstFromEnv: a rank started by mpirun reads the node agent's
// choice (PARLEY_SHM_MEDIUM, or what -x sets there) into its options; a
// value that is neither choice fails, naming both.
func TestReadFirstFromEnv(t *testing.T) {
	for _, tc := range []struct {
		medium string
		want   bool
		fails  bool
	}{{"read", true, false}, {"chain", false, false}, {"", false, false}, {"Read", false, true}, {"fast", false, true}} {
		t.Setenv(bootstrap.EnvShmMedium, tc.medium)
		o, err := comm.TransportOptionsFromEnv()
		switch {
		case tc.fails && (err == nil || !strings.Contains(err.Error(), "want read") || !strings.Contains(err.Error(), "or chain")):
			t.Errorf("%s=%q: error %v, want one naming read and chain", bootstrap.EnvShmMedium, tc.medium, err)
		case !tc.fails && err != nil:
			t.Errorf("%s=%q: %v", bootstrap.EnvShmMedium, tc.medium, err)
		case o.ShmReadFirst != tc.want:
			t.Errorf("%s=%q: ShmReadFirst %v, want %v", bootstrap.EnvShmMedium, tc.medium, o.ShmReadFirst, tc.want)
		}
	}
}

// TestReadFirstRefused: a sender that reads first learns from the first
// message its peer could not read (the peer answers with a clear to send)
// that the kernel refuses there, and sends it chains from then on; every
// message arrives intact.
func TestReadFirstRefused(t *testing.T) {
	ws := commtest.Worlds(t, 2, commtest.ShmRead)
	comm.RefuseReads(ws[1])
	if got := comm.ChainLimit(ws[0], 1); got != 0 {
		t.Fatalf("rank 0 sends chains up to %d before anything was refused; want none (reads first)", got)
	}
	commtest.Run(t, ws, func(c *comm.Comm) error {
		for i, n := range []int{32 << 10, 40001} {
			if c.Rank() == 0 {
				if err := c.Send(pattern(n, i), 1, i); err != nil {
					return err
				}
				continue
			}
			got := make([]byte, n)
			if _, err := c.Recv(got, 0, i); err != nil {
				return err
			}
			if !bytes.Equal(got, pattern(n, i)) {
				return fmt.Errorf("message %d arrived with other contents", i)
			}
		}
		return nil
	})
	if got := comm.ChainLimit(ws[0], 1); got != shm.ChainLimit {
		t.Errorf("after its peer could not read, rank 0 sends chains up to %d; want %d", got, shm.ChainLimit)
	}
}
