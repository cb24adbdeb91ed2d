package comm

import (
	"sync/atomic"

	"github.com/parley-hpc/parley/transport"
)

type reqKind uint8

const (
	reqRecv     reqKind = iota
	reqSend             // eager: done when the transport has the bytes
	reqSendRndv         // rendezvous: done at FIN, or when all data frames are out
)

// A Request is a nonblocking operation in flight, returned by Isend,
// Irecv and the nonblocking collectives.
//
// The buffer given to the operation belongs to the request until it
// completes: the program must not read (for a receive) or modify (for a
// send) it before Wait or Test reports completion. A Request may be waited
// for by one goroutine at a time; Test may be called from any.
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
	// internal marks requests of blocking calls, recycled by the engine.
	internal bool

	// Receive side.
	buf          []byte
	src          int32 // receive: world rank or AnySource
	tag          int32 // the tag received with, or sent with
	ctx          uint32
	qnext, qprev *Request // posted queue links
	posted       bool

	// Send side. The frame op comes from the engine's pool and goes back
	// when the transport is done with it.
	op   *transport.SendOp
	dest int32 // world rank

	// rv is the state of a rendezvous (large message), made when needed.
	rv *rendezvous

	// Generic requests (nonblocking collectives) complete through poll.
	poll func() (bool, error)
}

// rendezvous is what a request needs only when its message moves by
// rendezvous.
type rendezvous struct {
	cookie  uint64
	rts     [8]byte // the RTS payload: the send buffer's address
	got     int     // receive: payload bytes placed so far
	dataOps []transport.SendOp
	opsLeft int
}

// SendDone is called by a transport, under the engine lock, when one of the
// request's frames is out.
func (r *Request) SendDone(op *transport.SendOp, err error) {
	e := r.e
	if op == r.op {
		// The eager frame, or a rendezvous's announcement, is out.
		r.op = nil
		e.putOp(op)
		if err != nil {
			e.completeLocked(r, e.opError(r, "send", err))
		} else if r.kind == reqSend {
			e.completeLocked(r, nil)
		}
		return
	}
	// A data frame of a rendezvous.
	if err != nil {
		e.completeLocked(r, e.opError(r, "send", err))
		return
	}
	r.rv.opsLeft--
	if r.rv.opsLeft == 0 {
		e.completeLocked(r, nil)
	}
}

// Release gives a completed request back to the runtime, which reuses it
// for a later Isend or Irecv, as MPI frees a request when MPI_Wait
// completes it. After Release the request must not be used at all (not
// even Wait or Test): it may already stand for another operation. It is
// for loops that start many small operations, where allocating a request
// each time costs more than the message (bench does this, as the OSU
// benchmarks' MPI_Waitall does). Releasing nil, a request that has not
// completed or that failed, or one of a nonblocking collective does
// nothing.
func (r *Request) Release() {
	if r == nil || r.e == nil || r.poll != nil || r.internal || r == r.e.sent || !r.done.Load() || r.err != nil {
		return
	}
	e := r.e
	e.mu.Lock()
	*r = Request{}
	e.released.put(r)
	e.mu.Unlock()
}

// Wait blocks until the request completes and returns its status. A
// receive's status names the sender and tag; a send's is zero.
func (r *Request) Wait() (Status, error) {
	if r == nil {
		return Status{}, nil
	}
	if r.poll != nil {
		return r.waitGeneric()
	}
	r.e.wait(r)
	return r.status, r.err
}

// Test reports whether the request has completed, without blocking (it
// makes progress once).
func (r *Request) Test() (bool, Status, error) {
	if r == nil {
		return true, Status{}, nil
	}
	if r.poll != nil {
		done, err := r.testGeneric()
		return done, Status{}, err
	}
	if !r.done.Load() {
		r.e.progressOnce()
		if !r.done.Load() {
			return false, Status{}, nil
		}
	}
	return true, r.status, r.err
}

