package comm

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/shm"
	"github.com/parley-hpc/parley/transport/tcp"
)

// Frame kinds of the point-to-point protocol (wire.Header.Kind).
const (
	kindEager uint8 = 1 + iota // the whole message: Context, Source, Tag, payload
	kindRTS                    // rendezvous request: Aux = size, Cookie = sender's request
	kindCTS                    // clear to send: Cookie = sender's request, Aux = receiver's
	kindData                   // FlagDirect data: Cookie = receiver's request, Aux = offset
	kindFin                    // receiver is done with the sender's buffer: Cookie = sender's request
)

// flagSingleCopy on an RTS: the payload holds the address of the sender's
// buffer, for the receiver to read it in one copy.
const flagSingleCopy uint8 = 1 << 1

// How a rank reaches a peer.
const (
	viaNone uint8 = iota
	viaSelf
	viaTCP
	viaShm
)

var viaNames = [...]string{viaNone: "none", viaSelf: "self", viaTCP: "tcp", viaShm: "shm"}

// selfEagerLimit: sends to self up to this size are copied at once; larger
// ones wait, uncopied, for the matching receive.
const selfEagerLimit = 64 << 10

type route struct {
	ready      bool
	via        uint8
	eager      int // eager limit of the transport
	maxFrame   int // largest direct frame
	singleCopy bool
	addr       string // TCP address
	pid        int    // for single copy
	host       string
	err        error
}

// engine is one rank's runtime: transports, matching, progress. One engine
// serves the world and every communicator derived from it.
//
// Locking: mu guards matching queues, routes, cookies, the free lists and
// the transports' own state (transports are called only under mu). It is
// held briefly, never across a sleep or a blocking system call. genericMu
// serializes the poll functions of generic requests; it is taken before mu,
// never after.
type engine struct {
	rank, size int
	node       string
	jobID      string
	secret     []byte
	log        *zap.Logger
	kv         kvStore

	mu         spinMutex
	queues     map[uint32]*matchQueue
	lastCtx    uint32
	lastQ      *matchQueue
	routes     []route
	cookies    map[uint64]*Request
	nextCookie uint64
	spares     [4]atomic.Pointer[Request] // see newRequest
	// sent is the request of every program's send that completed as it
	// started (its frame went straight into the peer's ring): a finished
	// send has nothing of its own to report (its status is zero, it cannot
	// be cancelled, nothing in it changes again), so sharing one spares an
	// allocation per message, which at millions of messages a second would
	// keep the garbage collector running.
	sent       *Request
	slab       []Request                  // see requestSlab
	freeOps    freeList[transport.SendOp] // see getOp
	freeMsgs   freeList[message]          // see newMessageLocked
	released   freeList[Request]          // given back by the program (Request.Release)
	pool       bufPool
	nextCtx    uint32 // next free context id, a multiple of ctxStride
	sleeping   bool   // a goroutine sleeps on the bell
	flushing   bool   // the flusher goroutine runs (startFlusherLocked)
	stopFlush  bool   // finalizing: start no flusher
	flushWG    sync.WaitGroup
	vacancy    chan struct{}
	finalizing bool
	cause      error // why the world was cancelled
	dead       atomic.Bool

	genericMu sync.Mutex
	finMu     sync.Mutex // serializes finalize
	fin       atomic.Bool

	bellWord atomic.Uint32 // the bell's word when there is no shared segment
	bell     transport.Bell
	tcp      *tcp.Transport
	shm      *shm.Transport // nil: no shared memory
	forceTCP bool
	// noSingleCopy turns process_vm_readv off (PARLEY_DEBUG=no_cma=1), to
	// test and measure the pipelined copy through the rings.
	noSingleCopy bool

	// Waiting policy.
	spinFor  time.Duration
	yieldFor time.Duration
	politely bool // oversubscribed: give the CPU away while waiting

	blocked blockedRecord
}

func (e *engine) queue(ctx uint32) *matchQueue {
	if ctx == e.lastCtx && e.lastQ != nil {
		return e.lastQ
	}
	q := e.queues[ctx]
	if q == nil {
		q = &matchQueue{}
		e.queues[ctx] = q
	}
	e.lastCtx, e.lastQ = ctx, q
	return q
}

