package verbs

import (
	"errors"
	"testing"
)

// pair is two connected queue pairs on two adapters of one fabric.
type pair struct {
	da, db *FakeDevice
	ca, cb CQ
	qa, qb QP
}

func newPair(t *testing.T, depth int) *pair {
	t.Helper()
	f := NewFabric()
	p := &pair{da: f.Open("a"), db: f.Open("b")}
	var err error
	p.ca, _ = p.da.NewCQ(depth, func() {})
	p.cb, _ = p.db.NewCQ(depth, func() {})
	if p.qa, err = p.da.NewQP(p.ca, QPCaps{SendDepth: 8, RecvDepth: 8}); err != nil {
		t.Fatal(err)
	}
	if p.qb, err = p.db.NewQP(p.cb, QPCaps{SendDepth: 8, RecvDepth: 8}); err != nil {
		t.Fatal(err)
	}
	if err := p.qa.Connect(p.qb.Local()); err != nil {
		t.Fatal(err)
	}
	if err := p.qb.Connect(p.qa.Local()); err != nil {
		t.Fatal(err)
	}
	return p
}

func reg(t *testing.T, d *FakeDevice, n int, a Access) ([]byte, *MR) {
	t.Helper()
	b := make([]byte, n)
	mr, err := d.Register(b, a)
	if err != nil {
		t.Fatal(err)
	}
	return b, mr
}

func poll1(t *testing.T, cq CQ) WC {
	t.Helper()
	wcs := make([]WC, 1)
	n, err := cq.Poll(wcs)
	if err != nil || n != 1 {
		t.Fatalf("poll: %d completions, %v", n, err)
	}
	return wcs[0]
}

