package shm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/parley-hpc/parley/internal/jobfiles"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/wire"
	"github.com/parley-hpc/parley/transport"
)

// Sizes, chosen by measurement (see BENCHMARKS.md).
const (
	// MaxSlots is the size of one sender's ring on hosts of up to 8
	// ranks: 4096 slots of 64 bytes (256 KiB), which hold a 128 KiB chain
	// whole; more crowded hosts have smaller rings (RingSlots).
	MaxSlots = jobfiles.MaxSlots
	// EagerLimit is the largest message comm sends through a ring: above
	// it, one process_vm_readv beats two copies through the ring. A
	// single copy costs a system call that pins the sender's pages: on
	// this machine kind 3.8-4.5 us at 8 KiB against 0.9-1.0 through the
	// ring (bench latency; bw 8 KiB 2.5 against 16.7 GB/s, 5 interleaved
	// runs), and 3.9-7.6 us at 16 KiB against 1.5-1.9 through a ring of
	// 2048 slots (bw 16 KiB 4.1 against 16.3 GB/s). An earlier machine
	// gave 2.1 us at 8 KiB, and this limit was 4 KiB. A frame takes at
	// most a quarter of a ring: smaller rings (crowded hosts) lower the
	// limit (Caps).
	EagerLimit = 16 << 10
	// ChainLimit is the largest message comm sends eagerly as a chain of
	// frames (comm/chain.go); at most half a ring (Open), so that a chain
	// fits an empty ring whole, headers and all (TestCapsFitTheRing): a
	// send into a drained ring puts all of it out at once. Between the
	// eager limit and here a single copy pays its system call for nothing
	// on some machines: 7 interleaved runs against the single copy, 2
	// ranks (AMD EPYC, 2 vCPU): latency 32 KiB 2.13 against 4.75 us,
	// 64 KiB 3.80 against 7.33, 128 KiB 6.73 against 13.3; bw 32-128 KiB
	// 14.6-15.5 against 6.5-9.1 GB/s; bibw 128 KiB 20.1 against 18.7. On
	// others the single copy wins (Intel Xeon, 2 vCPU: bw 64 KiB 4.9
	// against 9.9 GB/s), so the node agent measures which (medium.go).
	ChainLimit = 128 << 10
	// maxDataFrame is the payload of one data frame when large messages
	// move through the rings (no single copy).
	maxDataFrame = 8 << 10
	// flagSkip marks a skip frame: Len counts the slots to skip. It is a
	// transport-private flag bit (comm uses the low bits).
	flagSkip = 1 << 7
	// flagShort marks a short frame (ring.go): the header ends at Check,
	// Cookie and Aux are zero, and the payload starts at byte shortDataOff.
	flagShort = 1 << 6
	// maxPollFrames bounds the frames one Poll hands on from one ring.
	maxPollFrames = 64
)

// ErrCorrupt reports a segment whose contents break the protocol: a peer
// wrote garbage into it.
var ErrCorrupt = errors.New("shared-memory segment corrupt")

// Config configures a rank's shared-memory transport.
type Config struct {
	JobID string
	Rank  int // world rank
	// Size is the number of ranks in the world: a ring whose sender names
	// a rank outside it is corrupt.
	Size int
	// LocalRank and LocalSize place the rank among the ranks of its host:
	// the segment has one ring per local rank.
	LocalRank, LocalSize int
	Slots                int // slots per ring (power of two); 0: RingSlots(LocalSize)
	Dir                  string
	// Segment is the name of this rank's segment, which its node agent
	// created and reserved before the rank started (jobfiles.Reserve).
	// Without one (a rank started by srun, a test) Open creates it, under
	// a name with a random token.
	Segment string
	// EagerLimit overrides the default eager limit (tests and tuning).
	EagerLimit int
	// ChainLimit overrides the default ChainLimit (tests and tuning); a
	// negative value sends no chains.
	ChainLimit int
	// ReadFirst makes comm read messages above EagerLimit out of the
	// sender's memory where it can, and send chains only where it cannot
	// (Caps.ReadFirst): what the node agent chooses where it measured the
	// single copy faster (MeasureMedium).
	ReadFirst bool
}

