package tcp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-hpc/parley/internal/wire"
	"github.com/parley-hpc/parley/transport"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

// endpoint is a transport with a handler that collects what arrives.
type endpoint struct {
	t      *Transport
	mu     sync.Mutex
	frames []frame
	direct map[uint64][]byte
}

type frame struct {
	h       transport.Header
	payload []byte
}

func (e *endpoint) Deliver(from int, h *transport.Header, p []byte) {
	e.frames = append(e.frames, frame{*h, append([]byte(nil), p...)})
}

func (e *endpoint) Destination(from int, h *transport.Header) []byte {
	b := make([]byte, h.Len)
	return b
}

var bellWords [64]atomic.Uint32
var bellNext atomic.Int32

func newEndpoint(t *testing.T, rank int) *endpoint { return newEndpointZ(t, rank, false) }

func newEndpointZ(t *testing.T, rank int, compress bool) *endpoint {
	t.Helper()
	w := &bellWords[bellNext.Add(1)%64]
	tr, err := Listen(Config{Rank: rank, JobID: "job", Secret: secret, Listen: "127.0.0.1:0", Advertise: "127.0.0.1",
		Bell: transport.NewBell(w), DialTimeout: 2 * time.Second, Compress: compress})
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{t: tr}
	t.Cleanup(func() { tr.Close(); tr.Close() })
	return e
}