// routeLocked returns how to reach world rank dest, resolving it from the
// peer's card on first use.
func (e *engine) routeLocked(dest int) *route {
	rt := &e.routes[dest]
	if rt.ready {
		return rt
	}
	rt.ready = true
	if dest == e.rank {
		rt.via, rt.eager, rt.maxFrame = viaSelf, selfEagerLimit, 1<<62
		return rt
	}
	raw, err := e.kv.Get(bootstrap.CardKey(dest))
	if err != nil {
		rt.err = fmt.Errorf("no card for rank %d: %w", dest, err)
		return rt
	}
	card, err := bootstrap.ParseCard(raw)
	if err != nil {
		rt.err = fmt.Errorf("card of rank %d: %w", dest, err)
		return rt
	}
	rt.host, rt.pid = card.Hostname, card.Pid
	if e.shm != nil && !e.forceTCP && card.Node == e.node && card.Shm != "" {
		if err := e.shm.Attach(dest, card.Shm, card.Pid); err == nil {
			caps := e.shm.Caps()
			rt.via, rt.eager, rt.maxFrame, rt.singleCopy = viaShm, caps.EagerLimit, caps.MaxFrame, caps.SingleCopy && !e.noSingleCopy
			e.log.Info("transport chosen", zap.Int("peer", dest), zap.String("via", "shm"), zap.String("segment", card.Shm))
			return rt
		} else {
			e.log.Warn("shared memory to a rank on this host failed; using TCP", zap.Int("peer", dest), zap.Error(err))
		}
	}
	if e.tcp == nil || card.TCP == "" {
		rt.err = fmt.Errorf("rank %d on host %s is unreachable: no common transport", dest, card.Hostname)
		return rt
	}
	caps := e.tcp.Caps()
	rt.via, rt.eager, rt.maxFrame, rt.addr = viaTCP, caps.EagerLimit, caps.MaxFrame, card.TCP
	e.log.Info("transport chosen", zap.Int("peer", dest), zap.String("via", "tcp"), zap.String("addr", card.TCP))
	return rt
}

// sendFrameLocked queues op on dest's transport.
func (e *engine) sendFrameLocked(rt *route, dest int, op *transport.SendOp) {
	switch rt.via {
	case viaTCP:
		e.tcp.Send(dest, rt.addr, op)
	case viaShm:
		e.shm.Send(dest, op)
	default:
		op.Complete(fmt.Errorf("rank %d: %w", dest, ErrNotSupported))
	}
	// The op may already be done and back in the pool: ask the
	// transports, not the op.
	if !e.flushing && e.pendingLocked() {
		e.startFlusherLocked()
	}
}

// pendingLocked reports whether frames wait in a transport: a full ring,
// a full socket, a connection not made yet.
func (e *engine) pendingLocked() bool {
	return (e.shm != nil && e.shm.Pending()) || (e.tcp != nil && e.tcp.Pending())
}

// flushInterval is how often the flusher retries frames that wait.
const flushInterval = 100 * time.Microsecond

// startFlusherLocked starts the goroutine that pushes queued frames out
// while no goroutine of the program is in the runtime. Without it, a frame
// queued behind a full ring (an acknowledgement a peer waits for, say)
// would wait until the program next calls the runtime, perhaps after a
// long computation, or never if it is done. It runs only while frames
// wait, and polls every flushInterval.
func (e *engine) startFlusherLocked() {
	if e.stopFlush {
		return
	}
	e.flushing = true
	e.flushWG.Add(1)
	go func() {
		defer e.flushWG.Done()
		for {
			time.Sleep(flushInterval)
			e.mu.Lock()
			e.progressLocked()
			if !e.pendingLocked() || e.stopFlush {
				e.flushing = false
				e.mu.Unlock()
				return
			}
			e.mu.Unlock()
		}
	}()
}

// --- requests and completion ---

// newRequest returns a request for an operation on c. Blocking calls
// (internal) reuse the engine's spare request, so that a Send or Recv that
// completes at once allocates nothing; requests handed to the program are
// reused only when the program gives them back (Request.Release).
func (e *engine) newRequest(c *Comm, internal bool) *Request {
	if internal {
		for i := range e.spares {
			if r := e.spares[i].Swap(nil); r != nil {
				r.c = c
				return r
			}
		}
	} else if r := e.released.get(); r != nil {
		r.e, r.c = e, c
		return r
	}
	if len(e.slab) == 0 {
		e.slab = make([]Request, requestSlab)
	}
	r := &e.slab[0]
	e.slab = e.slab[1:]
	r.e, r.c, r.internal = e, c, internal
	return r
}