// Transport is one rank's shared-memory endpoint: its own segment, whose
// rings it polls, and the segments of the local peers it sends to.
//
// Every method but MayPoll and Read is called by the owner's progress loop
// one at a time (comm holds its engine lock); MayPoll and Read may be
// called at any time.
type Transport struct {
	cfg  Config
	own  *segment
	rx   []rxRing // by sender local rank
	live []int    // local ranks of the senders whose rings are active
	from []int    // by sender local rank: the world rank it announced (-1: none yet)
	seen []uint64 // the active bitmap as last read
	next int      // where the next poll starts, for fairness

	peers     map[int]*peer
	boardSegs map[int]*segment // segments of local peers mapped for their boards only (PeerBoard)
	waiting   []*peer          // peers with frames queued (their ring was full)
	queued    atomic.Bool      // len(waiting) > 0, for MayPoll
	g         *region          // the own segment's region, fixed at Open, for MayPoll
	closed    atomic.Bool      // read by MayPoll without the lock (see segment.retire)
	hd        transport.Header // scratch for Poll: a local would escape through the Handler
	maxLen    int              // largest frame payload: a quarter of a ring

	// pids of attached peers by world rank, for Read, which runs without
	// the engine lock.
	pidMu sync.Mutex
	pids  map[int]int
}

var _ interface {
	transport.Transport
	transport.DirectSender
	transport.Peeker
	transport.RemoteReader
} = (*Transport)(nil)

// rxRing is the consumer's side of one ring.
type rxRing struct {
	r    *ring
	tail uint64 // where the next frame is looked for
}

// peer is the producer's side of the ring this rank owns in a peer's
// segment.
type peer struct {
	rank       int
	pid        int
	seg        *segment
	tx         *ring
	head       uint64 // next position to write; private to the producer
	cachedTail uint64
	queue      transport.OpQueue
	// stale has a bit per slot of the ring, set while the slot's
	// sequence word holds payload (the slot was a frame's continuation),
	// which a later lap's consumer must never take for a header: the
	// producer clears such a word before it publishes a frame that ends
	// there (putFrame). nstale counts the bits set: a stream of one-slot
	// frames leaves none, and then pays only that count's test.
	stale  []uint64
	nstale int
}

// newPeer is the producer's side of ring tx, fresh: positions start at 0.
func newPeer(rank, pid int, seg *segment, tx *ring) *peer {
	return &peer{rank: rank, pid: pid, seg: seg, tx: tx, stale: make([]uint64, (tx.nslots+63)/64)}
}

// isStale reports whether slot i's sequence word holds payload.
func (p *peer) isStale(i uint64) bool { return p.stale[i/64]&(1<<(i%64)) != 0 }

// unstale records that slot i's sequence word holds no payload (any more).
func (p *peer) unstale(i uint64) {
	if p.isStale(i) {
		p.stale[i/64] &^= 1 << (i % 64)
		p.nstale--
	}
}

// markStale records that the sequence words of slots [lo, hi), a frame's
// continuation slots, hold payload.
func (p *peer) markStale(lo, hi uint64) {
	for lo < hi {
		w := lo / 64
		end := min(hi, (w+1)*64)
		m := (^uint64(0) >> (64 - (end - lo))) << (lo % 64)
		p.nstale += bits.OnesCount64(m &^ p.stale[w])
		p.stale[w] |= m
		lo = end
	}
}

// RingSlots is the ring size for a host of localSize ranks (see
// jobfiles.RingSlots).
func RingSlots(localSize int) int { return jobfiles.RingSlots(localSize) }

