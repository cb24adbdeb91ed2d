package comm

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/bootstrap"
	"github.com/parley-hpc/parley/transport"
	"github.com/parley-hpc/parley/transport/shm"
)

// Frame kinds of the point-to-point protocol (wire.Header.Kind).
const (
	kindEager   uint8 = 1 + iota // the whole message: Context, Source, Tag, payload
	kindRTS                      // rendezvous request: Aux = size, Cookie = sender's request
	kindCTS                      // clear to send: Cookie = sender's request, Aux = receiver's
	kindData                     // FlagDirect data: Cookie = receiver's request, Aux = offset
	kindFin                      // receiver is done with the sender's buffer: Cookie = sender's request
	kindRevoke                   // a collective failed: Context = its collective context, Tag = its call, Aux = 1 for a mismatch, payload = why
	kindRetract                  // the sender withdraws an unmatched RTS: Context, Cookie = sender's request; answered by FIN with Aux = 1
	kindChain                    // the head of a chained message: as kindEager, with Aux = the whole message's size; its pieces follow
	kindPiece                    // FlagDirect piece of the chained message in progress on the link: Aux = offset
)

// flagRemoteRead on an RTS: the payload is the descriptor of the sender's
// buffer (transport.RemoteReader.Expose), for the receiver to read it in
// one copy.
const flagRemoteRead uint8 = 1 << 1

// selfEagerLimit: sends to self up to this size are copied at once; larger
// ones wait, uncopied, for the matching receive.
const selfEagerLimit = 64 << 10

// route is how this rank reaches one peer, resolved from the peer's card
// on first use.
type route struct {
	ready    bool
	self     bool
	t        transport.Transport
	name     string                 // the transport's name, for messages
	direct   transport.DirectSender // the transport's fast path, or nil
	reader   transport.RemoteReader // nil: no remote read (or the kernel refused it)
	chain    int                    // largest message sent as a chain of frames (Caps.ChainLimit)
	eager    int                    // eager limit of the transport
	maxFrame int                    // largest direct frame
	host     string
	err      error
}

