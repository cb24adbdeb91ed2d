package comm

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/parley-hpc/parley/transport"
)

type reqKind uint8

const (
	reqRecv      reqKind = iota
	reqSend              // eager: done when the transport has the bytes
	reqSendRndv          // rendezvous: done at FIN, or when all data frames are out
	reqSendChain         // chained eager message: done when its head and every piece are out
)

// A Request is a nonblocking operation in flight, returned by Isend,
// Irecv, the persistent SendInit and RecvInit, and the nonblocking
// collectives.
//
// The buffer given to the operation belongs to the request until it
// completes: the program must not read (for a receive) or modify (for a
// send) it before Wait or Test reports completion. A Request may be waited
// for by one goroutine at a time; Test may be called from any.
//
// A request is the program's for as long as it holds it: the runtime
// never gives it to another operation. Wait and Test may be called again
// after completion and report the same status.
type Request struct {
	e    *engine
	c    *Comm
	kind reqKind
	done atomic.Bool
	// Set before done becomes true, read after.
	status Status
	err    error
	// ch, guarded by e.mu, is made when a goroutine blocks on the request
	// and closed when it completes.
	ch chan struct{}
	// internal marks requests the program never sees (blocking calls, the
	// collectives' own), which the engine recycles.
	internal bool
	// tracked: counted as outstanding for asynchronous progress (under
	// mu; a generic request's under genericMu).
	tracked  bool
	released atomic.Bool
	// Test loops: how often Test found the request incomplete, and the
	// record that says so in the hang report once that is often.
	tests   atomic.Uint32
	testRec atomic.Pointer[waitRecord]

	buf   []byte
	src   int32 // receive: the world rank asked for, or AnySource
	peer  int32 // world rank at the other end: the destination, or the sender matched
	tag   int32 // the tag received with, or sent with
	check uint32
	ctx   uint32
	esize int32 // a typed receive's element size: its status counts elements

	qnext, qprev *Request // posted queue links
	posted       bool

	// Send side: op is the frame in a transport's hands (the eager frame,
	// or the rendezvous request), which is sop, the request's own: a send
	// allocates no op, and the op lives exactly as long as the request.
	op  *transport.SendOp
	sop transport.SendOp

	// rv is the state of a rendezvous (large message), made when needed.
	rv *rendezvous

	// pers holds what Start repeats, for persistent requests.
	pers *persistent

	// Generic requests (nonblocking collectives) complete through poll;
	// label names the operation for the hang report.
	poll  func() (bool, error)
	label string
}

// ownOp returns the request's own frame op, reset and owned by it.
func (r *Request) ownOp() *transport.SendOp {
	r.sop = transport.SendOp{Owner: (*sendOwner)(r)}
	return &r.sop
}

// rendezvous is what a request needs only when its message moves by
// rendezvous, or, for its frame ops (dataOps, opsLeft, err), as a chain.
type rendezvous struct {
	cookie     uint64 // this rank's cookie for the request
	peerCookie uint64 // receive: the sender's cookie, for CTS and FIN
	// desc is the descriptor of the sender's buffer: sent in the RTS by
	// the sender, read from it by the receiver.
	desc       [32]byte
	ndesc      int
	reader     transport.RemoteReader // set while the buffer is exposed, or the read is queued
	got        int                    // receive: payload bytes placed so far
	dataOps    []transport.SendOp
	opsLeft    int
	retracting bool  // the sender asked the receiver to drop the unmatched RTS
	err        error // chained send: the first frame that failed
}

// persistent is the operation a persistent request starts each time.
type persistent struct {
	send, sync bool
	buf        []byte
	peer       int // world rank, or AnySource
	tag        int
	ctx        uint32
	active     bool // started and not yet completed by Wait or Test
}

func failed(err error) *Request {
	r := &Request{err: err}
	r.done.Store(true)
	return r
}

// released reports the use of a released request.
func (r *Request) usedAfterRelease(op string) error {
	name, rank := "world", 0
	if r.c != nil {
		name, rank = r.c.name(), r.c.rank
	}
	return &OpError{Op: op, Comm: name, Rank: rank, Peer: noPeer, Tag: noPeer, Err: ErrReleased}
}

