package shm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/parley-hpc/parley/transport"
)

func TestLayout(t *testing.T) {
	var h header
	if off := unsafe.Offsetof(h.bell); off != offBell {
		t.Fatalf("bell at %d, layout says %d", off, offBell)
	}
	if sz := unsafe.Sizeof(h); sz > bitmapOff {
		t.Fatalf("header of %d bytes overlaps the bitmap at %d", sz, bitmapOff)
	}
	if unsafe.Offsetof(h.pid) != 24 || unsafe.Offsetof(h.start) != 32 || unsafe.Offsetof(h.closed) != 20 {
		t.Fatalf("pid/start at %d/%d, Sweep reads them at 24/32", unsafe.Offsetof(h.pid), unsafe.Offsetof(h.start))
	}
	if frameDataOff != 48 || shortDataOff != 32 || slotSize != 64 {
		t.Fatal("frame layout changed; update doc.go")
	}
}

// pair makes a consumer transport over a heap segment with nrings rings,
// and a producer transport that sends into ring lr of it.
func pair(t *testing.T, nrings, nslots, lr int) (cons, prod *Transport) {
	t.Helper()
	cons, prod, err := heapPair(nrings, nslots, lr)
	if err != nil {
		t.Fatal(err)
	}
	return cons, prod
}

// checker receives frames carrying (sequence, crc) in Tag and Check, and
// verifies them; a long frame also carries sequence+1 and ^crc in Cookie
// and Aux, a short one zeros.
type checker struct {
	next    map[uint32]uint64 // per source: the next sequence expected
	frames  int
	err     error
	scratch []byte
}

func (c *checker) Destination(from int, h *transport.Header) []byte {
	c.scratch = make([]byte, h.Len)
	return c.scratch
}

func (c *checker) Deliver(from int, h *transport.Header, p []byte) {
	if c.err != nil {
		return
	}
	if len(p) != int(h.Len) {
		c.err = fmt.Errorf("payload of %d bytes for a header saying %d", len(p), h.Len)
		return
	}
	seq := uint64(uint32(h.Tag))
	if seq != c.next[h.Source] {
		c.err = fmt.Errorf("source %d: frame %d, expected %d", h.Source, seq, c.next[h.Source])
		return
	}
	c.next[h.Source]++
	if h.Check != crc32.ChecksumIEEE(p) {
		c.err = fmt.Errorf("source %d frame %d: checksum mismatch", h.Source, seq)
	}
	if long := h.Cookie != 0 || h.Aux != 0; long && (h.Cookie != seq+1 || h.Aux != ^uint64(h.Check)) {
		c.err = fmt.Errorf("source %d frame %d: cookie %d and aux %#x, want %d and %#x", h.Source, seq, h.Cookie, h.Aux, seq+1, ^uint64(h.Check))
	}
	if h.Flags&^transport.FlagDirect != 0 {
		c.err = fmt.Errorf("source %d frame %d: flags %#x reach the handler", h.Source, seq, h.Flags)
	}
	c.frames++
}

