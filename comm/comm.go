package comm

import (
	"fmt"
	"slices"
	"sync/atomic"
)

// Context ids: each communicator owns ctxStride consecutive ids: its
// point-to-point context, the context of its collectives, and one for the
// runtime's own traffic on it (communicator creation).
const (
	ctxStride   = 4
	ctxP2P      = 0
	ctxColl     = 1
	ctxInternal = 2
	worldCtx    = 0
)

// A Comm is a communicator: a group of ranks with a context of its own, so
// that its messages never match those of another communicator.
//
// A Comm is safe for concurrent use by many goroutines (MPI's
// THREAD_MULTIPLE). Messages sent by one goroutine to one destination on
// one communicator arrive in the order sent; sends by different goroutines
// are ordered only by what the program synchronizes itself. Collective
// operations on one communicator must be called in the same order on every
// rank, so the program must not run two collectives on the same
// communicator from different goroutines at once.
type Comm struct {
	e     *engine
	base  uint32 // first of this communicator's context ids
	ctx   uint32 // context of this view: base+ctxP2P, or base+ctxColl for the collective view
	rank  int
	size  int
	group []int32 // comm rank -> world rank; nil for the world (identity)
	index []int32 // world rank -> comm rank, -1 if absent; nil for the world
	label string

	parent   *Comm // for the collective view: the user's communicator
	coll     *Comm // the collective view of this communicator
	collSeq  atomic.Uint64
	freed    atomic.Bool
	children atomic.Uint32 // communicators created from this one, for their names
}

func newComm(e *engine, base uint32, rank int, group []int32, label string) *Comm {
	c := &Comm{e: e, base: base, ctx: base + ctxP2P, rank: rank, size: len(group), group: group, label: label}
	if group != nil {
		c.index = make([]int32, e.size)
		for i := range c.index {
			c.index[i] = -1
		}
		for i, w := range group {
			c.index[w] = int32(i)
		}
	} else {
		c.size = e.size
	}
	c.coll = &Comm{e: e, base: base, ctx: base + ctxColl, rank: rank, size: c.size, group: group,
		index: c.index, label: label + "/collective", parent: c}
	c.coll.coll = c.coll
	return c
}

// Rank returns the calling rank's number in the communicator, 0..Size()-1.
func (c *Comm) Rank() int { return c.rank }

// Size returns the number of ranks in the communicator.
func (c *Comm) Size() int { return c.size }

// String names the communicator, for messages.
func (c *Comm) String() string { return c.name() }

func (c *Comm) name() string { return c.label }

// worldRank maps a rank of this communicator to its world rank.
func (c *Comm) worldRank(r int) int {
	if c.group == nil {
		return r
	}
	return int(c.group[r])
}

// commRank maps a world rank to this communicator's rank (AnySource stays).
func (c *Comm) commRank(w int) int {
	if w < 0 || c.index == nil {
		return w
	}
	return int(c.index[w])
}

// WorldRank returns the world rank of rank r of this communicator.
func (c *Comm) WorldRank(r int) int { return c.worldRank(r) }

// CollectiveView returns a communicator with the same group on a context
// reserved for collective operations. It is what package collectives sends
// on, so that collective traffic never matches user messages. Programs
// should not need it.
func (c *Comm) CollectiveView() *Comm { return c.coll }

// NextCollective returns a sequence number, equal on every rank for the
// n-th collective operation on this communicator, which collective
// algorithms use to keep the tags of overlapping operations apart.
func (c *Comm) NextCollective() uint64 {
	if c.parent != nil {
		return c.parent.collSeq.Add(1)
	}
	return c.collSeq.Add(1)
}

func (c *Comm) check(op string, peer, tag int, anyOK bool, n int) error {
	fail := func(err error) error {
		return &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: peer, Tag: tag, Err: err}
	}
	if c.freed.Load() || c.e.finalized() {
		return fail(ErrFinalized)
	}
	if peer >= c.size || peer < 0 && !(anyOK && peer == AnySource) {
		return fail(fmt.Errorf("%w: rank %d is outside 0..%d", ErrInvalidArg, peer, c.size-1))
	}
	if tag > MaxTag || tag < 0 && !(anyOK && tag == AnyTag) {
		return fail(fmt.Errorf("%w: tag %d is outside 0..%d", ErrInvalidArg, tag, MaxTag))
	}
	if n < 0 {
		return fail(fmt.Errorf("%w: negative count", ErrInvalidArg))
	}
	return nil
}

