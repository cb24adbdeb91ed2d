package comm

import (
	"context"
	"errors"
	"fmt"

	"github.com/parley-hpc/parley/internal/elem"
)

// A Message is a message taken out of matching by Mprobe or Improbe
// (MPI_Mprobe): no receive can take it any more but Recv or Irecv on the
// Message itself, so that with several goroutines receiving from the same
// source, the one that probed is the one that receives. A Message is
// received once.
type Message struct {
	c    *Comm
	m    *message // nil for ProcNull
	st   Status
	used bool
}

// Mprobe blocks until a message from src (or AnySource) with tag (or
// AnyTag) has arrived, takes it out of matching, and returns it with its
// status (bytes).
func (c *Comm) Mprobe(src, tag int) (*Message, Status, error) {
	if err := c.check("mprobe", src, tag, true, 0); err != nil {
		return nil, Status{}, err
	}
	if src == ProcNull {
		st := Status{Source: ProcNull, Tag: AnyTag}
		return &Message{c: c, st: st}, st, nil
	}
	var msg *Message
	var err error
	w := c.worldRank(src)
	c.e.waitFor(func() bool {
		msg, err = c.e.mprobe(c, w, tag)
		return msg != nil || err != nil
	}, waitRecord{what: inProbe, peer: w, tag: tag, ctx: c.ctx})
	if err != nil {
		return nil, Status{}, err
	}
	return msg, msg.st, nil
}

// Improbe is Mprobe that does not block: it reports whether a message was
// there (and took it).
func (c *Comm) Improbe(src, tag int) (bool, *Message, Status, error) {
	if err := c.check("improbe", src, tag, true, 0); err != nil {
		return false, nil, Status{}, err
	}
	if src == ProcNull {
		st := Status{Source: ProcNull, Tag: AnyTag}
		return true, &Message{c: c, st: st}, st, nil
	}
	msg, err := c.e.mprobe(c, c.worldRank(src), tag)
	if msg == nil || err != nil {
		return false, nil, Status{}, err
	}
	return true, msg, msg.st, nil
}

// mprobe makes progress once and takes the first waiting message from
// world rank src with tag on c, or returns nil.
func (e *engine) mprobe(c *Comm, src, tag int) (*Message, error) {
	e.mu.Lock()
	defer e.unlock()
	e.progressLocked()
	if e.cause != nil {
		return nil, &OpError{Op: "mprobe", Comm: c.name(), Rank: c.rank, Peer: c.commRank(src), Tag: tag, Err: e.cause}
	}
	q := e.queue(c.ctx)
	m := q.findUnexpected(int32(src), int32(tag))
	if m == nil {
		return nil, nil
	}
	q.removeUnexpected(m)
	return &Message{c: c, m: m, st: Status{Source: c.commRank(int(m.src)), Tag: int(m.tag), Count: m.size}}, nil
}

// Irecv starts receiving the message into buf (it must fit, or the
// receive fails with ErrTruncated).
func (msg *Message) Irecv(buf []byte) *Request {
	if msg == nil || msg.used {
		return failed(&OpError{Op: "mrecv", Comm: "?", Rank: -1, Peer: noPeer, Tag: noPeer,
			Err: fmt.Errorf("%w: the message was received already (or is nil)", ErrInvalidArg)})
	}
	msg.used = true
	c := msg.c
	if msg.m == nil {
		return c.procNullRequest()
	}
	e := c.e
	r := e.newRequest(c, false)
	e.mu.Lock()
	r.kind = reqRecv
	r.buf, r.src, r.peer, r.tag, r.ctx = buf, msg.m.src, msg.m.src, msg.m.tag, c.ctx
	if e.cause != nil {
		e.completeLocked(r, e.opError(r, "mrecv", e.cause))
	} else {
		e.matchUnexpectedLocked(r, msg.m)
		e.freeMessageLocked(msg.m)
	}
	e.unlock()
	return r
}

// Recv receives the message into buf.
func (msg *Message) Recv(buf []byte) (Status, error) { return msg.Irecv(buf).Wait() }

// Mrecv receives the message into xs (see Message.Recv); the status counts
// elements.
func Mrecv[T any](msg *Message, xs []T) (Status, error) {
	c := (*Comm)(nil)
	if msg != nil {
		c = msg.c
	}
	if err := typeOK[T](c, "mrecv"); err != nil {
		return Status{}, err
	}
	r := msg.Irecv(Bytes(xs))
	r.esize = int32(elem.Size[T]())
	return r.Wait()
}

// RecvContext is Recv bounded by ctx: when ctx ends before a message has
// matched, the receive is withdrawn and the error wraps ctx.Err(). A
// message that matched already is received in full (its data may be
// moving), and then the call returns it.
func (c *Comm) RecvContext(ctx context.Context, buf []byte, src, tag int) (Status, error) {
	return c.Irecv(buf, src, tag).WaitContext(ctx)
}

// SendContext is Send bounded by ctx. Small messages complete at once. A
// large one waits for its receiver: when ctx ends before the receiver has
// matched it, it is withdrawn from the receiver (as MPI_Cancel does for a
// send) and the error wraps ctx.Err(); if the receiver matched it first,
// it is delivered and SendContext returns nil. Either way buf may be
// reused when SendContext returns.
func (c *Comm) SendContext(ctx context.Context, buf []byte, dest, tag int) error {
	_, err := c.Isend(buf, dest, tag).WaitContext(ctx)
	return err
}

// WaitContext is Wait bounded by ctx. When ctx ends first: a receive not
// matched yet is withdrawn (Cancel), and a send whose receiver has not
// matched it is withdrawn from the receiver, and the error wraps
// ctx.Err(); a receive or send whose transfer started completes, and its
// result is returned. A nonblocking collective cannot be withdrawn:
// WaitContext returns ctx's error at once and the collective goes on (Wait
// for it later; its buffers stay in use until then).
func (r *Request) WaitContext(ctx context.Context) (Status, error) {
	if r == nil || ctx.Done() == nil || r.e == nil {
		return r.Wait()
	}
	if r.released.Load() {
		return Status{}, r.usedAfterRelease("wait")
	}
	e := r.e
	e.waitFor(func() bool { return r.isDone() || ctx.Err() != nil }, recordFor(r, inWait))
	if r.isDone() {
		return r.Wait()
	}
	cause := ctx.Err()
	wrap := func() (Status, error) {
		return Status{}, e.opError(r, "wait", fmt.Errorf("%w (%w)", cause, ErrCancelled))
	}
	switch {
	case r.poll != nil:
		return Status{}, e.opError(r, "wait", cause)
	case r.kind == reqRecv:
		if r.Cancel() {
			r.Wait()
			return wrap()
		}
	case r.kind == reqSendRndv:
		e.retract(r)
	}
	st, err := r.Wait()
	if errors.Is(err, errRetracted) {
		return wrap()
	}
	return st, err
}