// Footprint is the size of one rank's segment on a host of localSize
// ranks: what the agent reserves for it.
func Footprint(localSize int) int { return jobfiles.SegmentSize(localSize) }

// Open creates this rank's segment and returns the transport.
func Open(cfg Config) (*Transport, error) {
	if cfg.Slots == 0 {
		cfg.Slots = RingSlots(cfg.LocalSize)
	}
	if cfg.Dir == "" {
		cfg.Dir = "/dev/shm"
	}
	// A frame takes at most a quarter of a ring: rings shrink on crowded
	// hosts (RingSlots), where 16 KiB, then 8 KiB, do not fit.
	maxLen := cfg.Slots*slotSize/4 - frameDataOff
	if cfg.EagerLimit <= 0 {
		cfg.EagerLimit = EagerLimit
	}
	cfg.EagerLimit = min(cfg.EagerLimit, maxLen)
	if cfg.ChainLimit == 0 {
		cfg.ChainLimit = ChainLimit
	}
	cfg.ChainLimit = min(cfg.ChainLimit, cfg.Slots*slotSize/2)
	if cfg.LocalSize < 1 || cfg.LocalRank < 0 || cfg.LocalRank >= cfg.LocalSize {
		return nil, fmt.Errorf("shm transport: local rank %d of %d", cfg.LocalRank, cfg.LocalSize)
	}
	if cfg.Size < cfg.LocalSize || cfg.Rank < 0 || cfg.Rank >= cfg.Size {
		return nil, fmt.Errorf("shm transport: rank %d of a world of %d with %d on this host", cfg.Rank, cfg.Size, cfg.LocalSize)
	}
	name := cfg.Segment
	if name == "" {
		if cfg.LocalRank == 0 {
			// No agent to do it: the first rank of a host clears what
			// dead jobs left behind.
			jobfiles.Sweep(cfg.Dir)
		}
		name = jobfiles.SegmentName(cfg.JobID, jobfiles.NewToken(), cfg.Rank)
		if err := jobfiles.Create(cfg.Dir, name, regionSize(cfg.LocalSize, cfg.Slots), os.Getpid()); err != nil {
			return nil, fmt.Errorf("shm transport: %w", err)
		}
	}
	seg, err := openOwnSegment(cfg.Dir, name, cfg.LocalSize, cfg.Slots)
	if err != nil {
		if cfg.Segment == "" {
			os.Remove(filepath.Join(cfg.Dir, name))
		}
		return nil, fmt.Errorf("shm transport: %w", err)
	}
	t := &Transport{cfg: cfg, own: seg, rx: make([]rxRing, cfg.LocalSize), seen: make([]uint64, seg.g.bitmapWords()),
		from: make([]int, cfg.LocalSize), peers: make(map[int]*peer), maxLen: maxLen,
		pids: make(map[int]int)}
	for i := range t.rx {
		t.rx[i].r = seg.g.ring(i)
		t.from[i] = -1
	}
	t.g = seg.g
	return t, nil
}

// Addr is the segment's file name, published in the rank's card.
func (t *Transport) Addr() string { return t.own.name }

// Bell is the futex word peers ring when they send to this rank; comm
// sleeps on it, and other transports ring it too.
func (t *Transport) Bell() transport.Bell { return transport.NewBell(&t.own.g.hdr.bell) }

// Caps reports what this transport does.
func (t *Transport) Caps() transport.Caps {
	return transport.Caps{Name: "shm", EagerLimit: t.cfg.EagerLimit, MaxFrame: min(maxDataFrame, t.maxLen),
		ChainLimit: max(t.cfg.ChainLimit, 0), ReadFirst: t.cfg.ReadFirst, RemoteRead: true, Woken: true, WholeFrames: true}
}