func payload(rng *rand.Rand, max int) []byte {
	sizes := []int{0, 1, 15, 16, 17, 79, 80, 81, 1000, max - 1, max}
	n := min(sizes[rng.IntN(len(sizes))], max)
	if rng.IntN(3) == 0 {
		n = rng.IntN(max + 1)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func frame(src uint32, seq uint64, p []byte, direct bool) *transport.SendOp {
	op := shortFrame(src, seq, p, direct)
	op.Header.Cookie, op.Header.Aux = seq+1, ^uint64(op.Header.Check)
	return op
}

// shortFrame is frame without Cookie and Aux, which the ring writes short.
func shortFrame(src uint32, seq uint64, p []byte, direct bool) *transport.SendOp {
	op := &transport.SendOp{Header: transport.Header{Source: src, Tag: int32(seq), Check: crc32.ChecksumIEEE(p), Len: uint32(len(p))}, Payload: p}
	if direct {
		op.Header.Flags = transport.FlagDirect
	}
	return op
}

// TestRingConcurrent runs a producer and a consumer goroutine over heap
// memory (run it with -race): many frames of assorted sizes, laps around a
// small ring, every frame checked for order and checksum.
func TestRingConcurrent(t *testing.T) {
	const frames = 20000
	cons, prod := pair(t, 2, 64, 1)
	rng := rand.New(rand.NewPCG(1, 2))
	ops := make([]*transport.SendOp, frames)
	head := uint64(0) // where the producer will put each frame: the layout does not depend on timing
	for i := range ops {
		short := i%3 == 0
		b := payload(rng, prod.maxLen)
		dataOff := frameDataOff
		if short {
			dataOff = shortDataOff
		}
		head = forgeNextLap(b, dataOff, head, 64)
		if short {
			ops[i] = shortFrame(7, uint64(i), b, i%5 == 0)
		} else {
			ops[i] = frame(7, uint64(i), b, i%5 == 0)
		}
	}
	var wg sync.WaitGroup
	var stop atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, op := range ops {
			prod.Send(0, op)
			if op.Failed() {
				panic("send failed")
			}
			for prod.Pending() && !stop.Load() {
				prod.flush()
			}
		}
	}()
	c := &checker{next: map[uint32]uint64{}}
	var perr error
	for c.frames < frames && c.err == nil && perr == nil {
		_, perr = cons.Poll(c)
	}
	stop.Store(true)
	wg.Wait()
	if perr != nil {
		t.Fatal(perr)
	}
	if c.err != nil {
		t.Fatal(c.err)
	}
}

// forgeNextLap fills payload b, of a frame whose payload starts at
// dataOff and that the producer puts at position head or after a skip,
// with what would pass for a header in each continuation slot's sequence
// word in the next lap: a consumer that looked there too early (a slot
// not cleared, a skip published before the frame after it) would take
// the stale payload for a frame. It returns the position after the frame.
func forgeNextLap(b []byte, dataOff int, head, nslots uint64) uint64 {
	k := slotsFor(dataOff, len(b))
	if i := head & (nslots - 1); i+k > nslots {
		head += nslots - i
	}
	for j := uint64(1); j < k; j++ {
		if off := int(j)*slotSize - dataOff; off+8 <= len(b) {
			binary.LittleEndian.PutUint64(b[off:], head+j+nslots+1)
		}
	}
	return head + k
}

func TestRingRejectsGarbage(t *testing.T) {
	cases := []struct {
		name  string
		write func(r *ring)
	}{
		{"length past the limit", func(r *ring) {
			binary.LittleEndian.PutUint32(r.slots[frameHdrOff+4:], 1<<30)
			r.seq(0).Store(1)
		}},
		{"frame running past the ring", func(r *ring) {
			// A frame of 15 slots announced at slot 60 of 64.
			binary.LittleEndian.PutUint32(r.slots[60*slotSize+frameHdrOff+4:], 900)
			r.seq(60).Store(64*5 + 60 + 1)
		}},
		{"skip that does not reach the end", func(r *ring) {
			r.slots[frameHdrOff+1] = flagSkip
			binary.LittleEndian.PutUint32(r.slots[frameHdrOff+4:], 3)
			r.seq(0).Store(1)
		}},
		{"non-zero reserved header bytes", func(r *ring) {
			r.slots[frameHdrOff+2] = 9
			r.seq(0).Store(1)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cons, _ := pair(t, 2, 64, 1)
			if tc.name == "frame running past the ring" {
				cons.rx[1].tail = 64*5 + 60
			}
			tc.write(cons.rx[1].r)
			_, err := cons.Poll(&checker{next: map[uint32]uint64{}})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("want ErrCorrupt, got %v", err)
			}
		})
	}
	t.Run("active bit for a ring that does not exist", func(t *testing.T) {
		cons, _ := pair(t, 2, 64, 1)
		cons.own.g.activeWord(0).Or(1 << 5)
		if _, err := cons.Poll(&checker{next: map[uint32]uint64{}}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("want ErrCorrupt, got %v", err)
		}
	})
}

// FuzzRing lets a peer write anything into a ring: Poll returns frames or
// an error, never panics, and never reads past the ring.
func FuzzRing(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0})
	f.Fuzz(func(t *testing.T, junk []byte) {
		cons, _ := pair(t, 2, 64, 1)
		r := cons.rx[1].r
		copy(r.slots, junk)
		if len(junk) >= 8 {
			r.seq(0).Store(1)
		}
		c := &checker{next: map[uint32]uint64{}}
		for i := 0; i < 4; i++ {
			if _, err := cons.Poll(c); err != nil {
				return
			}
		}
	})
}

func TestRingSlots(t *testing.T) {
	for _, tc := range []struct{ local, slots int }{{1, 4096}, {2, 4096}, {8, 4096}, {9, 2048}, {16, 2048}, {17, 1024}, {64, 1024}, {65, 512}, {128, 512}, {1000, 512}} {
		if got := RingSlots(tc.local); got != tc.slots {
			t.Errorf("RingSlots(%d) = %d, want %d", tc.local, got, tc.slots)
		}
	}
	if fp := Footprint(64); fp > 4<<20+ringsOff+64*cacheLine+boardBytes {
		t.Errorf("footprint at 64 ranks: %d bytes", fp)
	}
	if fp := Footprint(128); fp > 4<<20+ringsOff+128*cacheLine+boardBytes {
		t.Errorf("footprint at 128 ranks: %d bytes", fp)
	}
	if fp := Footprint(16); fp > 2<<20+ringsOff+16*cacheLine+boardBytes {
		t.Errorf("footprint at 16 ranks: %d bytes", fp)
	}
}

