package transport

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/internal/wire"
)

// Header is the frame header every transport carries (see internal/wire
// for its layout).
type Header = wire.Header

// HeaderLen is the encoded size of a Header.
const HeaderLen = wire.HeaderLen

// FlagDirect marks a frame whose payload the receiving transport places in
// a buffer the Handler names (Handler.Destination).
const FlagDirect = wire.FlagDirect

// Sentinel errors. Transports wrap them with the peer and address involved;
// callers test with errors.Is.
var (
	ErrClosed       = errors.New("transport closed")
	ErrPeerLost     = errors.New("peer lost")
	ErrNotSupported = linux.ErrNotSupported
	ErrAuth         = wire.ErrAuth
	ErrProtocol     = errors.New("protocol violation")
	ErrNoRoute      = errors.New("no transport reaches the rank")
)

// PeerError reports a failure of the link to one peer rank.
type PeerError struct {
	Rank int
	Addr string // the peer's address, if it has one
	Op   string // what was being done: "read", "write", "dial", ...
	Err  error
}

func (e *PeerError) Error() string {
	s := fmt.Sprintf("%s rank %d", e.Op, e.Rank)
	if e.Addr != "" {
		s += " at " + e.Addr
	}
	return s + ": " + e.Err.Error()
}

func (e *PeerError) Unwrap() error { return e.Err }

// Is reports whether target is ErrPeerLost: every PeerError means the link
// to that peer is gone.
func (e *PeerError) Is(target error) bool { return target == ErrPeerLost }

// Caps describe what a transport does, so that comm can choose protocols.
// They must match what is implemented: comm relies on them, and the
// conformance suite (transporttest) checks them.
type Caps struct {
	Name string
	// EagerLimit is the largest payload comm should send eagerly (in one
	// frame, buffered at the receiver if unmatched); larger messages use
	// rendezvous.
	EagerLimit int
	// MaxFrame is the largest payload one frame may carry.
	MaxFrame int
	// RemoteRead says the transport is a RemoteReader: a receiver can read
	// a large payload straight out of the sender's memory.
	RemoteRead bool
	// ChainLimit is the largest payload comm sends eagerly as a chain: a
	// head frame, then FlagDirect pieces of at most MaxFrame, which the
	// link delivers in order with no other frame between them (comm sends
	// them under one hold of its lock). 0: no chains.
	ChainLimit int
	// ReadFirst says that where the receiver can read a message out of
	// the sender's memory (RemoteRead), that beats a chain: comm sends
	// chains only over links where it cannot read (shared memory, where
	// the node agent measured so: shm.MeasureMedium).
	ReadFirst bool
	// Registers says memory must be registered with the adapter before a
	// peer can read it (RDMA): Expose costs a registration, which the
	// transport caches, and a descriptor names a key the peer was given.
	Registers bool
	// Woken says the transport rings the rank's Bell by itself when a frame
	// arrives (shared memory: the sender rings it); otherwise it is an
	// Armer and must be armed before the rank sleeps.
	Woken bool
	// WholeFrames says a frame arrives whole or not at all, and that a
	// sender's death is found outside the transport (by the node agent):
	// shared memory, where a frame is published in one store.
	WholeFrames bool
}

// A Transport moves frames between this rank and its peers, one link per
// peer. comm's engine is its only user: it calls every method with its
// engine lock held, one call at a time, except where a method says
// otherwise.
type Transport interface {
	// Caps reports what the transport does.
	Caps() Caps
	// Addr is the address peers reach this rank at, published in the
	// rank's card.
	Addr() string
	// Reach prepares the link to peer (a world rank) from the address it
	// published and its process id. comm calls it once, before the first
	// Send to peer; an error means peer cannot be reached this way.
	Reach(peer int, addr string, pid int) error
	// Send queues op for peer, which Reach accepted. The transport owns
	// op.Payload until op completes (Complete), at once or in a later
	// Poll; a failed link completes it with an error wrapping ErrPeerLost.
	Send(peer int, op *SendOp)
	// Poll hands arrived frames to h and pushes queued frames forward. It
	// returns the number of events handled (frames, completed writes, or
	// bytes moved of a large frame), and the first link failure (a
	// *PeerError naming the peer); other links keep working.
	Poll(h Handler) (int, error)
	// Pending reports whether frames wait to go out (a full ring, a full
	// socket, a link not up yet).
	Pending() bool
	// Close releases the transport: queued frames fail with ErrClosed.
	// It is safe to call twice.
	Close() error
}