// engine is one rank's runtime: transports, matching, progress. One engine
// serves the world and every communicator derived from it.
//
// Locking: mu guards the matching queues, routes, cookies, context ids,
// the free lists, the read queue and the transports' own state
// (transports are called only under mu, but for the Peeker and
// RemoteReader.Read calls their contracts allow). It is held briefly,
// never across a sleep or a blocking system call: the one long system
// call of the protocol, the single-copy read of a large message, is queued
// under mu and made after it is released (unlock). genericMu serializes
// the poll functions of generic requests; it is taken before mu, never
// after. waits.mu is taken alone.
type engine struct {
	rank, size int
	node       string
	jobID      string
	secret     []byte
	log        *zap.Logger
	kv         kvStore

	progress progressState // asynchronous progress (progress.go)

	mu         sync.Mutex
	queues     map[uint32]*matchQueue
	lastCtx    uint32
	lastQ      *matchQueue
	routes     []route
	cookies    map[uint64]*Request
	dropped    map[uint64]droppedTransfer // cookies of revoked rendezvous the peer may still answer (revoke.go)
	msgFree    []*message                 // unexpected-message records for reuse (newMessageLocked)
	payloads   payloadPools               // buffers of unexpected eager payloads (holdPayloadLocked)
	chains     map[int32]*chainRecv       // chained messages arriving, by sender (world rank)
	discard    []byte                     // where the pieces of a dropped chained message go
	chainFree  []*rendezvous              // the state of ended chained sends, for reuse
	nextCookie uint64
	ctxClaimed map[uint32]bool // context ids (multiples of ctxStride) in use on this rank
	// reads are rendezvous receives whose payload a goroutine reads from
	// the sender's memory once it has released mu (unlock); readsLeft is
	// set while a posting call (unlockPosted) left some for the next wait.
	reads      []*Request
	readsSpare []*Request
	readsLeft  atomic.Bool
	readHook   func() // tests: called before the reads, without the lock
	// notices wait for unlock to give them to the launcher (a socket
	// write, not to be made under mu); noticed holds those given.
	notices    []string
	noticed    map[string]bool
	hdr        transport.Header // scratch for a frame header: a local would escape through the transport interface
	waitTarget *Request         // the request a wait polls for, while it polls (Satisfied)
	events     uint64           // frames and completions handled: the progress the hang report compares
	sleeping   bool             // a goroutine sleeps on the bell
	flushing   bool             // the flusher goroutine runs (startFlusherLocked)
	stopFlush  bool             // finalizing: start no flusher
	flushWG    sync.WaitGroup
	vacancy    chan struct{}
	finalizing bool
	// closed holds, while finalizing, the peers whose links closed and
	// why: they send nothing more, so a receive from one fails.
	closed map[int]error
	world  *Comm // the world communicator: Finalize waits on its internal context
	cause  error // why the world was cancelled
	dead   atomic.Bool
	// revoked holds the collective contexts on which a collective failed
	// (on this rank, or on a member that told this one), and why: their
	// pending operations failed, and later ones fail at once.
	revoked map[uint32]error
	// revokedAny is set (release store) with the first revocation, and
	// collUnexp counts the unexpected messages on collective contexts:
	// while neither says anything, a collective begins without the lock
	// (collBegin).
	revokedAny atomic.Bool
	collUnexp  unexpCount

	// spares are finished requests of blocking calls, which never reach
	// the program, kept for the next blocking call (see newRequest). It is
	// the engine's one recycling scheme, kept for what it measured (5
	// interleaved runs each, without it against with it): 8 B shm latency
	// 0.34 against 0.18 us, 8 B allreduce at 2 ranks 1.25 against 0.73 us.
	// Free lists of frame ops and unexpected-message records, and a pool of
	// payload buffers, measured no gain and were removed. Eight: a
	// collective that sends to and receives from three peers at once
	// (Allgather on 4 ranks) holds six.
	spares [8]atomic.Pointer[Request]

	genericMu sync.Mutex
	finMu     sync.Mutex // serializes finalize
	fin       atomic.Bool

	bellWord   atomic.Uint32 // the bell's word when there is no shared segment
	bell       transport.Bell
	transports []transport.Transport // polled in this order
	peekers    []transport.Peeker    // nil entries for transports without the ability
	armers     []transport.Armer
	batchers   []transport.Batcher
	// links are the transports routes are chosen from, in order of
	// preference (transports.go).
	links         []link
	bellInSegment bool // the bell's word lives in the shared-memory segment
	// noRemoteRead turns single-copy reads off (PARLEY_DEBUG=no_cma=1), to
	// test and measure the pipelined copy through the rings.
	noRemoteRead bool

	// Waiting policy.
	spinFor  time.Duration
	yieldFor time.Duration
	politely bool // oversubscribed: give the CPU away while waiting

	waits waitList // what blocked goroutines wait for, for the hang report

	// The world's board (board.go): shm is the shared-memory transport,
	// if any; boardState says whether board is set, worked out at the
	// first collective call on the world.
	shm        *shm.Transport
	board      *board
	boardState atomic.Int32
}

// addTransport makes t one of the transports the engine polls.
func (e *engine) addTransport(t transport.Transport) {
	e.transports = append(e.transports, t)
	p, _ := t.(transport.Peeker)
	e.peekers = append(e.peekers, p)
	if a, ok := t.(transport.Armer); ok {
		e.armers = append(e.armers, a)
	}
	if b, ok := t.(transport.Batcher); ok {
		e.batchers = append(e.batchers, b)
	}
}

// beginBatchLocked holds back the transports' writes until endBatchLocked
// (transport.Batcher), for the requests Startall starts together.
func (e *engine) beginBatchLocked() {
	for _, b := range e.batchers {
		b.BeginBatch()
	}
}

// endBatchLocked makes the writes the batch held back.
func (e *engine) endBatchLocked() {
	for _, b := range e.batchers {
		b.EndBatch()
	}
	if !e.flushing && e.pendingLocked() {
		e.startFlusherLocked()
	}
}