func failed(err error) *Request {
	r := &Request{err: err}
	r.done.Store(true)
	return r
}

// Send sends buf to rank dest with tag and returns when buf may be reused:
// small messages are copied out at once; large ones wait until the
// receiver has taken them.
func (c *Comm) Send(buf []byte, dest, tag int) error {
	if err := c.check("send", dest, tag, false, len(buf)); err != nil {
		return err
	}
	r := c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, false, true)
	_, err := c.e.finish(r)
	return err
}

// Ssend is a synchronous send: it returns once the receiver has matched
// the message.
func (c *Comm) Ssend(buf []byte, dest, tag int) error {
	if err := c.check("ssend", dest, tag, false, len(buf)); err != nil {
		return err
	}
	r := c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, true, true)
	_, err := c.e.finish(r)
	return err
}

// Recv receives a message from src (or AnySource) with tag (or AnyTag)
// into buf. A message longer than buf fails with ErrTruncated and leaves
// buf unspecified.
func (c *Comm) Recv(buf []byte, src, tag int) (Status, error) {
	if err := c.check("recv", src, tag, true, len(buf)); err != nil {
		return Status{}, err
	}
	r := c.e.irecv(c, buf, c.worldRank(src), tag, c.ctx, true)
	return c.e.finish(r)
}

// Isend starts a send and returns its request; buf belongs to the request
// until it completes.
func (c *Comm) Isend(buf []byte, dest, tag int) *Request {
	if err := c.check("isend", dest, tag, false, len(buf)); err != nil {
		return failed(err)
	}
	return c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, false, false)
}

// Issend starts a synchronous send: its request completes once the
// receiver has matched the message.
func (c *Comm) Issend(buf []byte, dest, tag int) *Request {
	if err := c.check("issend", dest, tag, false, len(buf)); err != nil {
		return failed(err)
	}
	return c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, true, false)
}

// Irecv starts a receive and returns its request; buf belongs to the
// request until it completes.
func (c *Comm) Irecv(buf []byte, src, tag int) *Request {
	if err := c.check("irecv", src, tag, true, len(buf)); err != nil {
		return failed(err)
	}
	return c.e.irecv(c, buf, c.worldRank(src), tag, c.ctx, false)
}

// Sendrecv sends sendBuf to dest and receives into recvBuf from src at the
// same time, so that pairs of ranks can exchange without deadlock.
func (c *Comm) Sendrecv(sendBuf []byte, dest, sendTag int, recvBuf []byte, src, recvTag int) (Status, error) {
	if err := c.check("sendrecv", dest, sendTag, false, len(sendBuf)); err != nil {
		return Status{}, err
	}
	if err := c.check("sendrecv", src, recvTag, true, len(recvBuf)); err != nil {
		return Status{}, err
	}
	sr, rr := c.e.sendrecv(c, sendBuf, c.worldRank(dest), sendTag, recvBuf, c.worldRank(src), recvTag, c.ctx)
	_, serr := c.e.finish(sr)
	st, rerr := c.e.finish(rr)
	if rerr != nil {
		return st, rerr
	}
	return st, serr
}

// SendrecvReplace sends buf to dest and replaces its contents with the
// message received from src (which must fit in buf).
func (c *Comm) SendrecvReplace(buf []byte, dest, sendTag, src, recvTag int) (Status, error) {
	tmp := slices.Clone(buf)
	return c.Sendrecv(tmp, dest, sendTag, buf, src, recvTag)
}

// Iprobe reports whether a message from src with tag is waiting to be
// received, and its status, without receiving it.
func (c *Comm) Iprobe(src, tag int) (bool, Status, error) {
	if err := c.check("iprobe", src, tag, true, 0); err != nil {
		return false, Status{}, err
	}
	st, ok, err := c.e.probe(c, c.worldRank(src), tag, c.ctx)
	return ok, st, err
}

// Probe blocks until a message from src with tag is waiting, and returns
// its status without receiving it.
func (c *Comm) Probe(src, tag int) (Status, error) {
	if err := c.check("probe", src, tag, true, 0); err != nil {
		return Status{}, err
	}
	var st Status
	var err error
	c.e.waitFor(func() bool {
		var ok bool
		st, ok, err = c.e.probe(c, c.worldRank(src), tag, c.ctx)
		return ok || err != nil
	})
	return st, err
}