// TestCapsFitTheRing: the eager limit and the data frame comm is told
// about fit a frame of the ring (a quarter of it), and the chain limit
// half the ring, however small the rings: a crowded host's 1024-slot
// rings hold 16,336-byte frames, and a 16 KiB eager message must then
// take a chain instead.
func TestCapsFitTheRing(t *testing.T) {
	for _, slots := range []int{128, 512, 1024, 2048, 4096} {
		dir := t.TempDir()
		tr, err := Open(Config{JobID: "caps", Rank: 0, Size: 2, LocalRank: 0, LocalSize: 2, Dir: dir, Slots: slots})
		if err != nil {
			t.Fatal(err)
		}
		c := tr.Caps()
		max := slots*slotSize/4 - frameDataOff
		if c.EagerLimit > max || c.MaxFrame > max {
			t.Errorf("%d slots: eager limit %d, max frame %d: a frame holds %d", slots, c.EagerLimit, c.MaxFrame, max)
		}
		if c.ChainLimit > slots*slotSize/2 {
			t.Errorf("%d slots: chain limit %d, more than half the ring", slots, c.ChainLimit)
		}
		// A chain of the limit, in frames of MaxFrame, fits an empty ring
		// whole: a send puts all of it out at once.
		chainSlots := uint64(0)
		for off := 0; off < c.ChainLimit; off += c.MaxFrame {
			chainSlots += slotsFor(frameDataOff, min(c.MaxFrame, c.ChainLimit-off))
		}
		if chainSlots > uint64(slots) {
			t.Errorf("%d slots: a chain of %d bytes takes %d slots", slots, c.ChainLimit, chainSlots)
		}
		if max >= EagerLimit && c.EagerLimit != EagerLimit {
			t.Errorf("%d slots: eager limit %d, want %d", slots, c.EagerLimit, EagerLimit)
		}
		if slots == MaxSlots && c.ChainLimit != ChainLimit {
			t.Errorf("%d slots: chain limit %d, want %d", slots, c.ChainLimit, ChainLimit)
		}
		tr.Close()
	}
}

// TestRingStalePayload: payload bytes left in a slot from an earlier lap are
// never taken for a frame. Every frame's payload holds, where each of its
// continuation slots begins, exactly the sequence word the consumer would
// expect there one lap later; the next lap then sends one-slot frames, so
// the consumer arrives at each of those slots before the producer has
// written it. Long and short frames (whose payload starts 16 bytes
// earlier) both.
func TestRingStalePayload(t *testing.T) {
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) { testRingStalePayload(t, short) })
	}
}

func testRingStalePayload(t *testing.T, short bool) {
	const nslots = 64
	cons, prod := pair(t, 2, nslots, 1)
	p := prod.peers[0]
	c := &checker{next: map[uint32]uint64{}}
	seq := uint64(0)
	dataOff, newFrame := frameDataOff, frame
	if short {
		dataOff, newFrame = shortDataOff, shortFrame
	}
	send := func(n int) {
		t.Helper()
		k := slotsFor(dataOff, n)
		h := p.head
		start := h
		if i := h & (nslots - 1); i+k > nslots {
			start = h + nslots - i
		}
		b := make([]byte, n)
		for j := uint64(1); j < k; j++ {
			if off := int(j)*slotSize - dataOff; off+8 <= n {
				binary.LittleEndian.PutUint64(b[off:], start+j+nslots+1)
			}
		}
		op := newFrame(7, seq, b, false)
		seq++
		if prod.Send(0, op); op.Failed() || prod.Pending() {
			t.Fatalf("frame %d of %d bytes did not go out at once", seq-1, n)
		}
		for want := c.frames + 1; c.frames < want; {
			if _, err := cons.Poll(c); err != nil {
				t.Fatalf("after frame %d of %d bytes: %v", seq-1, n, err)
			}
			if c.err != nil {
				t.Fatal(c.err)
			}
		}
		// Nothing more may be found: the next slot holds stale payload.
		if k, err := cons.Poll(c); k != 0 || err != nil || c.err != nil {
			t.Fatalf("after frame %d of %d bytes: poll found %d more frames, %v, %v", seq-1, n, k, err, c.err)
		}
	}
	for lap := 0; lap < 6; lap++ {
		for range 2 * nslots / 13 {
			send(12*slotSize - dataOff + 1) // 13 slots
		}
		for range 2 * nslots {
			send(0)
		}
	}
}