// getOp returns a frame op owned by o, from the engine's pool. Ops are
// internal (a program never holds one), so they are reused.
func (e *engine) getOp(o transport.Completer) *transport.SendOp {
	op := e.freeOps.get()
	if op == nil {
		op = new(transport.SendOp)
	}
	op.Owner = o
	return op
}

// putOp gives a finished op back to the pool, dropping its references.
func (e *engine) putOp(op *transport.SendOp) {
	*op = transport.SendOp{}
	e.freeOps.put(op)
}

// freeList keeps up to freeListMax finished objects of the engine's own
// (frame ops, unexpected-message records, released requests) for reuse.
// Guarded by mu.
type freeList[T any] struct{ items []*T }

const freeListMax = 256

// get returns a kept object, or nil.
func (l *freeList[T]) get() *T {
	n := len(l.items)
	if n == 0 {
		return nil
	}
	x := l.items[n-1]
	l.items = l.items[:n-1]
	return x
}

// put keeps x, unless the list is full.
func (l *freeList[T]) put(x *T) {
	if len(l.items) < freeListMax {
		l.items = append(l.items, x)
	}
}

// SendDone recycles the engine's own control frames (FIN, CTS).
func (e *engine) SendDone(op *transport.SendOp, err error) { e.putOp(op) }

// requestSlab is how many requests the engine allocates at once. Requests
// are reused only when the program releases them (a program may hold one
// after Wait); carving them from a slab only spares the allocator a call
// per request. Guarded by mu.
const requestSlab = 32

// finish waits for a blocking call's request and recycles it. A request
// that failed is not recycled: a transport may still hold its frame.
func (e *engine) finish(r *Request) (Status, error) {
	e.wait(r)
	st, err := r.status, r.err
	if err == nil && r.internal {
		// Back to a spare slot without an atomic read-modify-write: right
		// after a send, one would wait for the frame's ring line to cross
		// to the peer's core (putSpare).
		*r = Request{e: e, internal: true}
		for i := range e.spares {
			if e.spares[i].Load() == nil {
				putSpare(&e.spares[i], r)
				break
			}
		}
	}
	return st, err
}

func (e *engine) completeLocked(r *Request, err error) {
	if r.done.Load() {
		return
	}
	if err != nil && r.err == nil {
		r.err = err
	}
	// Nothing of r may be touched once done is set: its waiter may return
	// and reuse it (finish) at once.
	ch := r.ch
	markDone(&r.done)
	if ch != nil {
		close(ch)
	}
	if e.sleeping {
		// The sleeper may be waiting for this very request (completed here
		// by another goroutine, not by a frame that rang the bell).
		e.bell.Ring()
	}
}

func (e *engine) opError(r *Request, op string, err error) error {
	var oe *OpError
	if errors.As(err, &oe) {
		return err
	}
	peer := noPeer
	tag := noPeer
	if r.c != nil {
		switch r.kind {
		case reqRecv:
			peer, tag = r.c.commRank(int(r.src)), int(r.tag)
		default:
			peer, tag = r.c.commRank(int(r.dest)), int(r.tag)
		}
		return &OpError{Op: op, Comm: r.c.name(), Rank: r.c.rank, Peer: peer, Tag: tag, Err: err}
	}
	return &OpError{Op: op, Comm: "world", Rank: e.rank, Peer: peer, Tag: tag, Err: err}
}

// --- sending ---

// isend starts a send of buf to world rank dest.
func (e *engine) isend(c *Comm, buf []byte, dest int, tag int, ctx uint32, sync, internal bool) *Request {
	e.mu.Lock()
	r := e.isendLocked(c, buf, dest, tag, ctx, sync, internal)
	e.mu.Unlock()
	return r
}