// Optional abilities, each a small interface of its own, so that
// Transport stays narrow (as wireguard-go's conn.Bind does).

// A DirectSender writes a small frame at once when it can, without a
// SendOp: the fast path of small messages.
type DirectSender interface {
	// TrySend writes the frame to peer at once and reports whether it did;
	// if not (no room, frames queued before it), the caller uses Send.
	TrySend(peer int, h *Header, payload []byte) bool
}

// A Peeker tells cheaply whether Poll could find work.
type Peeker interface {
	// MayPoll reports, without the engine lock and writing nothing, whether
	// Poll could find work; true when unsure. It may be called at any time,
	// concurrently with every other method, Close included.
	MayPoll() bool
}

// An Armer must be told when the rank is about to sleep, so that an
// arrival rings the Bell (transports whose Caps are not Woken).
type Armer interface {
	Arm()
}

// A Batcher holds back the writes of frames sent between BeginBatch and
// EndBatch, and makes them at EndBatch, where one system call can carry
// many: a window of small sends started together (comm.Startall) then
// costs a write or two, not one each. Both are called under the engine's
// lock, and nothing else of the transport's runs between them.
type Batcher interface {
	BeginBatch()
	// EndBatch writes what the batch held back, as Send would have.
	EndBatch()
}

// A RemoteReader lets a receiver read a large payload straight out of the
// sender's memory (Caps.RemoteRead): the sender publishes a descriptor of
// its buffer in the rendezvous request, the receiver reads, then tells the
// sender it is done.
type RemoteReader interface {
	// Expose appends to dst the descriptor of buf that a peer needs to
	// read it. buf stays exposed until Unexpose.
	Expose(dst, buf []byte) ([]byte, error)
	// Unexpose ends the exposure of the buffer desc describes.
	Unexpose(desc []byte)
	// Read copies len(dst) bytes of peer's buffer that desc describes into
	// dst. It blocks for the copy, so comm calls it without its engine
	// lock, concurrently with the other methods; it wraps ErrNotSupported
	// when the kernel refuses (comm then falls back to data frames).
	Read(peer int, dst, desc []byte) error
}

// A Handler receives the frames a transport's Poll finds. from is the
// world rank at the other end of the link the frame came on, which the
// transport knows independently of what the frame claims (its Source).
type Handler interface {
	// Deliver is called for each arrived frame. payload is valid only for
	// the duration of the call (it may point into a shared ring). For a
	// FlagDirect frame, payload is the buffer Destination named, or nil if
	// it named none (the payload was discarded).
	Deliver(from int, h *Header, payload []byte)
	// Destination is called for a frame with FlagDirect before its payload
	// is placed; it returns a buffer of exactly h.Len bytes, or nil to
	// discard the payload.
	Destination(from int, h *Header) []byte
}

// A Satisfier is a Handler that can tell, between frames, that what its
// caller is waiting for has arrived. A transport may then stop handing on
// frames and leave the rest to the next Poll: a waiter that has its
// message then returns without first looking at the next slot of a
// shared-memory ring, which measured as a cache miss on its way out (see
// comm's engine.Satisfied; TestPollStopsWhenSatisfied).
type Satisfier interface {
	Satisfied() bool
}

