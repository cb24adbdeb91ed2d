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
	// readsAbove caches collReadsAbove's answer, which depends only on
	// settings fixed when the members' transports opened: 0 not yet
	// known, -1 never, else the size above which messages are read.
	readsAbove atomic.Int64
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
// A nil communicator (what Split gives a rank that chose Undefined) has
// rank -1 and size 0, and its other methods fail with ErrCommNull.
func (c *Comm) Rank() int {
	if c == nil {
		return -1
	}
	return c.rank
}

// Size returns the number of ranks in the communicator (0 for nil).
func (c *Comm) Size() int {
	if c == nil {
		return 0
	}
	return c.size
}

// String names the communicator, for messages: "world" for the world,
// "world.1" for its first child, and so on.
func (c *Comm) String() string {
	if c == nil {
		return "nil"
	}
	return c.name()
}

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
func (c *Comm) WorldRank(r int) int {
	if c == nil || r < 0 || r >= c.size {
		return -1
	}
	return c.worldRank(r)
}

// nextCollective returns a sequence number, equal on every rank for the
// n-th collective operation on this communicator: the tag of its
// messages on the collective context, which keeps those of overlapping
// (nonblocking) collectives apart.
func (c *Comm) nextCollective() uint64 {
	if c.parent != nil {
		return c.parent.collSeq.Add(1)
	}
	return c.collSeq.Add(1)
}

// usable reports why c cannot be used, or nil.
func (c *Comm) usable(op string) error {
	if c == nil {
		return &OpError{Op: op, Comm: "nil", Rank: -1, Peer: noPeer, Tag: noPeer, Err: ErrCommNull}
	}
	if c.freed.Load() {
		return &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer, Err: ErrFreed}
	}
	if c.e.finalized() {
		return &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: noPeer, Tag: noPeer, Err: ErrFinalized}
	}
	return nil
}

func (c *Comm) check(op string, peer, tag int, anyOK bool, n int) error {
	if err := c.usable(op); err != nil {
		return err
	}
	fail := func(err error) error {
		return &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: peer, Tag: tag, Err: err}
	}
	if peer >= c.size || peer < 0 && !(anyOK && peer == AnySource) && peer != ProcNull {
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

// procNullRequest is the request of an operation with ProcNull: complete
// at once, with the status MPI gives (source ProcNull, tag AnyTag, count
// 0).
func (c *Comm) procNullRequest() *Request {
	r := &Request{e: c.e, c: c, status: Status{Source: ProcNull, Tag: AnyTag}}
	r.done.Store(true)
	return r
}

// Send sends buf to rank dest with tag and returns when buf may be reused:
// small messages are copied out at once; large ones wait until the
// receiver has taken them. A send to ProcNull does nothing.
func (c *Comm) Send(buf []byte, dest, tag int) error {
	if err := c.check("send", dest, tag, false, len(buf)); err != nil {
		return err
	}
	if dest == ProcNull {
		return nil
	}
	return c.e.send(c, buf, c.worldRank(dest), tag, c.ctx, 0)
}

// Ssend is a synchronous send: it returns once the receiver has matched
// the message.
func (c *Comm) Ssend(buf []byte, dest, tag int) error {
	if err := c.check("ssend", dest, tag, false, len(buf)); err != nil {
		return err
	}
	if dest == ProcNull {
		return nil
	}
	r := c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, true, true, 0)
	_, err := c.e.finish(r, inSend)
	return err
}

// Recv receives a message from src (or AnySource) with tag (or AnyTag)
// into buf. A message longer than buf fails with ErrTruncated and leaves
// buf unspecified. A receive from ProcNull returns at once with
// Status{Source: ProcNull, Tag: AnyTag}.
func (c *Comm) Recv(buf []byte, src, tag int) (Status, error) {
	if err := c.check("recv", src, tag, true, len(buf)); err != nil {
		return Status{}, err
	}
	if src == ProcNull {
		return Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	r := c.e.irecv(c, buf, c.worldRank(src), tag, c.ctx, true, 0)
	return c.e.finish(r, inRecv)
}

// Isend starts a send and returns its request; buf belongs to the request
// until it completes.
func (c *Comm) Isend(buf []byte, dest, tag int) *Request {
	if err := c.check("isend", dest, tag, false, len(buf)); err != nil {
		return failed(err)
	}
	if dest == ProcNull {
		return c.procNullRequest()
	}
	return c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, false, false, 0)
}