// poll polls es until cond holds or the deadline passes; it returns the
// first transport error seen.
func poll(t *testing.T, d time.Duration, cond func() bool, es ...*endpoint) error {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		for _, e := range es {
			if _, err := e.t.Poll(e); err != nil {
				return err
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
	}
	return nil
}

func op(kind uint8, seq uint64, p []byte, direct bool) *transport.SendOp {
	o := &transport.SendOp{Header: transport.Header{Kind: kind, Cookie: seq, Len: uint32(len(p))}, Payload: p}
	if direct {
		o.Header.Flags = transport.FlagDirect
	}
	return o
}

// TestFramesInOrder: frames of every size, eager and direct, both ways at
// once (both ranks dial each other simultaneously), arrive in order and
// intact, over one connection per pair.
func TestFramesInOrder(t *testing.T) {
	a, b := newEndpoint(t, 0), newEndpoint(t, 1)
	sizes := []int{0, 1, 39, 40, 41, 4096, EagerLimit - 1, EagerLimit, 100000, 3 << 20}
	var ops []*transport.SendOp
	for i, n := range sizes {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		oa, ob := op(1, uint64(i), p, n > EagerLimit), op(1, uint64(i), p, n > EagerLimit)
		a.t.Reach(1, b.t.Addr(), 0)
		a.t.Send(1, oa)
		b.t.Reach(0, a.t.Addr(), 0)
		b.t.Send(0, ob)
		ops = append(ops, oa, ob)
	}
	if err := poll(t, 10*time.Second, func() bool { return len(a.frames) == len(sizes) && len(b.frames) == len(sizes) }, a, b); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*endpoint{a, b} {
		for i, f := range e.frames {
			if f.h.Cookie != uint64(i) || len(f.payload) != sizes[i] || sizes[i] > 0 && f.payload[0] != byte(i+1) {
				t.Fatalf("frame %d: cookie %d, %d bytes", i, f.h.Cookie, len(f.payload))
			}
		}
	}
	for _, o := range ops {
		if !o.Done() || o.Failed() {
			t.Fatal("a send did not complete")
		}
	}
	if n := len(a.t.active) + len(b.t.active); n != 2 {
		t.Fatalf("%d connections for one pair", n)
	}
}

// TestBatch: frames sent between BeginBatch and EndBatch stay queued until
// EndBatch, then leave in a few writev calls instead of one each, and
// arrive whole and in order; a send outside a batch leaves at once.
func TestBatch(t *testing.T) {
	a, b := newEndpoint(t, 0), newEndpoint(t, 1)
	a.t.Reach(1, b.t.Addr(), 0)
	first := op(1, 0, []byte("hello"), false)
	a.t.Send(1, first)
	if err := poll(t, 5*time.Second, func() bool { return len(b.frames) == 1 }, a, b); err != nil {
		t.Fatal(err)
	}
	c := a.t.peers[1].c
	if !first.Done() || c.writes == 0 {
		t.Fatalf("a send outside a batch did not leave at once (done %v, %d writes)", first.Done(), c.writes)
	}
	const n = 200
	before := c.writes
	a.t.BeginBatch()
	var ops []*transport.SendOp
	for i := 1; i <= n; i++ {
		o := op(1, uint64(i), bytes.Repeat([]byte{byte(i)}, i%50), false)
		a.t.Send(1, o)
		ops = append(ops, o)
	}
	big := op(1, n+1, bytes.Repeat([]byte{7}, 50000), false)
	a.t.Send(1, big)
	ops = append(ops, big)
	for i, o := range ops {
		if o.Done() {
			t.Fatalf("send %d completed inside the batch", i+1)
		}
	}
	a.t.EndBatch()
	// 2 vectors a frame (header, payload), maxIov-1 a call: 201 frames in 7.
	if w := c.writes - before; w > (2*len(ops))/(maxIov-1)+2 {
		t.Errorf("%d frames took %d writev calls", len(ops), w)
	}
	if err := poll(t, 5*time.Second, func() bool { return len(b.frames) == n+2 }, a, b); err != nil {
		t.Fatal(err)
	}
	for j, f := range b.frames[1:] {
		seq, want := j+1, (j+1)%50
		if seq == n+1 {
			want = 50000
		}
		if f.h.Cookie != uint64(seq) || len(f.payload) != want {
			t.Fatalf("frame %d: cookie %d, %d bytes, want %d", seq, f.h.Cookie, len(f.payload), want)
		}
	}
	for i, o := range ops {
		if !o.Done() || o.Failed() {
			t.Fatalf("send %d did not complete after the batch", i+1)
		}
	}
}

// TestStrangers: connections that do not prove the job secret (garbage, a
// wrong secret, silence, another job) are refused, and the job goes on.
func TestStrangers(t *testing.T) {
	a, b := newEndpoint(t, 0), newEndpoint(t, 1)
	knock := func(f func(c net.Conn)) {
		c, err := net.Dial("tcp", b.t.Addr())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		f(c)
		c.Close()
	}
	knock(func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\n\r\n")); io.Copy(io.Discard, c) })
	knock(func(c net.Conn) {
		err := wire.Dial(c, []byte("wrong secret wrong secret wrong!"), roleTCP, wire.AppendString(wire.AppendVarint(nil, 0), "job"))
		if err == nil {
			t.Error("a wrong secret was accepted")
		}
	})
	knock(func(c net.Conn) {
		// The right secret, another job.
		if err := wire.Dial(c, secret, roleTCP, wire.AppendString(wire.AppendVarint(nil, 0), "other-job")); err == nil {
			var v [1]byte
			if n, _ := c.Read(v[:]); n == 1 {
				t.Error("a rank of another job got a verdict")
			}
		}
	})
	knock(func(c net.Conn) {}) // connects and leaves
	// The pair still works.
	a.t.Reach(1, b.t.Addr(), 0)
	a.t.Send(1, op(1, 7, []byte("still here"), false))
	if err := poll(t, 5*time.Second, func() bool { return len(b.frames) == 1 }, a, b); err != nil {
		t.Fatal(err)
	}
}

// TestConnectFailure: a rank nobody listens for fails the send with an
// error that names the rank and the address.
func TestConnectFailure(t *testing.T) {
	a := newEndpoint(t, 0)
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close() // nobody listens here now
	a.t.cfg.DialTimeout = 300 * time.Millisecond
	o := op(1, 0, []byte("x"), false)
	a.t.Reach(3, addr, 0)
	a.t.Send(3, o)
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for !o.Done() && time.Now().Before(deadline) {
		_, err = a.t.Poll(a)
	}
	var pe *transport.PeerError
	if !o.Failed() || !errors.As(err, &pe) || pe.Rank != 3 || pe.Addr != addr || !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("op done %v failed %v, error %v", o.Done(), o.Failed(), err)
	}
	if !bytes.Contains([]byte(err.Error()), []byte(addr)) {
		t.Fatalf("error %q does not name %s", err, addr)
	}
}

// proxy forwards connections to target; each side can be delayed or cut.
type proxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	mu     sync.Mutex
	conns  []net.Conn
	bytes  atomic.Int64 // bytes forwarded
}