// Release tells the runtime that the program is done with the request, as
// MPI_Request_free does: an operation still in flight runs to its end, but
// nothing can be learnt of it any more. Every later call on the request
// fails with ErrReleased (Wait, Test, Start) or does nothing (Cancel).
// Releasing nil does nothing.
//
// A loop that repeats the same operations should use persistent requests
// (SendInit, RecvInit, Start), which allocate nothing per iteration.
func (r *Request) Release() {
	if r == nil {
		return
	}
	r.released.Store(true)
}

// Wait blocks until the request completes and returns its status. A
// receive's status names the sender and tag; a send's is zero. Waiting for
// nil, or for a persistent request that is not started, returns at once
// with a zero status.
func (r *Request) Wait() (Status, error) {
	if r == nil {
		return Status{}, nil
	}
	if r.released.Load() {
		return Status{}, r.usedAfterRelease("wait")
	}
	if r.pers != nil && !r.pers.active && !r.done.Load() {
		return Status{}, nil
	}
	if r.poll != nil {
		return r.waitGeneric()
	}
	r.e.wait(r, inWait)
	if r.pers != nil {
		r.pers.active = false
	}
	return r.result()
}

// result is the request's status and error as the program sees them: a
// typed receive counts elements.
func (r *Request) result() (Status, error) {
	if r.err != nil || r.esize <= 1 || r.kind != reqRecv {
		return r.status, r.err
	}
	return countElements(r.c, "wait", r.status, int(r.esize))
}

// Test reports whether the request has completed, without blocking (it
// makes progress once), and its status if so.
func (r *Request) Test() (bool, Status, error) {
	if r == nil {
		return true, Status{}, nil
	}
	if r.released.Load() {
		return true, Status{}, r.usedAfterRelease("test")
	}
	if r.pers != nil && !r.pers.active && !r.done.Load() {
		return true, Status{}, nil
	}
	if r.poll != nil {
		done, err := r.testGeneric()
		r.tested(done)
		return done, Status{}, err
	}
	if !r.done.Load() {
		r.e.progressOnce()
		if !r.done.Load() {
			r.tested(false)
			return false, Status{}, nil
		}
	}
	r.tested(true)
	if r.pers != nil {
		r.pers.active = false
	}
	st, err := r.result()
	return true, st, err
}

// Cancel withdraws a receive that has not matched yet; it reports whether
// it did. A cancelled request completes with ErrCancelled. Sends cannot be
// cancelled (they may have reached the peer) and Cancel returns false.
func (r *Request) Cancel() bool {
	if r == nil || r.kind != reqRecv || r.poll != nil || r.e == nil || r.released.Load() {
		return false
	}
	e := r.e
	e.mu.Lock()
	defer e.unlock()
	if r.done.Load() || !r.posted {
		return false
	}
	e.queue(r.ctx).removePosted(r)
	e.completeLocked(r, e.opError(r, "recv", ErrCancelled))
	return true
}

// Start starts a persistent request (SendInit, RecvInit) once more. The
// request must not be active: the previous start must have been completed
// by Wait or Test. A request that is not persistent cannot be started.
func (r *Request) Start() error {
	if err := r.prepareStart(); err != nil {
		return err
	}
	r.e.mu.Lock()
	r.startLocked()
	r.e.unlockPosted()
	return nil
}

// prepareStart checks that r can be started and makes it a fresh,
// active request.
func (r *Request) prepareStart() error {
	if r == nil {
		return &OpError{Op: "start", Comm: "?", Peer: noPeer, Tag: noPeer, Err: fmt.Errorf("%w: nil request", ErrInvalidArg)}
	}
	if r.released.Load() {
		return r.usedAfterRelease("start")
	}
	p, esize := r.pers, r.esize
	if p == nil {
		return r.startError(fmt.Errorf("%w: only persistent requests (SendInit, RecvInit) can be started", ErrInvalidArg))
	}
	if p.active {
		return r.startError(fmt.Errorf("%w: the request is active: Wait or Test must complete it before it starts again", ErrInvalidArg))
	}
	if err := r.c.usable("start"); err != nil {
		return err
	}
	*r = Request{e: r.e, c: r.c, pers: p, esize: esize}
	p.active = true
	return nil
}

// startLocked posts a prepared persistent request; the engine lock is held.
func (r *Request) startLocked() {
	p := r.pers
	if p.send {
		r.e.startSendLocked(r, p.buf, p.peer, p.tag, p.ctx, p.sync, 0)
	} else {
		r.e.startRecvLocked(r, p.buf, p.peer, p.tag, p.ctx, 0)
	}
}