// TestRingShortFrames: a frame without Cookie and Aux takes one slot for
// up to 32 payload bytes (a long one for up to 16), and both arrive whole.
func TestRingShortFrames(t *testing.T) {
	cases := []struct {
		n     int
		short bool
		slots uint64
	}{
		{0, true, 1}, {16, true, 1}, {17, true, 1}, {32, true, 1}, {33, true, 2}, {96, true, 2}, {97, true, 3},
		{16, false, 1}, {17, false, 2}, {80, false, 2}, {81, false, 3},
	}
	cons, prod := pair(t, 2, 64, 1)
	p := prod.peers[0]
	c := &checker{next: map[uint32]uint64{}}
	for i, tc := range cases {
		b := make([]byte, tc.n)
		for j := range b {
			b[j] = byte(i*31 + j)
		}
		op := frame(7, uint64(i), b, false)
		if tc.short {
			op = shortFrame(7, uint64(i), b, false)
		}
		head := p.head
		if prod.Send(0, op); op.Failed() || prod.Pending() {
			t.Fatalf("%d bytes, short %v: did not go out at once", tc.n, tc.short)
		}
		if got := p.head - head; got != tc.slots {
			t.Errorf("%d bytes, short %v: %d slots, want %d", tc.n, tc.short, got, tc.slots)
		}
		if k, err := cons.Poll(c); k != 1 || err != nil || c.err != nil {
			t.Fatalf("%d bytes, short %v: poll found %d frames, %v, %v", tc.n, tc.short, k, err, c.err)
		}
	}
}

// TestRingConsumerWritesOnlyTail: handing frames on writes nothing into
// the ring's slots (the producer clears what stale payload needs it, in
// putFrame), and gives every slot back at once; across laps, with frames
// of 1 to 13 slots and skips at the ring's end.
func TestRingConsumerWritesOnlyTail(t *testing.T) {
	const nslots = 64
	cons, prod := pair(t, 2, nslots, 1)
	r := cons.rx[1].r
	p := prod.peers[0]
	c := &checker{next: map[uint32]uint64{}}
	seq := uint64(0)
	for round := range 60 {
		n := []int{0, slotSize, 12*slotSize - frameDataOff + 1, 3 * slotSize, 100}[round%5]
		op := frame(7, seq, make([]byte, n), false)
		seq++
		if prod.Send(0, op); op.Failed() || prod.Pending() {
			t.Fatalf("frame %d of %d bytes did not go out at once", seq-1, n)
		}
		before := bytes.Clone(r.slots)
		if k, err := cons.Poll(c); k != 1 || err != nil || c.err != nil {
			t.Fatalf("frame %d: poll found %d frames, %v, %v", seq-1, k, err, c.err)
		}
		if !bytes.Equal(before, r.slots) {
			t.Fatalf("frame %d of %d bytes: the consumer wrote into the ring's slots", seq-1, n)
		}
		if got := r.tail.Load(); got != p.head || cons.MayPoll() {
			t.Fatalf("frame %d: tail %d, MayPoll %v; want %d and false", seq-1, got, cons.MayPoll(), p.head)
		}
		set := 0
		for _, w := range p.stale {
			set += bits.OnesCount64(w)
		}
		if set != p.nstale {
			t.Fatalf("frame %d: %d stale bits set, the count says %d", seq-1, set, p.nstale)
		}
	}
}

// satisfiedAfter is a checker that, as a waiting engine does, says it
// has what it waits for once it has taken want frames.
type satisfiedAfter struct {
	checker
	want int
}

func (s *satisfiedAfter) Satisfied() bool { return s.frames >= s.want }

// TestPollStopsWhenSatisfied: a Poll whose handler is satisfied stops
// handing on frames at once, without looking at the next slot, and the
// next Poll takes the rest, in order; a handler that never says so gets
// every frame in one Poll.
func TestPollStopsWhenSatisfied(t *testing.T) {
	cons, prod := pair(t, 2, 64, 1)
	send := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			op := shortFrame(7, uint64(i), []byte{byte(i)}, false)
			if prod.Send(0, op); op.Failed() || prod.Pending() {
				t.Fatalf("frame %d did not go out at once", i)
			}
		}
	}
	send(0, 5)
	s := &satisfiedAfter{checker: checker{next: map[uint32]uint64{}}, want: 1}
	for _, want := range []int{1, 1, 3} {
		if want == 3 {
			s.want = 1 << 30 // satisfied no more: the rest in one Poll
		} else {
			s.want = s.frames + 1
		}
		if k, err := cons.Poll(s); k != want || err != nil || s.err != nil {
			t.Fatalf("poll handed on %d frames (%v, %v), want %d", k, err, s.err, want)
		}
	}
	if s.frames != 5 {
		t.Fatalf("%d frames in all, want 5", s.frames)
	}
	send(5, 8)
	c := &checker{next: map[uint32]uint64{7: 5}}
	if k, err := cons.Poll(c); k != 3 || err != nil || c.err != nil {
		t.Fatalf("a handler that is no Satisfier got %d frames (%v, %v), want 3", k, err, c.err)
	}
}