// queueIfAny is queue without creating one: nil if ctx has none yet.
func (e *engine) queueIfAny(ctx uint32) *matchQueue {
	if ctx == e.lastCtx && e.lastQ != nil {
		return e.lastQ
	}
	return e.queues[ctx]
}

// queue returns the matching queue of context ctx, creating it if need be;
// the last one used is cached.
func (e *engine) queue(ctx uint32) *matchQueue {
	if ctx == e.lastCtx && e.lastQ != nil {
		return e.lastQ
	}
	q := e.queues[ctx]
	if q == nil {
		q = &matchQueue{}
		if ctx%ctxStride == ctxColl {
			q.coll = &e.collUnexp
		}
		e.queues[ctx] = q
	}
	e.lastCtx, e.lastQ = ctx, q
	return q
}

// routeLocked returns how to reach world rank dest, resolving it from the
// peer's card on first use (chooseLocked).
func (e *engine) routeLocked(dest int) *route {
	rt := &e.routes[dest]
	if rt.ready {
		return rt
	}
	rt.ready = true
	if dest == e.rank {
		rt.self, rt.name, rt.eager, rt.maxFrame = true, "self", selfEagerLimit, math.MaxInt
		return rt
	}
	card, err := e.cardLocked(dest)
	if err != nil {
		rt.err = err
		return rt
	}
	rt.host = card.Hostname
	e.chooseLocked(rt, dest, card)
	return rt
}

// cardLocked reads and parses world rank r's card.
func (e *engine) cardLocked(r int) (*bootstrap.Card, error) {
	raw, err := e.kv.Get(bootstrap.CardKey(r))
	if err != nil {
		return nil, fmt.Errorf("no card for rank %d: %w", r, err)
	}
	card, err := bootstrap.ParseCard(raw)
	if err != nil {
		return nil, fmt.Errorf("card of rank %d: %w", r, err)
	}
	return card, nil
}

// useLocked makes t the transport of rt.
func (e *engine) useLocked(rt *route, t transport.Transport) {
	caps := t.Caps()
	rt.t, rt.name, rt.eager, rt.maxFrame, rt.chain = t, caps.Name, caps.EagerLimit, caps.MaxFrame, caps.ChainLimit
	rt.direct, _ = t.(transport.DirectSender)
	if r, ok := t.(transport.RemoteReader); ok && caps.RemoteRead && !e.noRemoteRead {
		rt.reader = r
		if caps.ReadFirst {
			rt.chain = 0 // medium messages are read too (chains come back where the kernel refuses: finishReadLocked, kindCTS)
		}
	}
}

// sendFrameLocked queues op on dest's transport.
func (e *engine) sendFrameLocked(rt *route, dest int, op *transport.SendOp) {
	rt.t.Send(dest, op)
	// The op may already be done and back in the pool: ask the
	// transports, not the op.
	if !e.flushing && e.pendingLocked() {
		e.startFlusherLocked()
	}
}

// pendingLocked reports whether frames wait in a transport: a full ring,
// a full socket, a connection not made yet.
func (e *engine) pendingLocked() bool {
	for _, t := range e.transports {
		if t.Pending() {
			return true
		}
	}
	return false
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
			// A program goroutine waiting in the runtime polls the
			// transports itself: polling here too would only take the
			// lock and the CPU from it (32 ranks in one process over TCP
			// spent 90% of their time in flushers' polls).
			waiting := e.progress.inWait.Load() > 0
			e.mu.Lock()
			if !waiting {
				e.progressLocked()
			}
			if !e.pendingLocked() || e.stopFlush {
				e.flushing = false
				e.unlock()
				return
			}
			e.unlock()
		}
	}()
}

