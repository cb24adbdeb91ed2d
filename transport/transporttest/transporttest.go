package transporttest

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/parley-hpc/parley/transport"
)

// A Factory makes n transports of one job, world ranks 0 to n-1, in this
// process; peers reach each other with Reach(rank, Addr(), os.Getpid()).
// The factory closes them when the test ends (Close is safe twice).
type Factory func(t *testing.T, n int) []transport.Transport

// MaxSize is the largest message the suite moves: 64 MiB.
const MaxSize = 64 << 20

// Run runs the conformance suite against the transports f makes.
func Run(t *testing.T, f Factory) {
	t.Run("order", func(t *testing.T) { testOrder(t, f) })
	t.Run("sizes", func(t *testing.T) { testSizes(t, f) })
	t.Run("many links", func(t *testing.T) { testManyLinks(t, f) })
	t.Run("forged source", func(t *testing.T) { testForgedSource(t, f) })
	t.Run("remote read", func(t *testing.T) { testRemoteRead(t, f) })
	t.Run("receiver lost", func(t *testing.T) { testReceiverLost(t, f) })
	t.Run("sender lost", func(t *testing.T) { testSenderLost(t, f) })
	t.Run("close while polling", func(t *testing.T) { testCloseWhilePolling(t, f) })
}

// frame is what a rank's handler saw of one frame.
type frame struct {
	from int
	h    transport.Header
	n    int
	sum  uint32
}

// rank drives one transport: it is the Handler of its Poll.
type rank struct {
	id     int
	tr     transport.Transport
	frames []frame
}

func (r *rank) Deliver(from int, h *transport.Header, p []byte) {
	if h.Flags&transport.FlagDirect != 0 && p == nil {
		panic(fmt.Sprintf("rank %d: direct frame %d from %d delivered without its buffer", r.id, h.Cookie, from))
	}
	r.frames = append(r.frames, frame{from: from, h: *h, n: len(p), sum: crc32.ChecksumIEEE(p)})
}

func (r *rank) Destination(from int, h *transport.Header) []byte { return make([]byte, h.Len) }

// world makes n connected ranks.
func world(t *testing.T, f Factory, n int) []*rank {
	t.Helper()
	ts := f(t, n)
	if len(ts) != n {
		t.Fatalf("factory made %d transports, want %d", len(ts), n)
	}
	rs := make([]*rank, n)
	for i, tr := range ts {
		rs[i] = &rank{id: i, tr: tr}
	}
	for i, a := range ts {
		for j, b := range ts {
			if i != j {
				if err := a.Reach(j, b.Addr(), os.Getpid()); err != nil {
					t.Fatalf("rank %d reaches rank %d at %q: %v", i, j, b.Addr(), err)
				}
			}
		}
	}
	return rs
}

// pattern fills b with bytes that depend on seed and position, so that a
// lost, repeated or misplaced chunk changes the checksum.
func pattern(b []byte, seed uint64) {
	r := rand.New(rand.NewPCG(seed, uint64(len(b))))
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < len(b); k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
}

func payload(n int, seed uint64) []byte {
	b := make([]byte, n)
	pattern(b, seed)
	return b
}

// result collects how queued sends completed.
type result struct {
	mu   sync.Mutex
	done int
	errs []error
}

func (r *result) SendDone(op *transport.SendOp, err error) {
	r.mu.Lock()
	r.done++
	if err != nil {
		r.errs = append(r.errs, err)
	}
	r.mu.Unlock()
}

func (r *result) count() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done, errors.Join(r.errs...)
}

// send queues a frame from r to peer.
func send(r *rank, peer int, h transport.Header, p []byte, owner transport.Completer) *transport.SendOp {
	h.Len = uint32(len(p))
	if h.Source == 0 {
		h.Source = uint32(r.id)
	}
	if len(p) > r.tr.Caps().EagerLimit {
		h.Flags |= transport.FlagDirect
	}
	op := &transport.SendOp{Header: h, Payload: p, Owner: owner}
	r.tr.Send(peer, op)
	return op
}

// pump polls every rank until done holds; it fails the test on a link
// error or after d.
func pump(t *testing.T, rs []*rank, d time.Duration, done func() bool) {
	t.Helper()
	if err := pumpErr(rs, d, done); err != nil {
		t.Fatal(err)
	}
}

var errTimeout = errors.New("timed out")