// Cancel withdraws a receive that has not matched yet; it reports whether
// it did. A cancelled request completes with ErrCancelled. Sends cannot be
// cancelled (they may have reached the peer) and Cancel returns false.
func (r *Request) Cancel() bool {
	if r == nil || r.kind != reqRecv || r.poll != nil {
		return false
	}
	e := r.e
	e.mu.Lock()
	defer e.mu.Unlock()
	if r.done.Load() || !r.posted {
		return false
	}
	e.queue(r.ctx).removePosted(r)
	e.completeLocked(r, e.opError(r, "recv", ErrCancelled))
	return true
}

// Waitall waits for every request and returns their statuses, and the
// first error (an *OpError) if any failed. Nil requests count as complete.
func Waitall(reqs ...*Request) ([]Status, error) {
	sts := make([]Status, len(reqs))
	var first error
	for i, r := range reqs {
		st, err := r.Wait()
		sts[i] = st
		if err != nil && first == nil {
			first = err
		}
	}
	return sts, first
}

// WaitallNoStatus waits for every request, as Waitall does, but keeps no
// statuses (MPI_STATUSES_IGNORE), so it allocates nothing: for loops over
// windows of small messages, where a slice of statuses per call would
// keep the garbage collector busy. It returns the first error.
func WaitallNoStatus(reqs ...*Request) error {
	var first error
	for _, r := range reqs {
		if _, err := r.Wait(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Waitany waits until one of the requests completes and returns its index
// and status. Requests already reported by an earlier Waitany should be
// set to nil by the caller; if all are nil, Waitany returns -1.
func Waitany(reqs ...*Request) (int, Status, error) {
	e := anyEngine(reqs)
	if e == nil {
		return -1, Status{}, nil
	}
	idx := -1
	e.waitFor(func() bool {
		for i, r := range reqs {
			if r != nil && r.isDone() {
				idx = i
				return true
			}
		}
		return false
	})
	st, err := reqs[idx].Wait()
	return idx, st, err
}

// Waitsome waits until at least one request completes and returns the
// indices of all that have. Nil requests are skipped; with none left it
// returns nil.
func Waitsome(reqs ...*Request) ([]int, error) {
	e := anyEngine(reqs)
	if e == nil {
		return nil, nil
	}
	var idx []int
	var first error
	e.waitFor(func() bool {
		for i, r := range reqs {
			if r != nil && r.isDone() {
				idx = append(idx, i)
			}
		}
		return len(idx) > 0
	})
	for _, i := range idx {
		if _, err := reqs[i].Wait(); err != nil && first == nil {
			first = err
		}
	}
	return idx, first
}

// Testall reports whether all requests have completed (making progress
// once), and the first error among them if so.
func Testall(reqs ...*Request) (bool, error) {
	if e := anyEngine(reqs); e != nil {
		e.progressOnce()
	}
	var first error
	for _, r := range reqs {
		if r == nil {
			continue
		}
		if !r.isDone() {
			return false, nil
		}
		if _, err := r.Wait(); err != nil && first == nil {
			first = err
		}
	}
	return true, first
}

func (r *Request) isDone() bool {
	if r.poll != nil {
		done, _ := r.testGeneric()
		return done
	}
	return r.done.Load()
}

func anyEngine(reqs []*Request) *engine {
	for _, r := range reqs {
		if r != nil {
			return r.e
		}
	}
	return nil
}

// NewRequest returns a request that completes when poll reports done.
// poll is called with no lock held, by whichever goroutine waits or tests,
// one call at a time; it makes progress on its own operation (typically by
// testing the requests of the next step) and must not block. It is how
// nonblocking collectives are built over point-to-point requests.
func (c *Comm) NewRequest(poll func() (done bool, err error)) *Request {
	return &Request{e: c.e, c: c, poll: poll}
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
		return true, err
	}
	return false, nil
}

func (r *Request) waitGeneric() (Status, error) {
	r.e.waitFor(func() bool {
		done, _ := r.testGeneric()
		return done
	})
	return Status{}, r.err
}