// unlock releases mu, first making the single-copy reads that progress
// queued (startRndvRecvLocked): a read of a large message is one long
// system call, which must not hold up the rank's other goroutines or the
// peer's ring. Each read's FIN goes out as soon as it is made, not after
// the batch: a sender waiting for its buffer back should not wait for
// this rank's other copies.
func (e *engine) unlock() {
	if len(e.notices) > 0 {
		e.giveNoticesLocked()
	}
	for len(e.reads) > 0 {
		e.readsLeft.Store(false)
		rs := e.reads
		e.reads, e.readsSpare = e.readsSpare[:0], nil
		for i, r := range rs {
			e.mu.Unlock()
			if e.readHook != nil {
				e.readHook()
			}
			err := r.rv.reader.Read(int(r.peer), r.buf[:r.status.Count], r.rv.desc[:r.rv.ndesc])
			e.mu.Lock()
			e.finishReadLocked(r, err)
			rs[i] = nil
		}
		if e.readsSpare == nil {
			e.readsSpare = rs[:0]
		}
	}
	e.mu.Unlock()
}

// unlockPosted releases mu at the end of a call that only starts
// operations (Isend, Irecv, Start, Startall), leaving the single-copy
// reads that its receives matched to the rank's next wait, test or poll.
// Made here, a read of megabytes held the call: in a program's Irecv then
// Isend, or a collective that posts its receives before its sends, the
// rank announced nothing to its peers for the length of the copy, and a
// peer whose own copy needed that announcement waited it out, where both
// could copy at once. Whoever polls next makes them: a goroutine in a
// wait (readsLeft makes its next poll take the lock), or the progress
// goroutine; one asleep on the bell is woken.
func (e *engine) unlockPosted() {
	if len(e.notices) > 0 {
		e.giveNoticesLocked()
	}
	if len(e.reads) > 0 {
		e.readsLeft.Store(true)
		if e.sleeping {
			e.bell.Ring()
		}
	}
	e.mu.Unlock()
}

// giveNoticesLocked gives the queued notices to the launcher, releasing
// mu meanwhile.
func (e *engine) giveNoticesLocked() {
	ns := e.notices
	e.notices = nil
	e.mu.Unlock()
	for _, n := range ns {
		e.kv.Notice(n)
	}
	e.mu.Lock()
}

// noticeLocked gives the user text once, at default verbosity (through
// mpirun), when the lock is released.
func (e *engine) noticeLocked(text string) {
	if e.noticed[text] {
		return
	}
	if e.noticed == nil {
		e.noticed = make(map[string]bool)
	}
	e.noticed[text] = true
	e.notices = append(e.notices, text)
}

// --- requests ---

// newRequest returns a request for an operation on c. Requests of
// blocking calls (internal) come from the spares: a blocking call's
// request never reaches the program, so reusing it is safe, and a Send or
// Recv that completes at once then allocates nothing. A request handed to
// the program is always new: it is the program's for as long as it holds
// it (Release only marks it), so no other operation can ever show through
// it.
func (e *engine) newRequest(c *Comm, internal bool) *Request {
	if internal {
		for i := range e.spares {
			// A load first: an empty slot costs no locked exchange.
			if e.spares[i].Load() == nil {
				continue
			}
			if r := e.spares[i].Swap(nil); r != nil {
				r.c = c
				return r
			}
		}
	}
	return &Request{e: e, c: c, internal: internal}
}

// finish waits for a blocking call's request and recycles it. A request
// that failed is not recycled: a transport may still hold its frame. A
// nil r is a send that completed without a request (sendNowLocked).
func (e *engine) finish(r *Request, what waitWhat) (Status, error) {
	if r == nil {
		return Status{}, nil
	}
	e.wait(r, what)
	st, err := r.status, r.err
	if err == nil && r.internal {
		*r = Request{e: e, internal: true}
		for i := range e.spares {
			if e.spares[i].Load() == nil && e.spares[i].CompareAndSwap(nil, r) {
				break
			}
		}
	}
	return st, err
}

// getOp returns a new frame op owned by o. Ops are not recycled: a free
// list of them measured no gain (8 B latency 0.18 against 0.19 us over
// shm, TCP within noise, 5 interleaved runs each).
func (e *engine) getOp(o transport.Completer) *transport.SendOp {
	return &transport.SendOp{Owner: o}
}

// SendDone is told when the engine's own control frames (FIN, CTS,
// revocations) are out; nothing is left to do.
func (e *engine) SendDone(op *transport.SendOp, err error) {}