// sendrecv starts a receive and a send under one acquisition of the lock
// (Sendrecv, and the exchanges of every collective algorithm).
func (e *engine) sendrecv(c *Comm, sbuf []byte, dest, stag int, rbuf []byte, src, rtag int, ctx uint32) (sr, rr *Request) {
	e.mu.Lock()
	rr = e.irecvLocked(c, rbuf, src, rtag, ctx, true)
	sr = e.isendLocked(c, sbuf, dest, stag, ctx, false, true)
	e.mu.Unlock()
	return sr, rr
}

func (e *engine) isendLocked(c *Comm, buf []byte, dest int, tag int, ctx uint32, sync, internal bool) *Request {
	var r *Request
	if internal {
		// Before the frame is written: taking a spare is an atomic swap,
		// which after the write would wait for the frame's cache line to
		// leave for the peer's core.
		r = e.newRequest(c, true)
	}
	var rt *route
	if e.cause == nil {
		rt = e.routeLocked(dest)
		if rt.err == nil && rt.via == viaShm && !sync && len(buf) <= rt.eager {
			// The fast path of small messages on this host: the frame
			// goes straight into the peer's ring, and the send is
			// complete.
			h := transport.Header{Kind: kindEager, Context: ctx, Source: uint32(e.rank), Tag: int32(tag), Len: uint32(len(buf))}
			if e.shm.TrySend(dest, &h, buf) {
				if !internal {
					return e.sent
				}
				r.kind = reqSend
				markDone(&r.done)
				return r
			}
		}
	}
	if r == nil {
		r = e.newRequest(c, false)
	}
	r.dest, r.tag, r.ctx = int32(dest), int32(tag), ctx
	if e.cause != nil {
		e.completeLocked(r, e.opError(r, "send", e.cause))
		return r
	}
	if rt.err != nil {
		e.completeLocked(r, e.opError(r, "send", rt.err))
		return r
	}
	r.buf = buf
	if rt.via == viaSelf {
		e.sendSelfLocked(r, sync)
		return r
	}
	op := e.getOp(r)
	op.Header = transport.Header{Context: ctx, Source: uint32(e.rank), Tag: int32(tag)}
	r.op = op
	if !sync && len(buf) <= rt.eager {
		r.kind = reqSend
		op.Header.Kind = kindEager
		op.Header.Len = uint32(len(buf))
		op.Payload = buf
		e.sendFrameLocked(rt, dest, op)
		return r
	}
	// Rendezvous: announce the message; the data moves once it matches.
	r.kind = reqSendRndv
	r.rv = &rendezvous{}
	r.rv.cookie = e.newCookieLocked(r)
	h := &op.Header
	h.Kind, h.Aux, h.Cookie = kindRTS, uint64(len(buf)), r.rv.cookie
	if rt.singleCopy && len(buf) > 0 {
		h.Flags = flagSingleCopy
		putAddr(r.rv.rts[:], buf)
		op.Payload = r.rv.rts[:]
		h.Len = uint32(len(r.rv.rts))
	}
	e.sendFrameLocked(rt, dest, op)
	return r
}

func (e *engine) newCookieLocked(r *Request) uint64 {
	e.nextCookie++
	e.cookies[e.nextCookie] = r
	return e.nextCookie
}

// sendSelfLocked delivers a send to this rank.
func (e *engine) sendSelfLocked(r *Request, sync bool) {
	r.kind = reqSend
	q := e.queue(r.ctx)
	src := int32(e.rank)
	if rr := q.matchPosted(src, r.tag); rr != nil {
		e.finishRecvLocked(rr, src, r.tag, r.buf)
		e.completeLocked(r, nil)
		return
	}
	m := e.newMessageLocked(src, r.tag, len(r.buf))
	if !sync && len(r.buf) <= selfEagerLimit {
		e.holdPayloadLocked(m, r.buf)
		e.completeLocked(r, nil)
	} else {
		m.selfReq = r
	}
	q.addUnexpected(m)
}

// --- receiving ---

func (e *engine) irecv(c *Comm, buf []byte, src, tag int, ctx uint32, internal bool) *Request {
	e.mu.Lock()
	r := e.irecvLocked(c, buf, src, tag, ctx, internal)
	e.mu.Unlock()
	return r
}