// Issend starts a synchronous send: its request completes once the
// receiver has matched the message.
func (c *Comm) Issend(buf []byte, dest, tag int) *Request {
	if err := c.check("issend", dest, tag, false, len(buf)); err != nil {
		return failed(err)
	}
	if dest == ProcNull {
		return c.procNullRequest()
	}
	return c.e.isend(c, buf, c.worldRank(dest), tag, c.ctx, true, false, 0)
}

// Irecv starts a receive and returns its request; buf belongs to the
// request until it completes.
func (c *Comm) Irecv(buf []byte, src, tag int) *Request {
	if err := c.check("irecv", src, tag, true, len(buf)); err != nil {
		return failed(err)
	}
	if src == ProcNull {
		return c.procNullRequest()
	}
	return c.e.irecv(c, buf, c.worldRank(src), tag, c.ctx, false, 0)
}

// SendInit makes a persistent send request: each Start sends buf to dest
// with tag, as Isend would, without allocating. buf belongs to the request
// while it is active.
func (c *Comm) SendInit(buf []byte, dest, tag int) (*Request, error) {
	return c.persistent("send_init", true, false, buf, dest, tag)
}

// SsendInit makes a persistent synchronous send request (see SendInit).
func (c *Comm) SsendInit(buf []byte, dest, tag int) (*Request, error) {
	return c.persistent("ssend_init", true, true, buf, dest, tag)
}

// RecvInit makes a persistent receive request: each Start receives into
// buf from src with tag, as Irecv would, without allocating.
func (c *Comm) RecvInit(buf []byte, src, tag int) (*Request, error) {
	return c.persistent("recv_init", false, false, buf, src, tag)
}

func (c *Comm) persistent(op string, send, sync bool, buf []byte, peer, tag int) (*Request, error) {
	if err := c.check(op, peer, tag, !send, len(buf)); err != nil {
		return nil, err
	}
	if peer == ProcNull {
		r := c.procNullRequest()
		return r, nil
	}
	p := &persistent{send: send, sync: sync, buf: buf, peer: c.worldRank(peer), tag: tag, ctx: c.ctx}
	return &Request{e: c.e, c: c, pers: p}, nil
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
	if dest == ProcNull || src == ProcNull {
		sr, rr := c.Isend(sendBuf, dest, sendTag), c.Irecv(recvBuf, src, recvTag)
		_, serr := sr.Wait()
		st, rerr := rr.Wait()
		if rerr != nil {
			return st, rerr
		}
		return st, serr
	}
	sr, rr := c.e.sendrecv(c, sendBuf, c.worldRank(dest), sendTag, recvBuf, c.worldRank(src), recvTag, c.ctx, 0)
	_, serr := c.e.finish(sr, inSend)
	st, rerr := c.e.finish(rr, inRecv)
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
	if src == ProcNull {
		return true, Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	st, ok, err := c.e.probe(c, c.worldRank(src), tag, c.ctx)
	return ok, st, err
}

// Probe blocks until a message from src with tag is waiting, and returns
// its status without receiving it. With several goroutines receiving from
// the same source, another may take the message between Probe and Recv:
// use Mprobe there.
func (c *Comm) Probe(src, tag int) (Status, error) {
	if err := c.check("probe", src, tag, true, 0); err != nil {
		return Status{}, err
	}
	if src == ProcNull {
		return Status{Source: ProcNull, Tag: AnyTag}, nil
	}
	var st Status
	var err error
	w := c.worldRank(src)
	c.e.waitFor(func() bool {
		var ok bool
		st, ok, err = c.e.probe(c, w, tag, c.ctx)
		return ok || err != nil
	}, waitRecord{what: inProbe, peer: w, tag: tag, ctx: c.ctx})
	return st, err
}