// completeLocked completes r with err (nil: success).
func (e *engine) completeLocked(r *Request, err error) {
	if r.done.Load() {
		return
	}
	if err != nil && r.err == nil {
		r.err = err
	}
	e.untrackLocked(r)
	// Nothing of r may be touched once done is set: its waiter may return
	// and reuse it (finish) at once.
	ch := r.ch
	e.events++
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

// --- progress ---

// progressLocked polls every transport once and returns how many events
// it handled. While a wait polls (waitTarget set), a transport may stop
// handing on frames once the request waited for is done (Satisfied); the
// transports after it are polled all the same, so that none starves.
func (e *engine) progressLocked() int {
	n := 0
	for _, t := range e.transports {
		k, err := t.Poll(e)
		n += k
		if err != nil {
			e.linkFailedLocked(err)
		}
	}
	e.events += uint64(n)
	return n
}

// Satisfied tells the transports that the request a wait polls for is
// done (transport.Satisfier): the frames after it wait for the next poll.
// A wait that returns with its message then pays no look at the next slot
// of a shared-memory ring, a miss on the critical path. This machine's two
// vCPUs pass a cache line slowly in some hours and fast in others (8-byte
// latency 0.46 against 0.31 us): slow, 2-rank Gather of 64-256 B took
// 0.76-0.79 of the time (8 alternating runs); fast, latency, bibw, Gather,
// Bcast and Reduce of 1 B-1 KiB took 0.89-1.07 (5-9 runs).
func (e *engine) Satisfied() bool { return e.waitTarget != nil && e.waitTarget.done.Load() }

func (e *engine) progressOnce() {
	e.mu.Lock()
	e.progressLocked()
	e.unlock()
}

// linkFailedLocked ends the world when a link to a peer fails. While
// finalizing, peers close their links on purpose once Finalize's barrier
// let them go, so a closed link fails only what this rank still expects
// from that peer: the barrier's message, if it has not come, which means
// the peer died rather than finished.
func (e *engine) linkFailedLocked(err error) {
	if e.finalizing {
		var pe *transport.PeerError
		if errors.As(err, &pe) && pe.Rank >= 0 && e.closed[pe.Rank] == nil {
			if e.closed == nil {
				e.closed = make(map[int]error)
			}
			e.closed[pe.Rank] = err
			e.failRecvsFromLocked(pe.Rank, err)
		}
		return
	}
	e.log.Error("lost a peer", zap.Error(err))
	e.cancelLocked(err)
}

// closedPeer is why world rank src closed its link while finalizing, or
// nil: a receive from it can never match. Outside Finalize there is no map
// to look in, and a receive pays one nil check.
func (e *engine) closedPeer(src int) error {
	if e.closed == nil {
		return nil
	}
	return e.closed[src]
}

// failRecvsFromLocked fails the posted receives from world rank peer.
func (e *engine) failRecvsFromLocked(peer int, cause error) {
	for _, q := range e.queues {
		for r := q.postedHead; r != nil; {
			next := r.qnext
			if int(r.src) == peer {
				q.removePosted(r)
				e.completeLocked(r, e.opError(r, "recv", cause))
			}
			r = next
		}
	}
	e.dropChainLocked(peer, cause)
	e.bell.Ring()
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
	e.failChainsLocked(func(r *Request) error { return e.opError(r, "recv", cause) })
	for k, r := range e.cookies {
		delete(e.cookies, k)
		op := "send"
		if r.kind == reqRecv {
			op = "recv"
		}
		e.completeLocked(r, e.opError(r, op, cause))
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
	e.unlock()
}

// protocolErrorLocked ends the world because peer broke the protocol: a
// frame claiming another source, or naming a request the peer was never
// given. Every waiter sees an error naming the rank. A peer that confuses
// requests cannot be trusted with the rest of the job, and completing (or
// failing) the request it named would let it finish another peer's
// message.
func (e *engine) protocolErrorLocked(peer int, format string, args ...any) {
	err := &transport.PeerError{Rank: peer, Op: "frame from", Err: fmt.Errorf("%w: %s", transport.ErrProtocol, fmt.Sprintf(format, args...))}
	e.log.Error("refused a frame", zap.Error(err))
	e.cancelLocked(err)
}