func (e *engine) irecvLocked(c *Comm, buf []byte, src, tag int, ctx uint32, internal bool) *Request {
	r := e.newRequest(c, internal)
	r.kind = reqRecv
	r.buf, r.src, r.tag, r.ctx = buf, int32(src), int32(tag), ctx
	if e.cause != nil {
		e.completeLocked(r, e.opError(r, "recv", e.cause))
		return r
	}
	q := e.queue(ctx)
	if m := q.findUnexpected(r.src, r.tag); m != nil {
		q.removeUnexpected(m)
		e.matchUnexpectedLocked(r, m)
		e.freeMessageLocked(m)
	} else {
		q.post(r)
	}
	return r
}

// matchUnexpectedLocked completes (or starts) receive r with the waiting
// message m.
func (e *engine) matchUnexpectedLocked(r *Request, m *message) {
	switch {
	case m.eager:
		e.finishRecvLocked(r, m.src, m.tag, m.data)
	case m.selfReq != nil:
		e.finishRecvLocked(r, m.src, m.tag, m.selfReq.buf)
		e.completeLocked(m.selfReq, nil)
	default:
		e.startRndvRecvLocked(r, m.src, m.tag, m.size, m.cookie, m.addr, m.singleCopy)
	}
}

// finishRecvLocked copies an eager payload into r and completes it.
func (e *engine) finishRecvLocked(r *Request, src, tag int32, payload []byte) {
	r.status = Status{Source: r.c.commRank(int(src)), Tag: int(tag), Count: len(payload)}
	if len(payload) > len(r.buf) {
		e.completeLocked(r, e.opError(r, "recv", &TruncatedError{Message: len(payload), Buffer: len(r.buf)}))
		return
	}
	copy(r.buf, payload)
	e.completeLocked(r, nil)
}

// startRndvRecvLocked moves a rendezvous message into r: in one copy from
// the sender's memory where the transport allows, else by asking the
// sender for data frames.
func (e *engine) startRndvRecvLocked(r *Request, src, tag int32, size int, cookie, addr uint64, singleCopy bool) {
	r.status = Status{Source: r.c.commRank(int(src)), Tag: int(tag), Count: size}
	rt := e.routeLocked(int(src))
	if rt.err != nil {
		e.completeLocked(r, e.opError(r, "recv", rt.err))
		return
	}
	if size > len(r.buf) {
		e.sendControlLocked(rt, int(src), kindFin, cookie, 0)
		e.completeLocked(r, e.opError(r, "recv", &TruncatedError{Message: size, Buffer: len(r.buf)}))
		return
	}
	if size == 0 {
		e.sendControlLocked(rt, int(src), kindFin, cookie, 0)
		e.completeLocked(r, nil)
		return
	}
	if singleCopy && !rt.singleCopy {
		singleCopy = false
	}
	if singleCopy {
		err := readRemote(r.buf[:size], rt.pid, uintptr(addr))
		if err == nil {
			e.sendControlLocked(rt, int(src), kindFin, cookie, 0)
			e.completeLocked(r, nil)
			return
		}
		if !errors.Is(err, ErrNotSupported) {
			e.completeLocked(r, e.opError(r, "recv", err))
			e.sendControlLocked(rt, int(src), kindFin, cookie, 0)
			return
		}
		e.log.Info("single-copy transfer refused by the kernel; using copies through the ring",
			zap.Int("peer", int(src)), zap.Error(err))
		rt.singleCopy = false
	}
	r.rv = &rendezvous{}
	r.rv.cookie = e.newCookieLocked(r)
	e.sendControlLocked(rt, int(src), kindCTS, cookie, r.rv.cookie)
}

// sendControlLocked sends a payload-less protocol frame. Control frames are
// fire-and-forget: their op is owned by the engine until done.
func (e *engine) sendControlLocked(rt *route, dest int, kind uint8, cookie, aux uint64) {
	op := e.getOp(e)
	op.Header = transport.Header{Kind: kind, Source: uint32(e.rank), Cookie: cookie, Aux: aux}
	e.sendFrameLocked(rt, dest, op)
}

// --- transport.Handler: called by transports' Poll, under mu ---