func (r *Request) startError(err error) error {
	name, rank := "world", 0
	if r.c != nil {
		name, rank = r.c.name(), r.c.rank
	}
	return &OpError{Op: "start", Comm: name, Rank: rank, Peer: noPeer, Tag: noPeer, Err: err}
}

// Startall starts every persistent request in reqs, and returns the first
// error (the others are still started). The requests of one engine start
// under one hold of its lock: a window of sends pays one lock and one
// unlock, whose atomic instructions each wait until the frames written
// before them have reached the peer's cache, instead of one per request;
// over TCP their frames leave in one write system call, or a few, instead
// of one each (transport.Batcher).
func Startall(reqs ...*Request) error {
	var first error
	var held *engine
	release := func() {
		held.endBatchLocked()
		held.unlockPosted()
	}
	for _, r := range reqs {
		if err := r.prepareStart(); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if r.e != held {
			if held != nil {
				release()
			}
			held = r.e
			held.mu.Lock()
			held.beginBatchLocked()
		}
		r.startLocked()
	}
	if held != nil {
		release()
	}
	return first
}

// Waitall waits for every request and returns their statuses, and the
// first error (an *OpError) if any failed. Nil requests count as complete.
//
// It waits for the last request first: a wait's poll stops handing on
// frames once its own request is done (engine.Satisfied), so waiting in
// order would take one frame per poll where the requests' messages
// arrive in order, as a window's do (bibw of 1-256 B moved 0.73-0.83 of
// the bytes a second that way).
func Waitall(reqs ...*Request) ([]Status, error) {
	sts := make([]Status, len(reqs))
	var first error
	for i := len(reqs) - 1; i >= 0; i-- {
		st, err := reqs[i].Wait()
		sts[i] = st
		if err != nil {
			first = err // the lowest index wins: the loop runs down
		}
	}
	return sts, first
}

// WaitallNoStatus waits for every request, as Waitall does, but keeps no
// statuses (MPI_STATUSES_IGNORE), so it allocates nothing. It returns the
// first error.
func WaitallNoStatus(reqs ...*Request) error {
	var first error
	for i := len(reqs) - 1; i >= 0; i-- {
		if _, err := reqs[i].Wait(); err != nil {
			first = err // the lowest index wins: the loop runs down
		}
	}
	return first
}

// pendingIn reports whether r is one Waitany and Waitsome wait for: not
// nil, and not a persistent request that is not started.
func (r *Request) pendingIn() bool {
	return r != nil && (r.pers == nil || r.pers.active || r.done.Load())
}

// firstPending returns the first request Waitany would wait for, or nil.
func firstPending(reqs []*Request) *Request {
	for _, r := range reqs {
		if r.pendingIn() {
			return r
		}
	}
	return nil
}

// Waitany waits until one of the requests completes and returns its index
// and status. As MPI_Waitany does, it sets that entry of reqs to nil (a
// persistent request stays, inactive), so that a loop calling Waitany
// again gets the next one; nil entries and inactive persistent requests
// are skipped, and with none left Waitany returns -1.
func Waitany(reqs ...*Request) (int, Status, error) {
	e := anyEngine(reqs)
	if e == nil {
		return -1, Status{}, nil
	}
	idx := -1
	first := firstPending(reqs)
	if first == nil {
		return -1, Status{}, nil
	}
	rec := recordFor(first, inWaitany)
	rec.n = len(reqs)
	e.waitFor(func() bool {
		for i, r := range reqs {
			if r.pendingIn() && r.isDone() {
				idx = i
				return true
			}
		}
		return false
	}, rec)
	st, err := reqs[idx].Wait()
	if reqs[idx].pers == nil {
		reqs[idx] = nil
	}
	return idx, st, err
}

// Waitsome waits until at least one request completes and returns the
// indices of all that have, setting their entries of reqs to nil as
// Waitany does. With no request left it returns nil.
func Waitsome(reqs ...*Request) ([]int, error) {
	e := anyEngine(reqs)
	if e == nil {
		return nil, nil
	}
	first := firstPending(reqs)
	if first == nil {
		return nil, nil
	}
	rec := recordFor(first, inWaitsome)
	rec.n = len(reqs)
	var idx []int
	e.waitFor(func() bool {
		idx = idx[:0]
		for i, r := range reqs {
			if r.pendingIn() && r.isDone() {
				idx = append(idx, i)
			}
		}
		return len(idx) > 0
	}, rec)
	return idx, collect(reqs, idx)
}

