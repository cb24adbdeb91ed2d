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

// TestRevokedRendezvous: a revocation that reaches a rank while one of its
// rendezvous is under way fails the operation, and the peer's answers that
// still come (a FIN after a single-copy read, a CTS, data frames) are
// taken quietly: they used to name a cookie the rank had dropped, read as
// a protocol violation, and end the world.
func TestRevokedRendezvous(t *testing.T) {
	const n = 1 << 20
	revoke := func(c *comm.Comm, from int) {
		comm.DeliverFrame(c, from, transport.Header{Kind: comm.KindRevoke, Source: uint32(from),
			Context: comm.CollContext(c), Tag: 1}, []byte("a test revokes it"))
	}
	wait := func(t *testing.T, r *comm.Request, want error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { _, err := r.Wait(); done <- err }()
		select {
		case err := <-done:
			if want == nil && err != nil || want != nil && !errors.Is(err, want) {
				t.Fatalf("got %v; want %v", err, want)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the collective never completed")
		}
	}
	// stillWorks: rank to receives a message from rank from, which the
	// link delivers after the answers the test is about.
	stillWorks := func(t *testing.T, ws []*comm.Comm, from, to int) {
		t.Helper()
		if err := ws[from].Send([]byte("after"), to, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := ws[to].Recv(make([]byte, 8), from, 7); err != nil {
			t.Fatalf("rank %d after the answers to its revoked transfer: %v", to, err)
		}
	}
	t.Run("fin", func(t *testing.T) {
		ws := commtest.Worlds(t, 2, commtest.Shm)
		r0 := collectives.Ibcast(ws[0], make([]byte, n), 0)
		r0.Test() // the announcement goes out
		revoke(ws[0], 1)
		wait(t, r0, comm.ErrRevoked)
		// Rank 1 was told nothing: it reads the message in one copy and
		// answers FIN to the send rank 0 dropped.
		wait(t, collectives.Ibcast(ws[1], make([]byte, n), 0), nil)
		stillWorks(t, ws, 1, 0)
	})
	t.Run("cts and data", func(t *testing.T) {
		ws := commtest.Worlds(t, 2, commtest.TCP)
		r0 := collectives.Ibcast(ws[0], make([]byte, n), 0)
		r0.Test()
		revoke(ws[0], 1)
		wait(t, r0, comm.ErrRevoked)
		// Rank 1 matches the announcement and asks for the data (CTS);
		// then the revocation reaches it too.
		r1 := collectives.Ibcast(ws[1], make([]byte, n), 0)
		deadline := time.Now().Add(20 * time.Second)
		for pending, _ := comm.Cookies(ws[1]); pending == 0; pending, _ = comm.Cookies(ws[1]) {
			if time.Now().After(deadline) {
				t.Fatal("rank 1 never asked for the data")
			}
			r1.Test()
		}
		revoke(ws[1], 0)
		wait(t, r1, comm.ErrRevoked)
		stillWorks(t, ws, 1, 0) // rank 0 took the CTS
		// Data frames for rank 1's dropped receive are thrown away.
		_, dropped := comm.Cookies(ws[1])
		if len(dropped) != 1 {
			t.Fatalf("rank 1 keeps %d dropped transfers, want 1", len(dropped))
		}
		for off := 0; off < n; off += 256 << 10 {
			comm.DeliverFrame(ws[1], 0, transport.Header{Kind: comm.KindData, Flags: transport.FlagDirect, Source: 0,
				Cookie: dropped[0], Aux: uint64(off), Len: 256 << 10}, make([]byte, 256<<10))
		}
		if _, dropped := comm.Cookies(ws[1]); len(dropped) != 0 {
			t.Fatalf("rank 1 keeps %d dropped transfers after all their data, want 0", len(dropped))
		}
		stillWorks(t, ws, 0, 1)
	})
}
