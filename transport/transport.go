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
// They must match what is implemented: comm relies on them.
type Caps struct {
	Name string
	// EagerLimit is the largest payload comm should send eagerly (in one
	// frame, buffered at the receiver if unmatched); larger messages use
	// rendezvous.
	EagerLimit int
	// MaxFrame is the largest payload one frame may carry.
	MaxFrame int
	// SingleCopy says the receiver can read a large payload straight from
	// the sender's memory (see the shm transport's ReadRemote).
	SingleCopy bool
}

// A Handler receives the frames a transport's Poll finds.
type Handler interface {
	// Deliver is called for each arrived frame. payload is valid only for
	// the duration of the call (it may point into a shared ring).
	Deliver(h *Header, payload []byte)
	// Destination is called for a frame with FlagDirect before its payload
	// is placed; it returns a buffer of exactly h.Len bytes, or nil to
	// discard the payload. Deliver follows with that buffer as payload.
	Destination(h *Header) []byte
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