// collect completes the requests at idx (Wait on a done request does not
// block), nils the non-persistent ones, and returns the first error.
func collect(reqs []*Request, idx []int) error {
	var first error
	for _, i := range idx {
		if _, err := reqs[i].Wait(); err != nil && first == nil {
			first = err
		}
		if reqs[i].pers == nil {
			reqs[i] = nil
		}
	}
	return first
}

// Testall reports whether all requests have completed (making progress
// once), and the first error among them if so.
func Testall(reqs ...*Request) (bool, error) {
	if e := anyEngine(reqs); e != nil {
		e.progressOnce()
	}
	var first error
	for _, r := range reqs {
		if !r.pendingIn() {
			continue
		}
		if !r.testDone() {
			return false, nil
		}
		if _, err := r.Wait(); err != nil && first == nil {
			first = err
		}
	}
	return true, first
}

// Testany makes progress once and reports whether one of the requests has
// completed: its index and status, with that entry set to nil as Waitany
// does. It returns -1 when none has (or none is left).
func Testany(reqs ...*Request) (int, Status, error) {
	e := anyEngine(reqs)
	if e == nil {
		return -1, Status{}, nil
	}
	e.progressOnce()
	for i, r := range reqs {
		if r.pendingIn() && r.testDone() {
			st, err := r.Wait()
			if r.pers == nil {
				reqs[i] = nil
			}
			return i, st, err
		}
	}
	return -1, Status{}, nil
}

// Testsome makes progress once and returns the indices of the requests
// that have completed, setting their entries to nil as Waitsome does.
func Testsome(reqs ...*Request) ([]int, error) {
	e := anyEngine(reqs)
	if e == nil {
		return nil, nil
	}
	e.progressOnce()
	var idx []int
	for i, r := range reqs {
		if r.pendingIn() && r.testDone() {
			idx = append(idx, i)
		}
	}
	return idx, collect(reqs, idx)
}

func (r *Request) isDone() bool {
	if r.released.Load() {
		return true
	}
	if r.poll != nil {
		done, _ := r.testGeneric()
		return done
	}
	return r.done.Load()
}

// testDone is isDone for the Test functions, which note the test.
func (r *Request) testDone() bool {
	done := r.isDone()
	r.tested(done)
	return done
}

// testRecordAfter is how many times Test must find a request incomplete
// before the hang report shows the goroutine as polling it.
const testRecordAfter = 64

// tested notes a Test of r: a program that polls a request with Test in a
// loop is as blocked as one in Wait, and the hang report says so.
func (r *Request) tested(done bool) {
	if r.internal || r.e == nil {
		return
	}
	if done {
		if p := r.testRec.Swap(nil); p != nil {
			r.e.waits.remove(p)
		}
		return
	}
	if r.tests.Add(1) == testRecordAfter {
		rec := recordFor(r, inTest)
		rec.req, rec.since = r, time.Now()
		r.testRec.Store(r.e.waits.add(rec))
	}
}

func anyEngine(reqs []*Request) *engine {
	for _, r := range reqs {
		if r != nil && r.e != nil {
			return r.e
		}
	}
	return nil
}

// newGeneric returns a request that completes when poll reports done.
// poll is called with no lock held, by whichever goroutine waits or tests,
// one call at a time; it makes progress on its own operation (typically by
// testing the requests of the next step) and must not block. It is how
// nonblocking collectives are built over point-to-point requests.
func (c *Comm) newGeneric(label string, ctx uint32, tag int, check uint32, poll func() (done bool, err error)) *Request {
	r := &Request{e: c.e, c: c, poll: poll, label: label, ctx: ctx, tag: int32(tag), check: check, peer: noPeer}
	c.e.trackGeneric(r)
	return r
}

func (r *Request) testGeneric() (bool, error) {
	if r.done.Load() {
		return true, r.err
	}
	r.e.genericMu.Lock()
	defer r.e.genericMu.Unlock()
	if r.done.Load() {
		return true, r.err
	}
	done, err := r.poll()
	if done || err != nil {
		r.err = err
		r.done.Store(true)
		r.e.genericDoneLocked(r)
		return true, err
	}
	return false, nil
}

func (r *Request) waitGeneric() (Status, error) {
	r.e.waitFor(func() bool {
		done, _ := r.testGeneric()
		return done
	}, recordFor(r, inWait))
	return Status{}, r.err
}