// Deliver handles one arrived frame.
func (e *engine) Deliver(h *transport.Header, payload []byte) {
	if int(h.Source) >= e.size {
		e.log.Warn("dropped a frame from a rank outside the world", zap.Uint32("source", h.Source))
		return
	}
	switch h.Kind {
	case kindEager, kindRTS:
		e.deliverMessageLocked(h, payload)
	case kindCTS:
		r := e.cookies[h.Cookie]
		if r == nil || r.kind != reqSendRndv {
			e.log.Warn("dropped a clear-to-send for no known send", zap.Uint32("source", h.Source))
			return
		}
		delete(e.cookies, h.Cookie)
		e.sendDataLocked(r, h.Aux)
	case kindData:
		r := e.cookies[h.Cookie]
		if r == nil {
			return
		}
		r.rv.got += len(payload)
		if r.rv.got >= r.status.Count {
			delete(e.cookies, h.Cookie)
			e.completeLocked(r, nil)
		}
	case kindFin:
		r := e.cookies[h.Cookie]
		if r == nil {
			return
		}
		delete(e.cookies, h.Cookie)
		e.completeLocked(r, nil)
	default:
		e.log.Warn("dropped a frame of unknown kind", zap.Uint8("kind", h.Kind), zap.Uint32("source", h.Source))
	}
}

// Destination names where a data frame's payload goes.
func (e *engine) Destination(h *transport.Header) []byte {
	r := e.cookies[h.Cookie]
	if h.Kind != kindData || r == nil || r.kind != reqRecv {
		return nil
	}
	end := h.Aux + uint64(h.Len)
	if end > uint64(r.status.Count) || end < h.Aux {
		return nil
	}
	return r.buf[h.Aux:end]
}

func (e *engine) deliverMessageLocked(h *transport.Header, payload []byte) {
	q := e.queue(h.Context)
	src := int32(h.Source)
	single := h.Flags&flagSingleCopy != 0
	var addr uint64
	if h.Kind == kindRTS && single {
		if len(payload) < 8 {
			e.log.Warn("dropped a malformed rendezvous request", zap.Int32("source", src))
			return
		}
		addr = getAddr(payload)
	}
	if r := q.matchPosted(src, h.Tag); r != nil {
		if h.Kind == kindEager {
			e.finishRecvLocked(r, src, h.Tag, payload)
		} else {
			e.startRndvRecvLocked(r, src, h.Tag, int(h.Aux), h.Cookie, addr, single)
		}
		return
	}
	if h.Kind == kindEager {
		m := e.newMessageLocked(src, h.Tag, len(payload))
		e.holdPayloadLocked(m, payload)
		q.addUnexpected(m)
		return
	}
	m := e.newMessageLocked(src, h.Tag, int(h.Aux))
	m.cookie, m.addr, m.singleCopy = h.Cookie, addr, single
	q.addUnexpected(m)
}

// newMessageLocked returns an unexpected-message record from the engine's
// free list. Records are the engine's own (matching never hands one to the
// program), so they are reused: a stream of small messages that arrive
// before their receives allocates nothing.
func (e *engine) newMessageLocked(src, tag int32, size int) *message {
	m := e.freeMsgs.get()
	if m == nil {
		m = new(message)
	}
	m.src, m.tag, m.size = src, tag, size
	m.eager, m.pooled, m.cookie, m.addr, m.singleCopy = false, false, 0, 0, false
	return m
}

// holdPayloadLocked copies an eager payload into m: into m itself when it
// is small, else into a buffer from the pool.
func (e *engine) holdPayloadLocked(m *message, payload []byte) {
	m.eager = true
	if len(payload) <= len(m.inline) {
		m.data = m.inline[:len(payload)]
	} else {
		m.data, m.pooled = e.pool.get(len(payload)), true
	}
	copy(m.data, payload)
}

// freeMessageLocked gives a matched message's record back, and its
// payload buffer to the pool.
func (e *engine) freeMessageLocked(m *message) {
	if m.pooled {
		e.pool.put(m.data)
	}
	m.data, m.selfReq = nil, nil
	e.freeMsgs.put(m)
}