func newProxy(t *testing.T, target string, delay time.Duration) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, delay: delay}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.delay > 0 {
				time.Sleep(p.delay)
			}
			p.bytes.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite() // pass a half-close on
			}
			return
		}
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *proxy) halfClose() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.(*net.TCPConn).CloseWrite()
	}
}

// TestThroughProxy: a slow link still delivers everything in order; a
// link cut or half-closed mid-stream fails the waiting side with a
// PeerError naming the rank.
func TestThroughProxy(t *testing.T) {
	t.Run("delayed", func(t *testing.T) {
		a, b := newEndpoint(t, 0), newEndpoint(t, 1)
		p := newProxy(t, b.t.Addr(), 2*time.Millisecond)
		for i := 0; i < 20; i++ {
			a.t.Reach(1, p.ln.Addr().String(), 0)
			a.t.Send(1, op(1, uint64(i), make([]byte, 50000), i%2 == 0))
		}
		if err := poll(t, 20*time.Second, func() bool { return len(b.frames) == 20 }, a, b); err != nil {
			t.Fatal(err)
		}
		for i, f := range b.frames {
			if f.h.Cookie != uint64(i) {
				t.Fatalf("frame %d out of order", i)
			}
		}
	})
	for _, mode := range []string{"cut", "half-close"} {
		t.Run(mode, func(t *testing.T) {
			a, b := newEndpoint(t, 0), newEndpoint(t, 1)
			p := newProxy(t, b.t.Addr(), 0)
			a.t.Reach(1, p.ln.Addr().String(), 0)
			a.t.Send(1, op(1, 0, []byte("hello"), false))
			if err := poll(t, 5*time.Second, func() bool { return len(b.frames) == 1 }, a, b); err != nil {
				t.Fatal(err)
			}
			if mode == "cut" {
				p.cut()
			} else {
				p.halfClose()
			}
			var errB error
			deadline := time.Now().Add(5 * time.Second)
			for errB == nil && time.Now().Before(deadline) {
				_, errB = b.t.Poll(b)
			}
			var pe *transport.PeerError
			if !errors.As(errB, &pe) || pe.Rank != 0 || !errors.Is(errB, transport.ErrPeerLost) {
				t.Fatalf("after a %s, b saw %v", mode, errB)
			}
			// Later sends to the lost peer fail at once.
			o := op(1, 1, []byte("x"), false)
			b.t.Reach(0, a.t.Addr(), 0)
			b.t.Send(0, o)
			if !o.Failed() {
				t.Fatal("a send to a lost peer did not fail")
			}
		})
	}
}

// FuzzFraming writes arbitrary bytes into a connection, in two pieces:
// the reader hands on frames or fails the connection, never panics.
func FuzzFraming(f *testing.F) {
	good := wire.AppendHeader(nil, &transport.Header{Kind: 1, Len: 3})
	good = append(good, "abc"...)
	direct := wire.AppendHeader(nil, &transport.Header{Kind: 2, Flags: transport.FlagDirect, Len: 5})
	direct = append(direct, "hello"...)
	f.Add(append(good, direct...), 10)
	f.Add([]byte{0xff, 0xff}, 1)
	f.Add(wire.AppendHeader(nil, &transport.Header{Len: 1 << 31}), 20)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		w, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c, err := newConn(1, r.(*net.TCPConn))
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		defer w.Close()
		e := &endpoint{}
		split = max(0, min(split, len(data)))
		w.Write(data[:split])
		c.read(e)
		w.Write(data[split:])
		w.Close()
		for i := 0; i < 100; i++ {
			if _, err := c.read(e); err != nil {
				return
			}
		}
	})
}

