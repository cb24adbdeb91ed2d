package shm

import (
	"errors"
	"fmt"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/wire"
	"github.com/parley-hpc/parley/transport"
)

// Sizes, chosen by measurement (see BENCHMARKS.md): the eager limit is
// where moving a message in two copies through the ring stops beating one
// process_vm_readv plus the rendezvous round trip.
const (
	// DefaultSlots is the ring size of a segment: 4096 slots of 64 bytes.
	DefaultSlots = 4096
	// EagerLimit is the largest message comm sends through the ring.
	EagerLimit = 4 << 10
	// maxDataFrame is the payload of one data frame when large messages
	// move through the ring (no single copy).
	maxDataFrame = 32 << 10
	// flagSkip marks a skip frame: Len counts the slots to skip. It is a
	// transport-private flag bit (comm uses the low bits).
	flagSkip = 1 << 7
	// maxPollFrames bounds the frames one Poll hands on.
	maxPollFrames = 64
)

// ErrCorrupt reports a ring whose contents break the protocol: a peer
// wrote garbage into the segment.
var ErrCorrupt = errors.New("shared-memory ring corrupt")

// Config configures a rank's shared-memory transport.
type Config struct {
	JobID string
	Rank  int
	Slots int // ring size in slots (power of two); 0: DefaultSlots
	// Dir is where segments live ("" : /dev/shm).
	Dir string
	// EagerLimit overrides the default eager limit (tests and tuning).
	EagerLimit int
}

// Transport is one rank's shared-memory endpoint: its own segment, which
// it polls, and the segments of the local peers it sends to.
//
// Send, Poll, Attach, Pending and Close are called by the owner's progress
// loop one at a time (comm holds its engine lock).
type Transport struct {
	cfg   Config
	own   *segment
	tail  uint64 // the consumer's copy of own.ctl.tail
	peers map[int]*peer
	// waiting lists peers with queued frames (their ring was full).
	waiting []*peer
	closed  bool
	hd      transport.Header // scratch for Poll: a local would escape through the Handler
	maxLen  int              // largest frame payload: a quarter of the ring
}

type peer struct {
	rank       int
	pid        int
	seg        *segment
	cachedTail uint64
	queue      opQueue
}

// SegmentName returns the file name of rank's segment in job.
func SegmentName(job string, rank int) string {
	return fmt.Sprintf("parley-%s-%d", job, rank)
}

// Open creates this rank's segment and returns the transport.
func Open(cfg Config) (*Transport, error) {
	if cfg.Slots == 0 {
		cfg.Slots = DefaultSlots
	}
	if cfg.Dir == "" {
		cfg.Dir = "/dev/shm"
	}
	if cfg.EagerLimit <= 0 {
		cfg.EagerLimit = EagerLimit
	}
	seg, err := createSegment(cfg.Dir, SegmentName(cfg.JobID, cfg.Rank), cfg.Slots)
	if err != nil {
		return nil, fmt.Errorf("shm transport: %w", err)
	}
	return &Transport{cfg: cfg, own: seg, peers: make(map[int]*peer), maxLen: cfg.Slots*slotSize/4 - frameDataOff}, nil
}

// Name is the segment's file name, published in the rank's card.
func (t *Transport) Name() string { return t.own.name }

// Bell is the futex word peers ring when they send to this rank; comm
// sleeps on it, and other transports ring it too.
func (t *Transport) Bell() transport.Bell { return transport.NewBell(&t.own.r.ctl.bell) }

// Caps reports what this transport does.
func (t *Transport) Caps() transport.Caps {
	return transport.Caps{Name: "shm", EagerLimit: t.cfg.EagerLimit, MaxFrame: maxDataFrame, SingleCopy: true}
}

// Attach maps the segment of peer rank (process pid) for sending.
func (t *Transport) Attach(rank int, name string, pid int) error {
	if t.peers[rank] != nil {
		return nil
	}
	seg, err := openSegment(t.cfg.Dir, name)
	if err != nil {
		return fmt.Errorf("shm attach to rank %d: %w", rank, err)
	}
	if got := int(seg.r.ctl.pid); got != pid {
		seg.close()
		return fmt.Errorf("shm attach to rank %d: segment %s belongs to pid %d, the rank is pid %d", rank, name, got, pid)
	}
	t.peers[rank] = &peer{rank: rank, pid: pid, seg: seg}
	return nil
}

// Send queues op for peer rank, which must be attached. It completes at
// once when the ring has room (the payload is copied), else when a later
// Poll finds room.
func (t *Transport) Send(rank int, op *transport.SendOp) {
	op.Reset()
	p := t.peers[rank]
	switch {
	case t.closed:
		op.Complete(fmt.Errorf("shm send to rank %d: %w", rank, transport.ErrClosed))
	case p == nil:
		op.Complete(fmt.Errorf("shm send to rank %d: not attached", rank))
	case len(op.Payload) > t.maxPayload():
		op.Complete(fmt.Errorf("shm send to rank %d: frame of %d bytes exceeds the ring's %d", rank, len(op.Payload), t.maxPayload()))
	case !p.queue.empty():
		p.queue.push(op)
	case t.put(p, op):
		op.Complete(nil)
	default:
		p.queue.push(op)
		t.waiting = append(t.waiting, p)
	}
}

// maxPayload is the largest frame payload a peer's ring takes: a quarter
// of the ring, so that a frame always fits beside others.
func (t *Transport) maxPayload() int { return t.maxLen }