func pumpErr(rs []*rank, d time.Duration, done func() bool) error {
	deadline := time.Now().Add(d)
	for !done() {
		for _, r := range rs {
			if r == nil {
				continue
			}
			if _, err := r.tr.Poll(r); err != nil {
				return fmt.Errorf("rank %d: %w", r.id, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %v", errTimeout, d)
		}
	}
	return nil
}

// testOrder: frames of mixed sizes, both ways at once, arrive in the order
// sent, whole, and every send completes.
func testOrder(t *testing.T, f Factory) {
	rs := world(t, f, 2)
	eager := min(rs[0].tr.Caps().EagerLimit, rs[1].tr.Caps().EagerLimit)
	sizes := []int{0, 1, 8, 100, eager}
	const count = 600
	var res result
	for i := range count {
		for s, r := range rs {
			n := sizes[i%len(sizes)]
			send(r, 1-s, transport.Header{Kind: 1, Cookie: uint64(i)}, payload(n, uint64(i)), &res)
		}
	}
	pump(t, rs, 60*time.Second, func() bool { return len(rs[0].frames) == count && len(rs[1].frames) == count })
	for _, r := range rs {
		for i, fr := range r.frames {
			n := sizes[i%len(sizes)]
			if fr.h.Cookie != uint64(i) || fr.n != n || fr.sum != crc32.ChecksumIEEE(payload(n, uint64(i))) || fr.from != 1-r.id {
				t.Fatalf("rank %d, frame %d: cookie %d, %d bytes from %d: out of order or damaged", r.id, i, fr.h.Cookie, fr.n, fr.from)
			}
		}
	}
	pump(t, rs, 10*time.Second, func() bool { n, _ := res.count(); return n == 2*count })
	if _, err := res.count(); err != nil {
		t.Fatal(err)
	}
}

// testSizes: every size from 0 B to 64 MiB arrives intact: in one frame up
// to the transport's largest, beyond that in frames of that size as comm
// sends them (or by remote read: testRemoteRead).
func testSizes(t *testing.T, f Factory) {
	rs := world(t, f, 2)
	caps := rs[0].tr.Caps()
	sizes := []int{0, 1, 7, 63, 64, 65, 4095, 4096, 4097, caps.EagerLimit - 1, caps.EagerLimit, caps.EagerLimit + 1,
		caps.MaxFrame - 1, caps.MaxFrame, 1 << 20, 4<<20 + 3, MaxSize}
	if testing.Short() {
		sizes = sizes[:len(sizes)-1]
	}
	for i, n := range sizes {
		msg := payload(n, uint64(1000+i))
		before := len(rs[1].frames)
		frames := 0
		var res result
		for off := 0; off < n || frames == 0; off += caps.MaxFrame {
			end := min(off+caps.MaxFrame, n)
			send(rs[0], 1, transport.Header{Kind: 2, Cookie: uint64(i), Aux: uint64(off)}, msg[off:end], &res)
			frames++
		}
		pump(t, rs, 60*time.Second, func() bool { return len(rs[1].frames) == before+frames })
		got := 0
		for k, fr := range rs[1].frames[before:] {
			off := k * caps.MaxFrame
			end := min(off+caps.MaxFrame, n)
			if fr.h.Aux != uint64(off) || fr.n != end-off || fr.sum != crc32.ChecksumIEEE(msg[off:end]) {
				t.Fatalf("%d bytes: frame %d (offset %d) arrived with %d bytes, offset %d, checksum %x: damaged", n, k, off, fr.n, fr.h.Aux, fr.sum)
			}
			got += fr.n
		}
		if got != n {
			t.Fatalf("%d bytes: %d arrived", n, got)
		}
		pump(t, rs, 10*time.Second, func() bool { d, _ := res.count(); return d == frames })
		if _, err := res.count(); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		rs[1].frames = rs[1].frames[:0]
	}
}

// testManyLinks: five ranks all send to all at once; each link keeps its
// order, and every frame is delivered with the rank of the link it came on.
func testManyLinks(t *testing.T, f Factory) {
	const n, count = 5, 200
	rs := world(t, f, n)
	eager := rs[0].tr.Caps().EagerLimit
	var res result
	for i := range count {
		for _, r := range rs {
			for p := range n {
				if p != r.id {
					size := (i*37 + r.id*11 + p) % (eager + 1)
					send(r, p, transport.Header{Kind: 3, Cookie: uint64(i)}, payload(size, uint64(r.id*1e6+p*1e3+i)), &res)
				}
			}
		}
	}
	pump(t, rs, 60*time.Second, func() bool {
		for _, r := range rs {
			if len(r.frames) < (n-1)*count {
				return false
			}
		}
		return true
	})
	for _, r := range rs {
		next := make([]int, n)
		for _, fr := range r.frames {
			want := next[fr.from]
			size := (want*37 + fr.from*11 + r.id) % (eager + 1)
			if int(fr.h.Source) != fr.from || fr.h.Cookie != uint64(want) || fr.sum != crc32.ChecksumIEEE(payload(size, uint64(fr.from*1e6+r.id*1e3+want))) {
				t.Fatalf("rank %d: frame from %d (source %d) cookie %d, want cookie %d: crossed links, out of order or damaged", r.id, fr.from, fr.h.Source, fr.h.Cookie, want)
			}
			next[fr.from]++
		}
	}
	pump(t, rs, 10*time.Second, func() bool { d, _ := res.count(); return d == n*(n-1)*count })
	if _, err := res.count(); err != nil {
		t.Fatal(err)
	}
}

// testForgedSource: a frame whose header names another sender is handed
// on with the rank of the link it came on; comm judges by that.
func testForgedSource(t *testing.T, f Factory) {
	rs := world(t, f, 3)
	send(rs[1], 0, transport.Header{Kind: 4, Source: 2}, []byte("not from 2"), nil)
	pump(t, rs, 10*time.Second, func() bool { return len(rs[0].frames) == 1 })
	if fr := rs[0].frames[0]; fr.from != 1 {
		t.Fatalf("a frame sent by rank 1 claiming source 2 was delivered as from rank %d", fr.from)
	}
}

// testRemoteRead: a transport that claims RemoteRead reads every size of
// an exposed buffer intact, while the owner keeps polling; a descriptor
// that is not one, or names a buffer never exposed, is refused.
func testRemoteRead(t *testing.T, f Factory) {
	rs := world(t, f, 2)
	caps := rs[0].tr.Caps()
	rr, ok := rs[1].tr.(transport.RemoteReader)
	if !caps.RemoteRead || !ok {
		if ok != caps.RemoteRead {
			t.Fatalf("Caps.RemoteRead is %v, but the transport is a RemoteReader: %v", caps.RemoteRead, ok)
		}
		t.Skipf("%s has no remote read: large messages travel in frames (sizes)", caps.Name)
	}
	owner := rs[0].tr.(transport.RemoteReader)
	// The link is made by a first frame, as comm's rendezvous request.
	send(rs[0], 1, transport.Header{Kind: 5}, nil, nil)
	pump(t, rs, 10*time.Second, func() bool { return len(rs[1].frames) == 1 })
	sizes := []int{1, 4096, 1<<20 + 5, MaxSize}
	if testing.Short() {
		sizes = sizes[:3]
	}
	for i, n := range sizes {
		src := payload(n, uint64(50+i))
		desc, err := owner.Expose(nil, src)
		if err != nil {
			t.Fatalf("expose %d bytes: %v", n, err)
		}
		dst := make([]byte, n)
		stop := make(chan struct{})
		polled := make(chan error, 1)
		go func() { // the owner keeps polling while the peer reads
			for {
				select {
				case <-stop:
					polled <- nil
					return
				default:
				}
				if _, err := rs[0].tr.Poll(rs[0]); err != nil {
					polled <- err
					return
				}
			}
		}()
		err = rr.Read(0, dst, desc)
		close(stop)
		if perr := <-polled; perr != nil {
			t.Fatalf("owner's poll during a read of %d bytes: %v", n, perr)
		}
		if err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		if crc32.ChecksumIEEE(dst) != crc32.ChecksumIEEE(src) {
			t.Fatalf("read %d bytes: damaged", n)
		}
		owner.Unexpose(desc)
	}
	if err := rr.Read(0, make([]byte, 8), []byte{1, 2, 3}); !errors.Is(err, transport.ErrProtocol) {
		t.Fatalf("read with a 3-byte descriptor: %v, want ErrProtocol", err)
	}
	if !caps.Registers {
		// process_vm_readv reads any address of the peer: the kernel's
		// same-user ptrace check is the bound, not an exposure.
		return
	}
	src := payload(4096, 9)
	desc, err := owner.Expose(nil, src)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Unexpose(desc)
	forged := append([]byte(nil), desc...)
	forged[len(forged)-1] ^= 0x5a // the key is last: one never given
	if err := rr.Read(0, make([]byte, 4096), forged); err == nil {
		t.Fatal("a read with a key the peer never exposed succeeded")
	}
}

// testReceiverLost: frames queued for a peer that closes mid-stream fail
// with an error naming that rank, from Poll or the op; never a hang.
func testReceiverLost(t *testing.T, f Factory) {
	rs := world(t, f, 2)
	caps := rs[0].tr.Caps()
	var res result
	big := payload(min(caps.MaxFrame, 8<<20), 77)
	queued := max(64, (32<<20)/len(big)) // more than any ring or window holds
	for i := range queued {
		send(rs[0], 1, transport.Header{Kind: 6, Cookie: uint64(i)}, big, &res)
	}
	// Some of it arrives, then the receiver goes.
	pump(t, rs, 20*time.Second, func() bool { return len(rs[1].frames) > 0 })
	rs[1].tr.Close()
	err := pumpErr(rs[:1], 30*time.Second, func() bool { d, _ := res.count(); return d == queued })
	if errors.Is(err, errTimeout) {
		d, _ := res.count()
		t.Fatalf("the receiver closed: %d of %d queued frames still pending after 30 s: %v", queued-d, queued, err)
	}
	if err == nil {
		_, err = res.count()
	}
	checkPeerLost(t, err, 1)
}

// testSenderLost: a sender that closes in the middle of a frame makes the
// receiver's Poll fail naming it, or, where frames arrive whole (shared
// memory), leaves only whole frames behind.
func testSenderLost(t *testing.T, f Factory) {
	rs := world(t, f, 2)
	caps := rs[0].tr.Caps()
	big := payload(min(caps.MaxFrame, 32<<20), 78)
	for i := range 8 {
		send(rs[0], 1, transport.Header{Kind: 7, Cookie: uint64(i)}, big, nil)
	}
	pumpErr(rs, 20*time.Second, func() bool { return len(rs[1].frames) > 0 })
	rs[0].tr.Close()
	err := pumpErr(rs[1:], 3*time.Second, func() bool { return false })
	for _, fr := range rs[1].frames {
		if fr.n != len(big) || fr.sum != crc32.ChecksumIEEE(big) {
			t.Fatalf("frame %d arrived damaged (%d bytes) after its sender closed", fr.h.Cookie, fr.n)
		}
	}
	if errors.Is(err, errTimeout) {
		if caps.WholeFrames {
			return
		}
		t.Fatalf("the sender closed mid-stream; the receiver's Poll reported nothing in 3 s")
	}
	checkPeerLost(t, err, 0)
}

func checkPeerLost(t *testing.T, err error, peer int) {
	t.Helper()
	var pe *transport.PeerError
	if !errors.As(err, &pe) || pe.Rank != peer || !errors.Is(err, transport.ErrPeerLost) {
		t.Fatalf("got %v, want a PeerError naming rank %d", err, peer)
	}
}

// testCloseWhilePolling: a transport closed while its peers poll, and
// while its own MayPoll runs concurrently (Peeker's contract), breaks
// nothing; after Close, Send fails with ErrClosed and Poll returns.
func testCloseWhilePolling(t *testing.T, f Factory) {
	rs := world(t, f, 3)
	var res result
	for _, r := range rs {
		for p := range rs {
			if p != r.id {
				send(r, p, transport.Header{Kind: 8}, []byte("hello"), &res)
			}
		}
	}
	pump(t, rs, 10*time.Second, func() bool { d, _ := res.count(); return d == 6 })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	if pk, ok := rs[0].tr.(transport.Peeker); ok {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					pk.MayPoll()
				}
			}
		}()
	}
	others := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := pumpErr(rs[1:], time.Second, func() bool {
			select {
			case <-stop:
				return true
			default:
				return false
			}
		})
		var pe *transport.PeerError
		if err != nil && !(errors.As(err, &pe) && pe.Rank == 0) {
			others <- err
		}
		close(others)
	}()
	time.Sleep(20 * time.Millisecond)
	if err := rs[0].tr.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err := <-others; err != nil {
		t.Fatalf("peers polling while rank 0 closed: %v", err)
	}
	op := &transport.SendOp{Header: transport.Header{Kind: 8}, Payload: []byte("late")}
	rs[0].tr.Send(1, op)
	if _, err := rs[0].tr.Poll(rs[0]); err != nil && !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("poll after close: %v", err)
	}
	if !op.Failed() {
		t.Fatal("a send after Close did not fail")
	}
	if err := rs[0].tr.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