// TestFakeEnforces: the fake adapter fails what an adapter fails.
func TestFakeEnforces(t *testing.T) {
	t.Run("send and receive", func(t *testing.T) {
		p := newPair(t, 8)
		src, smr := reg(t, p.da, 64, 0)
		copy(src, "hello")
		dst, rmr := reg(t, p.db, 64, LocalWrite)
		p.qb.PostRecv(RecvWR{ID: 7, Addr: rmr.Addr, Len: 64, LKey: rmr.LKey})
		p.qa.PostSend(SendWR{ID: 1, Op: OpSend, Addr: smr.Addr, Len: 5, LKey: smr.LKey})
		if wc := poll1(t, p.cb); wc.ID != 7 || wc.Status != Success || wc.Len != 5 || string(dst[:5]) != "hello" {
			t.Fatalf("receive: %+v %q", wc, dst[:5])
		}
		if wc := poll1(t, p.ca); wc.ID != 1 || wc.Status != Success {
			t.Fatalf("send: %+v", wc)
		}
	})
	t.Run("receiver not ready", func(t *testing.T) {
		p := newPair(t, 8)
		_, smr := reg(t, p.da, 64, 0)
		p.qa.PostSend(SendWR{ID: 1, Op: OpSend, Addr: smr.Addr, Len: 5, LKey: smr.LKey})
		if wc := poll1(t, p.ca); wc.Status != RNRRetryExceeded {
			t.Fatalf("send with no receive posted: %v", wc.Status)
		}
		// The queue pair is in the error state: what follows is flushed.
		p.qa.PostSend(SendWR{ID: 2, Op: OpSend, Addr: smr.Addr, Len: 5, LKey: smr.LKey})
		if wc := poll1(t, p.ca); wc.ID != 2 || wc.Status != WRFlushErr {
			t.Fatalf("send after an error: %+v", wc)
		}
	})
	t.Run("region bounds and keys", func(t *testing.T) {
		p := newPair(t, 8)
		_, smr := reg(t, p.da, 64, 0)
		p.qa.PostSend(SendWR{ID: 1, Op: OpSend, Addr: smr.Addr + 60, Len: 8, LKey: smr.LKey})
		if wc := poll1(t, p.ca); wc.Status != LocalProtErr {
			t.Fatalf("send past the region's end: %v", wc.Status)
		}
	})
	t.Run("receive too small", func(t *testing.T) {
		p := newPair(t, 8)
		_, smr := reg(t, p.da, 64, 0)
		_, rmr := reg(t, p.db, 64, LocalWrite)
		p.qb.PostRecv(RecvWR{ID: 7, Addr: rmr.Addr, Len: 4, LKey: rmr.LKey})
		p.qb.PostRecv(RecvWR{ID: 8, Addr: rmr.Addr, Len: 4, LKey: rmr.LKey})
		p.qa.PostSend(SendWR{ID: 1, Op: OpSend, Addr: smr.Addr, Len: 8, LKey: smr.LKey})
		if wc := poll1(t, p.cb); wc.ID != 7 || wc.Status != LocalLenErr {
			t.Fatalf("receive of 8 bytes into 4: %+v", wc)
		}
		if wc := poll1(t, p.cb); wc.ID != 8 || wc.Status != WRFlushErr {
			t.Fatalf("the other receive: %+v, want it flushed", wc)
		}
		if wc := poll1(t, p.ca); wc.Status != RemoteInvReqErr {
			t.Fatalf("sender: %v", wc.Status)
		}
	})
	for _, c := range []struct {
		name   string
		access Access
		off    uint64
		rkey   func(mr *MR) uint32
	}{
		{"read with a key never given", RemoteRead, 0, func(mr *MR) uint32 { return mr.RKey + 100 }},
		{"read with the local key", RemoteRead, 0, func(mr *MR) uint32 { return mr.LKey }},
		{"read without remote access", LocalWrite, 0, func(mr *MR) uint32 { return mr.RKey }},
		{"read past the region", RemoteRead, 32, func(mr *MR) uint32 { return mr.RKey }},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t, 8)
			_, rmr := reg(t, p.db, 64, c.access)
			_, lmr := reg(t, p.da, 64, LocalWrite)
			p.qa.PostSend(SendWR{ID: 3, Op: OpRead, Addr: lmr.Addr, Len: 64, LKey: lmr.LKey, RemoteAddr: rmr.Addr + c.off, RKey: c.rkey(rmr)})
			if wc := poll1(t, p.ca); wc.Status != RemoteAccessErr {
				t.Fatalf("%v, want a remote access error", wc.Status)
			}
		})
	}
	t.Run("completion queue overflow", func(t *testing.T) {
		p := newPair(t, 2)
		_, smr := reg(t, p.da, 64, 0)
		_, rmr := reg(t, p.db, 64, LocalWrite)
		for i := range 3 {
			p.qb.PostRecv(RecvWR{ID: uint64(i), Addr: rmr.Addr, Len: 64, LKey: rmr.LKey})
			p.qa.PostSend(SendWR{ID: uint64(i), Op: OpSend, Addr: smr.Addr, Len: 8, LKey: smr.LKey})
		}
		if _, err := p.cb.Poll(make([]WC, 4)); !errors.Is(err, ErrCQOverflow) {
			t.Fatalf("three completions in a queue of two: %v", err)
		}
	})
	t.Run("peer gone", func(t *testing.T) {
		p := newPair(t, 8)
		_, smr := reg(t, p.da, 64, 0)
		p.db.Close()
		p.qa.PostSend(SendWR{ID: 1, Op: OpSend, Addr: smr.Addr, Len: 8, LKey: smr.LKey})
		if wc := poll1(t, p.ca); wc.Status != RetryExceeded {
			t.Fatalf("send to a closed adapter: %v", wc.Status)
		}
	})
	t.Run("not connected", func(t *testing.T) {
		f := NewFabric()
		d := f.Open("a")
		cq, _ := d.NewCQ(4, func() {})
		qp, _ := d.NewQP(cq, QPCaps{SendDepth: 1, RecvDepth: 1})
		if err := qp.PostSend(SendWR{ID: 1, Op: OpSend}); !errors.Is(err, ErrQPState) {
			t.Fatalf("send on a queue pair never connected: %v", err)
		}
	})
}