// put writes op into p's ring if it has room, and reports whether it did.
func (t *Transport) put(p *peer, op *transport.SendOp) bool {
	r := p.seg.r
	k := slotsFor(len(op.Payload))
	if k > r.nslots/2 {
		return false // cannot happen for frames within maxPayload of equal-size rings
	}
	var pos, pad uint64
	for {
		h := r.ctl.head.Load()
		idx := h & r.mask
		pad = 0
		if idx+k > r.nslots {
			pad = r.nslots - idx
		}
		need := pad + k
		if h+need > p.cachedTail+r.nslots {
			p.cachedTail = r.ctl.tail.Load()
			if h+need > p.cachedTail+r.nslots {
				return false
			}
		}
		if r.ctl.head.CompareAndSwap(h, h+need) {
			pos = h
			break
		}
	}
	if pad > 0 {
		// A skip frame fills the ring's end; the frame starts at slot 0.
		skip := r.frame(pos&r.mask, 1)
		wire.PutHeader(skip[frameHdrOff:], &transport.Header{Flags: flagSkip, Len: uint32(pad)})
		r.seq(pos & r.mask).Store(pos + 1)
		pos += pad
	}
	i := pos & r.mask
	f := r.frame(i, k)
	wire.PutHeader(f[frameHdrOff:], &op.Header)
	copy(f[frameDataOff:], op.Payload)
	r.seq(i).Store(pos + 1) // publishes the frame
	if r.ctl.bell.Load() != 0 && r.ctl.bell.Swap(0) != 0 {
		linux.FutexWake(&r.ctl.bell, 1)
	}
	return true
}

// Poll hands the frames waiting in this rank's ring to h and retries
// frames queued for full rings. It returns the number of frames handled.
func (t *Transport) Poll(h transport.Handler) (int, error) {
	n := 0
	if len(t.waiting) > 0 {
		n += t.flush()
	}
	r := t.own.r
	hd := &t.hd
	for n < maxPollFrames {
		pos := t.tail
		i := pos & r.mask
		if r.seq(i).Load() != pos+1 {
			break
		}
		f := r.frame(i, 1)
		if _, err := wire.ParseHeader(f[frameHdrOff:], hd); err != nil {
			return n, fmt.Errorf("%w: slot %d: %v", ErrCorrupt, i, err)
		}
		var k uint64
		if hd.Flags&flagSkip != 0 {
			k = uint64(hd.Len)
			if k == 0 || i+k != r.nslots {
				return n, fmt.Errorf("%w: skip of %d slots at slot %d of %d", ErrCorrupt, k, i, r.nslots)
			}
		} else {
			if int(hd.Len) > t.maxPayload() {
				return n, fmt.Errorf("%w: frame of %d bytes at slot %d (limit %d)", ErrCorrupt, hd.Len, i, t.maxPayload())
			}
			k = slotsFor(int(hd.Len))
			if i+k > r.nslots {
				return n, fmt.Errorf("%w: frame of %d slots at slot %d runs past the ring's %d", ErrCorrupt, k, i, r.nslots)
			}
			payload := r.frame(i, k)[frameDataOff : frameDataOff+int(hd.Len)]
			if hd.Flags&transport.FlagDirect != 0 {
				dst := h.Destination(hd)
				if len(dst) == len(payload) {
					copy(dst, payload)
				} else {
					dst = nil
				}
				h.Deliver(hd, dst)
			} else {
				h.Deliver(hd, payload)
			}
			n++
		}
		for j := i; j < i+k; j++ {
			r.clearSeq(j)
		}
		t.tail = pos + k
	}
	if t.tail != r.ctl.tail.Load() {
		// One store per poll gives every consumed slot back.
		r.ctl.tail.Store(t.tail)
	}
	return n, nil
}

// flush retries queued frames in order; it returns how many went out.
func (t *Transport) flush() int {
	n := 0
	keep := t.waiting[:0]
	for _, p := range t.waiting {
		for op := p.queue.head; op != nil; op = p.queue.head {
			if !t.put(p, op) {
				break
			}
			p.queue.pop()
			op.Complete(nil)
			n++
		}
		if !p.queue.empty() {
			keep = append(keep, p)
		}
	}
	for i := len(keep); i < len(t.waiting); i++ {
		t.waiting[i] = nil
	}
	t.waiting = keep
	return n
}

// Pending reports whether frames wait for room in a peer's ring.
func (t *Transport) Pending() bool { return len(t.waiting) > 0 }

// Arm is part of comm's transport contract; peers ring the bell directly,
// so there is nothing to arm.
func (t *Transport) Arm() {}

// Close unmaps every segment and removes this rank's own file. Queued
// frames fail with transport.ErrClosed. It is safe to call twice.
func (t *Transport) Close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	var errs []error
	for _, p := range t.peers {
		for op := p.queue.pop(); op != nil; op = p.queue.pop() {
			op.Complete(fmt.Errorf("shm send to rank %d: %w", p.rank, transport.ErrClosed))
		}
		errs = append(errs, p.seg.close())
	}
	t.peers = nil
	t.waiting = nil
	errs = append(errs, t.own.remove(), t.own.close())
	return errors.Join(errs...)
}

// opQueue is a FIFO of SendOps linked through SendOp.Next.
type opQueue struct {
	head, tail *transport.SendOp
}

func (q *opQueue) empty() bool { return q.head == nil }

func (q *opQueue) push(op *transport.SendOp) {
	op.Next = nil
	if q.tail == nil {
		q.head = op
	} else {
		q.tail.Next = op
	}
	q.tail = op
}

func (q *opQueue) pop() *transport.SendOp {
	op := q.head
	if op == nil {
		return nil
	}
	q.head = op.Next
	if q.head == nil {
		q.tail = nil
	}
	op.Next = nil
	return op
}