// A SendOp is one frame queued on a transport. The transport owns Payload
// until the op completes; comm owns the op. An op is touched only by the
// goroutine that drives the transport (comm holds its engine lock), so its
// state is a plain field: Complete costs no atomic instruction, which on
// the shared-memory fast path matters (each one drains the store buffer).
type SendOp struct {
	Header  Header
	Payload []byte

	state uint32 // opPending, opDone or opFailed

	// Owner, if set, is told when the op completes. The transport calls it
	// from Send or Poll, so it runs in the owner's progress loop.
	Owner Completer

	// Scratch for the transport that holds the op.
	Off     int     // bytes of the encoded header and Payload already sent
	Next    *SendOp // intrusive queue link
	Scratch []byte  // a transport's own form of the payload (compressed, say)
	TState  uint8   // a transport's own per-op state
}

const (
	opPending uint32 = iota
	opDone
	opFailed
)

// Reset prepares op to be queued again.
func (op *SendOp) Reset() {
	op.state = opPending
	op.Off = 0
	op.Next = nil
	op.Scratch = nil
	op.TState = 0
}

// Done reports whether the transport has finished with the op.
func (op *SendOp) Done() bool { return op.state != opPending }

// Failed reports whether the op completed with an error (which its Owner
// was given).
func (op *SendOp) Failed() bool { return op.state == opFailed }

// A Completer is told when a SendOp it owns completes.
type Completer interface {
	SendDone(op *SendOp, err error)
}

// Complete marks op done (err == nil) or failed, and tells its Owner.
// Transports call it.
func (op *SendOp) Complete(err error) {
	if err != nil {
		op.state = opFailed
	} else {
		op.state = opDone
	}
	if op.Owner != nil {
		op.Owner.SendDone(op, err)
	}
}

// A Bell is the word a rank with nothing to do sleeps on. Anything that
// makes work for the rank (a frame, a new connection, a cancellation) rings
// it. The word is a futex: 1 while a sleeper is armed, 0 otherwise.
type Bell struct{ w *atomic.Uint32 }

// NewBell returns a Bell over w, which may live in shared memory.
func NewBell(w *atomic.Uint32) Bell { return Bell{w} }

// Arm announces that the caller is about to sleep. The caller must check
// for work once more after Arm and before Sleep, so that a ring between its
// last check and Arm is not lost.
func (b Bell) Arm() { b.w.Store(1) }

// Disarm withdraws Arm when the caller found work after all.
func (b Bell) Disarm() { b.w.Store(0) }

// Sleep waits until the bell rings or timeout passes.
func (b Bell) Sleep(timeout time.Duration) { linux.FutexWait(b.w, 1, timeout) }

// Armed reports whether someone sleeps or is about to.
func (b Bell) Armed() bool { return b.w.Load() != 0 }

// Ring wakes the sleeper, if there is one. It costs one atomic load when
// nobody sleeps.
func (b Bell) Ring() {
	if b.w.Load() != 0 && b.w.Swap(0) != 0 {
		linux.FutexWake(b.w, 1)
	}
}

// OpQueue is a FIFO of SendOps linked through SendOp.Next, for frames a
// transport cannot write yet. The zero value is an empty queue.
type OpQueue struct {
	head, tail *SendOp
	n          int
}

// Empty reports whether the queue holds no op.
func (q *OpQueue) Empty() bool { return q.head == nil }

// Len is the number of ops queued.
func (q *OpQueue) Len() int { return q.n }

// Head is the oldest op, or nil; it stays queued.
func (q *OpQueue) Head() *SendOp { return q.head }

// Push queues op last.
func (q *OpQueue) Push(op *SendOp) {
	op.Next = nil
	if q.tail == nil {
		q.head = op
	} else {
		q.tail.Next = op
	}
	q.tail = op
	q.n++
}

// Pop removes and returns the oldest op, or nil.
func (q *OpQueue) Pop() *SendOp {
	op := q.head
	if op == nil {
		return nil
	}
	q.head = op.Next
	if q.head == nil {
		q.tail = nil
	}
	op.Next = nil
	q.n--
	return op
}
