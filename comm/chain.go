package comm

import (
	"github.com/parley-hpc/parley/transport"
)

// Chained messages. A message above the eager limit but within the
// transport's ChainLimit (shared memory: half a ring) travels eagerly as a
// chain of frames: a head (kindChain) that carries the message's envelope,
// its size and its first piece, then pieces (kindPiece) that the link
// delivers right after it, in order, with no other frame between them
// (sendChainLocked queues them under one hold of the lock). The receiver
// therefore keeps one chain in progress per sender and needs no cookie to
// place a piece. Where a rendezvous waited a round trip before the first
// byte moved, and a single copy paid a system call that pins the sender's
// pages, the receiver of a chain copies one piece out of the ring while the
// sender writes the next.
//
// The head matches like an eager frame. Matched, the pieces land in the
// receive buffer, and the receive completes with the last one. Unmatched,
// they fill a buffer of the message's size, and the message joins the
// unexpected queue (or meets a receive posted meanwhile) only once whole:
// no later message from that sender can arrive before it, so matching
// order is kept. A receive that fails before its pieces are in (a
// mismatch, a truncation, a revocation, the end of the world) is completed
// at once, and the rest of its pieces are dropped.

// maxChainMessage bounds the size a chain's head may announce: a chain is
// at most half a ring, and a larger claim is a broken peer, not a buffer
// to allocate.
const maxChainMessage = 1 << 20

// chainRecv is the chained message in progress from one sender.
type chainRecv struct {
	r     *Request // the receive it matched; nil: see m
	m     *message // the unexpected message it fills; both nil: dropped
	ctx   uint32
	got   int // bytes placed so far
	total int // the message's size; 0: no chain in progress
}

// active reports whether a chain is in progress.
func (c *chainRecv) active() bool { return c != nil && c.total > 0 }

// startChainLocked handles the head of a chained message from world rank
// from.
func (e *engine) startChainLocked(from int, h *transport.Header, payload []byte) {
	src := int32(from)
	c := e.chains[src]
	if c.active() {
		e.protocolErrorLocked(from, "a chained message begins at byte %d of the %d-byte one before it", c.got, c.total)
		return
	}
	if h.Aux > maxChainMessage || int(h.Aux) <= len(payload) {
		e.protocolErrorLocked(from, "a chained message of %d bytes whose first piece holds %d", h.Aux, len(payload))
		return
	}
	if c == nil {
		if e.chains == nil {
			e.chains = make(map[int32]*chainRecv)
		}
		c = new(chainRecv)
		e.chains[src] = c
	}
	total := int(h.Aux)
	*c = chainRecv{ctx: h.Context, got: len(payload), total: total}
	q := e.queue(h.Context)
	if r := q.matchPosted(src, h.Tag); r != nil {
		r.peer = src
		r.status = Status{Source: r.c.commRank(from), Tag: int(h.Tag), Count: total}
		switch {
		case h.Check != r.check:
			e.mismatchLocked(r, src, h.Check)
		case total > len(r.buf):
			e.completeLocked(r, e.opError(r, "recv", &TruncatedError{Message: total, Buffer: len(r.buf)}))
		default:
			copy(r.buf, payload)
			c.r = r
		}
		return
	}
	m := e.newMessageLocked(src, h.Tag, total)
	m.check, m.eager, m.data = h.Check, true, make([]byte, total)
	copy(m.data, payload)
	c.m = m
}

// pieceDestinationLocked names where a piece from world rank from goes:
// the next bytes of the chain in progress, if the piece is the next one
// and lies within the message; nil otherwise (pieceLocked then reports the
// peer).
func (e *engine) pieceDestinationLocked(from int, h *transport.Header) []byte {
	c := e.chains[int32(from)]
	if !c.active() || h.Aux != uint64(c.got) || h.Aux+uint64(h.Len) > uint64(c.total) {
		return nil
	}
	off, end := c.got, c.got+int(h.Len)
	switch {
	case c.r != nil:
		return c.r.buf[off:end]
	case c.m != nil:
		return c.m.data[off:end]
	}
	if cap(e.discard) < int(h.Len) {
		e.discard = make([]byte, h.Len)
	}
	return e.discard[:h.Len]
}

// pieceLocked handles a piece from world rank from, already placed where
// pieceDestinationLocked said (payload nil: it named no place).
func (e *engine) pieceLocked(from int, h *transport.Header, payload []byte) {
	c := e.chains[int32(from)]
	if payload == nil || !c.active() {
		e.protocolErrorLocked(from, "a piece of %d bytes at offset %d that no chained message from it expects", h.Len, h.Aux)
		return
	}
	c.got += len(payload)
	if c.got < c.total {
		return
	}
	r, m, ctx := c.r, c.m, c.ctx
	*c = chainRecv{}
	switch {
	case r != nil:
		e.completeLocked(r, nil)
	case m != nil:
		// Whole now: it meets a receive posted while it arrived, or waits.
		q := e.queue(ctx)
		if r := q.matchPosted(m.src, m.tag); r != nil {
			e.finishRecvLocked(r, m.src, m.tag, m.check, m.data)
			e.freeMessageLocked(m)
			return
		}
		q.addUnexpected(m)
	}
}

// failChainsLocked fails the receives that chained messages are filling,
// with the error fail makes for each (nil: leave it be); the rest of
// their pieces are dropped as they come.
func (e *engine) failChainsLocked(fail func(r *Request) error) {
	for _, c := range e.chains {
		if !c.active() || c.r == nil {
			continue
		}
		if err := fail(c.r); err != nil {
			e.completeLocked(c.r, err)
			c.r = nil
		}
	}
}

// dropChainLocked ends the chain in progress from world rank peer, whose
// link closed: its receive fails with cause, and no piece will come.
func (e *engine) dropChainLocked(peer int, cause error) {
	c := e.chains[int32(peer)]
	if !c.active() {
		return
	}
	if c.r != nil {
		e.completeLocked(c.r, e.opError(c.r, "recv", cause))
	}
	*c = chainRecv{}
}