// Reach maps the segment named name of peer rank (process pid) for
// sending; this rank writes into the ring of its own local rank there,
// and announces itself in the ring's sender word before it sets its bit
// in the segment's active bitmap.
func (t *Transport) Reach(rank int, name string, pid int) error {
	if t.peers[rank] != nil {
		return nil
	}
	seg, err := openSegment(t.cfg.Dir, name)
	if err != nil {
		return fmt.Errorf("shm attach to rank %d: %w", rank, err)
	}
	g := seg.g
	owner, nrings, nslots := int(g.hdr.pid), g.nrings, int(g.nslots)
	var bad error
	switch {
	case owner != pid:
		bad = fmt.Errorf("segment %s belongs to pid %d, the rank is pid %d", name, owner, pid)
	case t.cfg.LocalRank >= nrings:
		bad = fmt.Errorf("segment %s has %d rings, this rank is local rank %d", name, nrings, t.cfg.LocalRank)
	case nslots != t.cfg.Slots:
		bad = fmt.Errorf("segment %s has rings of %d slots, this rank uses %d", name, nslots, t.cfg.Slots)
	}
	if bad != nil {
		seg.close() // nothing of the mapping may be touched after this
		return fmt.Errorf("shm attach to rank %d: %w", rank, bad)
	}
	p := newPeer(rank, pid, seg, g.ring(t.cfg.LocalRank)) // a ring is fresh when its sender first attaches
	p.tx.sender.Store(uint64(t.cfg.Rank) + 1)
	lr := t.cfg.LocalRank
	g.activeWord(lr / 64).Or(1 << (lr % 64))
	t.peers[rank] = p
	t.pidMu.Lock()
	t.pids[rank] = pid
	t.pidMu.Unlock()
	return nil
}

// Send queues op for peer rank, which must be attached. It completes at
// once when the ring has room (the payload is copied), else when a later
// Poll finds room.
func (t *Transport) Send(rank int, op *transport.SendOp) {
	op.Reset()
	p := t.peers[rank]
	switch {
	case t.closed.Load():
		op.Complete(fmt.Errorf("shm send to rank %d: %w", rank, transport.ErrClosed))
	case p == nil:
		op.Complete(fmt.Errorf("shm send to rank %d: not attached", rank))
	case len(op.Payload) > t.maxLen:
		op.Complete(fmt.Errorf("shm send to rank %d: frame of %d bytes exceeds the ring's %d", rank, len(op.Payload), t.maxLen))
	case !p.queue.Empty():
		p.queue.Push(op)
	case t.put(p, op):
		op.Complete(nil)
	default:
		p.queue.Push(op)
		t.waiting = append(t.waiting, p)
		t.queued.Store(true)
	}
}

// TrySend writes one frame into peer rank's ring at once, without an op,
// when nothing is queued for the peer and its ring has room; it reports
// whether it did (if not, the caller sends with Send). This is the path of
// small eager messages: no op to take from a pool, complete and give back.
func (t *Transport) TrySend(rank int, h *transport.Header, payload []byte) bool {
	p := t.peers[rank]
	if t.closed.Load() || p == nil || len(payload) > t.maxLen || !p.queue.Empty() {
		return false
	}
	return t.putFrame(p, h, payload)
}

// put writes op into p's ring if it has room, and reports whether it did.
func (t *Transport) put(p *peer, op *transport.SendOp) bool {
	return t.putFrame(p, &op.Header, op.Payload)
}