func TestAddr(t *testing.T) {
	a := newEndpoint(t, 0)
	if host, _, err := net.SplitHostPort(a.t.Addr()); err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr() = %q", a.t.Addr())
	}
}

// TestCompression: with both ends agreeing, a compressible large payload
// crosses the link in far fewer bytes and arrives intact; an
// incompressible one goes as it is; with one end unwilling, nothing is
// compressed.
func TestCompression(t *testing.T) {
	compressible := bytes.Repeat([]byte("parley compresses this line well. "), 60000)
	incompressible := make([]byte, 2<<20)
	x := uint64(88172645463325252)
	for i := range incompressible {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		incompressible[i] = byte(x)
	}
	for _, tc := range []struct {
		name      string
		a, b      bool
		payload   []byte
		wantSmall bool
	}{
		{"compressible", true, true, compressible, true},
		{"incompressible", true, true, incompressible, false},
		{"one end unwilling", true, false, compressible, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newEndpointZ(t, 0, tc.a), newEndpointZ(t, 1, tc.b)
			p := newProxy(t, b.t.Addr(), 0)
			a.t.Reach(1, p.ln.Addr().String(), 0)
			a.t.Send(1, op(4, 9, tc.payload, true))
			if err := poll(t, 10*time.Second, func() bool { return len(b.frames) == 1 }, a, b); err != nil {
				t.Fatal(err)
			}
			f := b.frames[0]
			if !bytes.Equal(f.payload, tc.payload) || f.h.Cookie != 9 || f.h.Flags&flagCompressed != 0 {
				t.Fatalf("payload of %d bytes arrived as %d bytes, flags %#x", len(tc.payload), len(f.payload), f.h.Flags)
			}
			wire := p.bytes.Load()
			small := wire < int64(len(tc.payload))/4
			if small != tc.wantSmall {
				t.Fatalf("%d payload bytes took %d bytes on the link", len(tc.payload), wire)
			}
		})
	}
}

// TestReadWhenReady: with enough connections that Poll asks epoll which
// sockets are readable (readyPollMin), frames from every peer still
// arrive, large ones in many reads included, and so do frames on a
// connection epoll does not watch (its registration failed).
func TestReadWhenReady(t *testing.T) {
	const peers = readyPollMin + 1
	root := newEndpoint(t, 0)
	es := []*endpoint{root}
	sizes := []int{0, 17, EagerLimit, 3 << 20}
	for r := 1; r <= peers; r++ {
		e := newEndpoint(t, r)
		e.t.Reach(0, root.t.Addr(), 0)
		es = append(es, e)
	}
	sendAll := func(round int) {
		for _, e := range es[1:] {
			for i, n := range sizes {
				p := bytes.Repeat([]byte{byte(e.t.cfg.Rank)}, n)
				e.t.Send(0, op(1, uint64(round*100+i), p, n > EagerLimit))
			}
		}
	}
	check := func(round int) {
		t.Helper()
		want := (round + 1) * peers * len(sizes)
		if err := poll(t, 20*time.Second, func() bool { return len(root.frames) == want }, es...); err != nil {
			t.Fatal(err)
		}
		for _, f := range root.frames[want-peers*len(sizes):] {
			i := int(f.h.Cookie) - round*100
			if i < 0 || i >= len(sizes) || len(f.payload) != sizes[i] || sizes[i] > 0 && (f.payload[0] < 1 || f.payload[0] > peers) {
				t.Fatalf("round %d: frame with cookie %d: %d bytes", round, f.h.Cookie, len(f.payload))
			}
		}
	}
	sendAll(0)
	check(0)
	if len(root.t.active) < readyPollMin {
		t.Fatalf("%d connections: Poll would not ask epoll", len(root.t.active))
	}
	c := root.t.active[1]
	root.t.watch.remove(c.fd)
	c.watched = false
	sendAll(1)
	check(1)
}