// sendDataLocked answers a clear-to-send: the payload goes out in direct
// frames of at most the transport's frame size.
func (e *engine) sendDataLocked(r *Request, recvCookie uint64) {
	rt := e.routeLocked(int(r.dest))
	n := (len(r.buf) + rt.maxFrame - 1) / rt.maxFrame
	r.rv.dataOps = make([]transport.SendOp, n)
	r.rv.opsLeft = n
	for i := range r.rv.dataOps {
		off := i * rt.maxFrame
		end := min(off+rt.maxFrame, len(r.buf))
		op := &r.rv.dataOps[i]
		op.Owner = r
		op.Header = transport.Header{Kind: kindData, Flags: transport.FlagDirect, Source: uint32(e.rank),
			Len: uint32(end - off), Cookie: recvCookie, Aux: uint64(off)}
		op.Payload = r.buf[off:end]
		e.sendFrameLocked(rt, int(r.dest), op)
	}
}

// --- progress and waiting ---

// progressLocked polls every transport once and returns how many events
// it handled.
func (e *engine) progressLocked() int {
	n := 0
	if e.shm != nil {
		k, err := e.shm.Poll(e)
		n += k
		if err != nil {
			e.linkFailedLocked(err)
		}
	}
	if e.tcp != nil {
		k, err := e.tcp.Poll(e)
		n += k
		if err != nil {
			e.linkFailedLocked(err)
		}
	}
	return n
}

func (e *engine) progressOnce() {
	e.mu.Lock()
	e.progressLocked()
	e.mu.Unlock()
}

// linkFailedLocked ends the world when a link to a peer fails, unless the
// ranks are finalizing (when peers close their links on purpose).
func (e *engine) linkFailedLocked(err error) {
	if e.finalizing {
		return
	}
	e.log.Error("lost a peer", zap.Error(err))
	e.cancelLocked(err)
}

// cancelLocked fails every pending operation and every later one with
// cause, and wakes all waiters.
func (e *engine) cancelLocked(cause error) {
	if e.cause != nil {
		return
	}
	e.cause = cause
	e.dead.Store(true)
	for _, q := range e.queues {
		for r := q.postedHead; r != nil; {
			next := r.qnext
			q.removePosted(r)
			e.completeLocked(r, e.opError(r, "recv", cause))
			r = next
		}
		for m := q.unexpHead; m != nil; m = m.next {
			if m.selfReq != nil {
				e.completeLocked(m.selfReq, e.opError(m.selfReq, "send", cause))
			}
		}
	}
	for k, r := range e.cookies {
		delete(e.cookies, k)
		e.completeLocked(r, e.opError(r, "send", cause))
	}
	if e.vacancy != nil {
		close(e.vacancy)
		e.vacancy = nil
	}
	e.bell.Ring()
}

// cancel is cancelLocked for callers outside the lock (the bootstrap
// reader when the agent goes away).
func (e *engine) cancel(cause error) {
	e.mu.Lock()
	e.cancelLocked(cause)
	e.mu.Unlock()
}

// wait makes progress until r completes: it polls the transports itself,
// spinning at first, then yielding the CPU between polls, then sleeping on
// the bell until a transport rings it.
func (e *engine) wait(r *Request) {
	if r.done.Load() {
		return
	}
	var start, idleSince time.Time
	busy := false // progress since the last check of the clock
	// Polls between looks at the clock. Oversubscribed, every idle poll
	// gives the CPU away: the rank being waited for may need this core.
	checkEvery := 63
	if e.politely {
		checkEvery = 0
	}
	for i := 1; ; i++ {
		if e.mayProgress(i) && e.mu.TryLock() {
			if e.progressLocked() > 0 {
				busy = true
			}
			e.mu.Unlock()
			if r.done.Load() {
				break
			}
		} else if r.done.Load() {
			break
		}
		if i&checkEvery != 0 {
			continue
		}
		now := time.Now()
		if start.IsZero() {
			start, idleSince = now, now
			e.blocked.set(r, start)
			continue
		}
		// The clock that leads to yielding and sleeping runs only while
		// nothing moves: a rank streaming a large message keeps polling.
		if busy {
			idleSince, busy = now, false
			continue
		}
		idle := now.Sub(idleSince)
		switch {
		case idle < e.spinFor:
			if e.politely {
				e.yield()
			}
		case idle < e.yieldFor:
			e.yield()
		default:
			e.sleep(r.done.Load, r)
			idleSince = time.Now()
		}
	}
	if !start.IsZero() {
		e.blocked.clear()
	}
}