// putFrame writes a frame into p's ring if it has room, and reports
// whether it did.
//
// The consumer, once it has handed the frame on, looks for the next one
// at the slot after it, which may still hold payload from a frame of an
// earlier lap where a sequence word goes: the producer overwrites that
// word first (only then, which its stale bits tell), so that the
// consumer never writes into the ring's slots. Its stores would take
// lines the producer holds, and the consumer's next atomic instruction
// (the engine's unlock, the send of a reply) would wait for them.
func (t *Transport) putFrame(p *peer, hdr *transport.Header, payload []byte) bool {
	r := p.tx
	dataOff := dataOffFor(hdr)
	k := slotsFor(dataOff, len(payload))
	h := p.head
	i := h & r.mask
	pad := uint64(0)
	if i+k > r.nslots {
		pad = r.nslots - i
	}
	need := h + pad + k
	var next uint64 // the slot after the frame
	clear := false
	if p.nstale > 0 {
		next = need & r.mask
		if clear = p.isStale(next); clear {
			need++ // the slot after the frame must be free to be cleared
		}
	}
	if need > p.cachedTail+r.nslots {
		p.cachedTail = r.tail.Load()
		if need > p.cachedTail+r.nslots {
			return false
		}
	}
	if pad > 0 {
		// A skip frame fills the ring's end; the frame starts at slot 0,
		// which always begins a frame (frames never wrap), so its word is
		// never payload.
		wire.PutHeader(r.frame(i, 1)[frameHdrOff:], &transport.Header{Flags: flagSkip, Len: uint32(pad)})
		p.unstale(i)
		r.publish(i, h+1)
		h += pad
		i = 0
	}
	f := r.frame(i, k)
	// The header slot's line last, in one burst that ends with the
	// sequence word: the consumer polls that line, and each read of it
	// between two of our stores would take it back, so that the next
	// store waits for it again.
	first := payload
	if rest := slotSize - dataOff; len(payload) > rest {
		copy(f[slotSize:], payload[rest:])
		first = payload[:rest]
	}
	if clear {
		r.clearSeq(next)
		p.unstale(next)
	}
	wire.PutHeader(f[frameHdrOff:], hdr) // all 40 bytes lie in the first slot; a short frame's payload overwrites its zero Cookie and Aux
	if dataOff == shortDataOff {
		f[frameHdrOff+1] = hdr.Flags | flagShort
	}
	copy(f[dataOff:], first)
	if p.nstale > 0 {
		p.unstale(i) // the header slot's word is a sequence word now
	}
	if k > 1 {
		p.markStale(i+1, i+k)
	}
	r.publish(i, h+1)
	p.head = h + k
	bell := &p.seg.g.hdr.bell
	if bell.Load() != 0 && bell.Swap(0) != 0 {
		linux.FutexWake(bell, 1)
	}
	return true
}

// Poll hands the frames waiting in this rank's rings to h and retries
// frames queued for full rings. It returns the number of frames handled.
func (t *Transport) Poll(h transport.Handler) (int, error) {
	if t.closed.Load() {
		return 0, nil
	}
	n := 0
	if len(t.waiting) > 0 {
		k, err := t.flush()
		n += k
		if err != nil {
			return n, err
		}
	}
	if err := t.refreshLive(); err != nil {
		return n, err
	}
	sat, _ := h.(transport.Satisfier)
	live := t.live
	for j := range live {
		idx := live[(t.next+j)%len(live)]
		k, err := t.drain(&t.rx[idx], t.from[idx], h, sat)
		n += k
		if err != nil {
			return n, fmt.Errorf("ring of local rank %d: %w", idx, err)
		}
		if k > 0 && sat != nil && sat.Satisfied() {
			break
		}
	}
	if len(live) > 1 {
		t.next++
	}
	return n, nil
}

// MayPoll reports, without the caller's lock and without writing anything,
// whether Poll could find work: a frame at the tail of one of this rank's
// rings, or frames queued for a full ring. A waiting rank calls it between
// polls, so that looking for a message costs a few loads instead of a lock
// (whose atomic read-modify-write would also wait for this rank's last
// frame to reach its peer). It reads only what is shared or fixed at Open:
// the active bitmap, and each ring's published tail and sequence words.
//
// After Close it reports true, so that the caller takes the lock and finds
// the transport closed; a call that raced with Close reads the zero pages
// that replaced the segment (segment.retire).
func (t *Transport) MayPoll() bool {
	if t.queued.Load() || t.closed.Load() {
		return true
	}
	g := t.g
	for w := range g.bitmapWords() {
		v := g.activeWord(w).Load()
		for v != 0 {
			b := bits.TrailingZeros64(v)
			v &^= 1 << b
			idx := w*64 + b
			if idx >= len(t.rx) {
				return true // Poll reports the corruption
			}
			r := t.rx[idx].r
			tail := r.tail.Load()
			if r.seq(tail&r.mask).Load() == tail+1 {
				return true
			}
		}
	}
	return false
}

// refreshLive rereads the active bitmap; it changes only when a peer
// attaches, so this is a few loads of a line nobody writes.
func (t *Transport) refreshLive() error {
	g := t.own.g
	changed := false
	for w := range t.seen {
		v := g.activeWord(w).Load()
		if v != t.seen[w] {
			t.seen[w] = v
			changed = true
		}
	}
	if !changed {
		return nil
	}
	t.live = t.live[:0]
	for w, v := range t.seen {
		for v != 0 {
			b := bits.TrailingZeros64(v)
			v &^= 1 << b
			idx := w*64 + b
			if idx >= len(t.rx) {
				return fmt.Errorf("%w: active bit for ring %d of %d", ErrCorrupt, idx, len(t.rx))
			}
			if t.from[idx] < 0 {
				// The sender stored its world rank before it set its bit.
				w := t.rx[idx].r.sender.Load()
				if w == 0 || w > uint64(t.cfg.Size) {
					return fmt.Errorf("%w: ring %d announces sender %d in a world of %d", ErrCorrupt, idx, int64(w)-1, t.cfg.Size)
				}
				t.from[idx] = int(w - 1)
			}
			t.live = append(t.live, idx)
		}
	}
	return nil
}

// drain hands on the frames of one ring, until sat (if not nil) says the
// caller has what it waits for (see transport.Satisfier).
func (t *Transport) drain(rx *rxRing, from int, h transport.Handler, sat transport.Satisfier) (int, error) {
	r := rx.r
	hd := &t.hd
	n := 0
	pos := rx.tail
	for n < maxPollFrames {
		i := pos & r.mask
		if r.seq(i).Load() != pos+1 {
			break
		}
		if _, err := wire.ParseHeader(r.frame(i, 1)[frameHdrOff:], hd); err != nil {
			return n, fmt.Errorf("%w: slot %d: %v", ErrCorrupt, i, err)
		}
		var k uint64
		if hd.Flags&flagSkip != 0 {
			k = uint64(hd.Len)
			if k == 0 || i+k != r.nslots {
				return n, fmt.Errorf("%w: skip of %d slots at slot %d of %d", ErrCorrupt, k, i, r.nslots)
			}
		} else {
			dataOff := frameDataOff
			if hd.Flags&flagShort != 0 {
				// The bytes parsed as Cookie and Aux were payload.
				hd.Flags &^= flagShort
				hd.Cookie, hd.Aux = 0, 0
				dataOff = shortDataOff
			}
			if int(hd.Len) > t.maxLen {
				return n, fmt.Errorf("%w: frame of %d bytes at slot %d (limit %d)", ErrCorrupt, hd.Len, i, t.maxLen)
			}
			k = slotsFor(dataOff, int(hd.Len))
			if i+k > r.nslots {
				return n, fmt.Errorf("%w: frame of %d slots at slot %d runs past the ring's %d", ErrCorrupt, k, i, r.nslots)
			}
			payload := r.frame(i, k)[dataOff : dataOff+int(hd.Len)]
			if hd.Flags&transport.FlagDirect != 0 {
				dst := h.Destination(from, hd)
				if len(dst) == len(payload) {
					copy(dst, payload)
				} else {
					dst = nil
				}
				h.Deliver(from, hd, dst)
			} else {
				h.Deliver(from, hd, payload)
			}
			n++
		}
		pos += k
		if sat != nil && sat.Satisfied() {
			break
		}
	}
	if pos != rx.tail {
		rx.tail = pos
		r.tail.Store(pos) // gives the slots back to the producer
	}
	return n, nil
}