// mayProgress reports whether poll i of a wait should take the lock and
// poll the transports: when shared memory shows a frame (or frames wait
// for room), when TCP is in use (a socket cannot be peeked at without a
// system call), and every 16th poll regardless, which bounds what a
// missed hint could cost.
func (e *engine) mayProgress(i int) bool {
	if i&15 == 0 || e.shm == nil || (e.tcp != nil && e.tcp.InUse()) {
		return true
	}
	return e.shm.MayPoll()
}

// waitFor is wait for an arbitrary condition (Waitany, Probe, generic
// requests). done is called without locks held.
func (e *engine) waitFor(done func() bool) {
	var start time.Time
	for i := 1; ; i++ {
		if done() {
			return
		}
		e.progressOnce()
		if done() {
			return
		}
		if i&15 != 0 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
			continue
		}
		waited := time.Since(start)
		switch {
		case waited < e.spinFor:
		case waited < e.yieldFor:
			e.yield()
		default:
			e.sleep(done, nil)
		}
	}
}

// yield gives the CPU away while waiting: to other goroutines, and, when
// ranks outnumber cores, to other processes (the rank being waited for
// may need this very core).
func (e *engine) yield() {
	runtime.Gosched()
	if e.politely {
		linux.Yield()
	}
}

// sleepTimeout bounds one sleep on the bell: a safety net, since every
// event that matters rings it.
const sleepTimeout = 50 * time.Millisecond

// pendingSleep bounds a sleep while frames wait for room in a full ring.
const pendingSleep = 100 * time.Microsecond

// sleep waits until something happens. One goroutine at a time sleeps on
// the bell (the sleeper); others block until their request completes or the
// sleeper leaves, then take their turn.
//
// done is called without the lock held (a generic condition, such as a
// probe, takes it itself).
func (e *engine) sleep(done func() bool, r *Request) {
	if done() {
		return
	}
	e.mu.Lock()
	if e.cause != nil {
		e.mu.Unlock()
		return
	}
	if e.sleeping {
		if e.vacancy == nil {
			e.vacancy = make(chan struct{})
		}
		vac := e.vacancy
		var ch chan struct{}
		if r != nil {
			if r.ch == nil {
				r.ch = make(chan struct{})
			}
			ch = r.ch
		}
		e.mu.Unlock()
		select {
		case <-ch:
		case <-vac:
		case <-time.After(sleepTimeout):
		}
		return
	}
	e.sleeping = true
	bell := e.bell
	bell.Arm()
	if e.tcp != nil {
		e.tcp.Arm()
	}
	n := e.progressLocked()
	timeout := sleepTimeout
	if (e.shm != nil && e.shm.Pending()) || (e.tcp != nil && e.tcp.Pending()) {
		// Frames wait for room in a peer's ring, which frees without a
		// ring here: look again soon.
		timeout = pendingSleep
	}
	e.mu.Unlock()
	if n == 0 && !done() && !e.dead.Load() {
		bell.Sleep(timeout)
	}
	bell.Disarm()
	e.mu.Lock()
	e.sleeping = false
	if e.vacancy != nil {
		close(e.vacancy)
		e.vacancy = nil
	}
	e.mu.Unlock()
}

// bufPool recycles eager payload copies of unexpected messages in
// power-of-two size classes. Guarded by engine.mu.
type bufPool struct {
	classes [17][][]byte // 64 B << i
}

const poolMaxPerClass = 64

func poolClass(n int) int {
	c, size := 0, 64
	for size < n {
		size <<= 1
		c++
	}
	return c
}

func (p *bufPool) get(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	c := poolClass(n)
	if c >= len(p.classes) {
		return make([]byte, n)
	}
	if k := len(p.classes[c]); k > 0 {
		b := p.classes[c][k-1]
		p.classes[c] = p.classes[c][:k-1]
		return b[:n]
	}
	return make([]byte, n, 64<<c)
}

func (p *bufPool) put(b []byte) {
	if cap(b) < 64 {
		return
	}
	c := poolClass(cap(b))
	if c >= len(p.classes) || 64<<c != cap(b) || len(p.classes[c]) >= poolMaxPerClass {
		return
	}
	p.classes[c] = append(p.classes[c], b[:0])
}