// flush retries queued frames in order; it returns how many went out, and
// the failure of a peer that closed its transport with frames still
// queued for it (their ops fail).
func (t *Transport) flush() (int, error) {
	n := 0
	var lost error
	keep := t.waiting[:0]
	for _, p := range t.waiting {
		for op := p.queue.Head(); op != nil; op = p.queue.Head() {
			if !t.put(p, op) {
				if p.seg.g.hdr.closed.Load() != 0 {
					err := &transport.PeerError{Rank: p.rank, Op: "send to", Err: errors.New("the rank closed its shared memory with frames queued for it")}
					for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
						op.Complete(err)
					}
					if lost == nil {
						lost = err
					}
				}
				break
			}
			p.queue.Pop()
			op.Complete(nil)
			n++
		}
		if !p.queue.Empty() {
			keep = append(keep, p)
		}
	}
	for i := len(keep); i < len(t.waiting); i++ {
		t.waiting[i] = nil
	}
	t.waiting = keep
	t.queued.Store(len(keep) > 0)
	return n, lost
}

// Expose appends buf's address to dst: a peer on this host reads the
// buffer with process_vm_readv (Read). Nothing needs registering, so
// Unexpose does nothing.
//
// This is the package's one use of a Go pointer as a number. It is safe
// because Go's heap objects do not move, and comm keeps the buffer alive
// (its send request holds it) until the reader's FIN says the copy is
// over.
func (t *Transport) Expose(dst, buf []byte) ([]byte, error) {
	return binary.LittleEndian.AppendUint64(dst, uint64(uintptr(unsafe.Pointer(unsafe.SliceData(buf))))), nil
}

// Unexpose does nothing: exposing a buffer reserved nothing.
func (t *Transport) Unexpose(desc []byte) {}

// Read copies len(dst) bytes from the buffer of peer rank that desc (from
// the peer's Expose) describes, with one process_vm_readv. It fails with an
// error wrapping transport.ErrNotSupported when the kernel refuses (Yama's
// ptrace_scope, a seccomp filter), and with ErrProtocol when desc is not a
// descriptor.
func (t *Transport) Read(peer int, dst, desc []byte) error {
	if len(desc) != 8 {
		return fmt.Errorf("shm read from rank %d: %w: descriptor of %d bytes", peer, transport.ErrProtocol, len(desc))
	}
	t.pidMu.Lock()
	pid, ok := t.pids[peer]
	t.pidMu.Unlock()
	if !ok {
		return fmt.Errorf("shm read from rank %d: %w: the rank is not attached", peer, transport.ErrProtocol)
	}
	if err := linux.ReadRemote(dst, pid, uintptr(binary.LittleEndian.Uint64(desc))); err != nil {
		return fmt.Errorf("shm read from rank %d (pid %d): %w", peer, pid, err)
	}
	return nil
}

// Pending reports whether frames wait for room in a peer's ring.
func (t *Transport) Pending() bool { return len(t.waiting) > 0 }

// Close unmaps every segment and removes this rank's own file. Queued
// frames fail with transport.ErrClosed. It is safe to call twice.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	var errs []error
	for _, p := range t.peers {
		for op := p.queue.Pop(); op != nil; op = p.queue.Pop() {
			op.Complete(fmt.Errorf("shm send to rank %d: %w", p.rank, transport.ErrClosed))
		}
		// Retired, not unmapped: a goroutine may still read the
		// peer's board (comm reads boards without the lock).
		errs = append(errs, p.seg.retire())
	}
	for _, seg := range t.boardSegs {
		errs = append(errs, seg.retire())
	}
	t.peers, t.boardSegs = nil, nil
	t.waiting = nil
	t.own.g.hdr.closed.Store(1) // senders with frames queued for this rank give up
	errs = append(errs, t.own.remove(), t.own.retire())
	return errors.Join(errs...)
}
