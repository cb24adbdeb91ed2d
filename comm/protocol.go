package comm

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sync"

	"go.uber.org/zap"

	"github.com/parley-hpc/parley/internal/coll"
	"github.com/parley-hpc/parley/transport"
)

// The point-to-point protocol. A message up to the transport's eager limit
// travels whole in one eager frame; one up to its chain limit, eagerly as a
// chain of frames (chain.go). A larger one (or a synchronous send)
// is announced by a request to send (RTS); once it matches a receive, the
// receiver either reads the payload straight out of the sender's memory
// (transports that are RemoteReaders, when the RTS carries a descriptor)
// and answers FIN, or answers clear to send (CTS), and the sender moves the
// payload in data frames placed directly in the receive buffer.
//
// Every frame is checked against the link it came on: its Source must be
// the rank at the other end, and a CTS, data or FIN frame must name a
// request (by cookie) that this rank gave that very peer. Anything else
// is a protocol violation, which ends the world with an error naming the
// peer (protocolErrorLocked).

// opError wraps err as the failure of r's operation op, unless it is one
// already.
func (e *engine) opError(r *Request, op string, err error) error {
	var oe *OpError
	if errors.As(err, &oe) {
		return err
	}
	if r.c == nil {
		return &OpError{Op: op, Comm: "world", Rank: e.rank, Peer: noPeer, Tag: noPeer, Err: err}
	}
	peer := r.c.commRank(int(r.peer))
	if r.poll != nil {
		peer = noPeer
	}
	return &OpError{Op: op, Comm: r.c.name(), Rank: r.c.rank, Peer: peer, Tag: int(r.tag), Err: err}
}

// --- sending ---

// isend starts a send of buf to world rank dest.
func (e *engine) isend(c *Comm, buf []byte, dest int, tag int, ctx uint32, sync, internal bool, check uint32) *Request {
	r := e.newRequest(c, internal)
	e.mu.Lock()
	e.startSendLocked(r, buf, dest, tag, ctx, sync, check)
	e.unlockPosted()
	return r
}

// send is a blocking standard-mode send (Send, and the collectives' own
// sends). A small message that fits the peer's ring now leaves without a
// request (sendNowLocked); any other takes the request path.
func (e *engine) send(c *Comm, buf []byte, dest, tag int, ctx uint32, check uint32) error {
	e.mu.Lock()
	if e.sendNowLocked(buf, dest, tag, ctx, check) {
		e.events++ // a completion without a request, for the hang report's progress count
		e.unlock()
		return nil
	}
	r := e.newRequest(c, true)
	e.startSendLocked(r, buf, dest, tag, ctx, false, check)
	e.unlock()
	_, err := e.finish(r, inSend)
	return err
}

// sendrecv starts a receive and a send under one acquisition of the lock
// (Sendrecv, and the exchanges of every collective algorithm). sr is nil
// when the send completed at once (sendNowLocked); finish accepts that.
func (e *engine) sendrecv(c *Comm, sbuf []byte, dest, stag int, rbuf []byte, src, rtag int, ctx uint32, check uint32) (sr, rr *Request) {
	rr = e.newRequest(c, true)
	e.mu.Lock()
	e.startRecvLocked(rr, rbuf, src, rtag, ctx, check)
	if e.sendNowLocked(sbuf, dest, stag, ctx, check) {
		e.events++ // as in send
	} else {
		sr = e.newRequest(c, true)
		e.startSendLocked(sr, sbuf, dest, stag, ctx, false, check)
	}
	e.unlock()
	return sr, rr
}

// sendNowLocked sends buf as one eager frame straight into the peer's ring
// if it can complete at once: the world is healthy, the context not
// revoked, the route a transport with a direct path, the message within
// its eager limit, and the frame fits now. It reports whether it did; if
// not, nothing happened and the caller takes the request path, which
// finds and reports whatever stopped this one. It is also the first step
// of startSendLocked; a blocking send that takes it alone costs no request
// (whose recycling takes two atomic exchanges) and no done flag.
func (e *engine) sendNowLocked(buf []byte, dest, tag int, ctx uint32, check uint32) bool {
	if e.cause != nil || (len(e.revoked) > 0 && e.revoked[ctx] != nil) {
		return false
	}
	rt := e.routeLocked(dest)
	if rt.err != nil || rt.direct == nil || len(buf) > rt.eager {
		return false
	}
	h := &e.hdr
	*h = transport.Header{Kind: kindEager, Context: ctx, Source: uint32(e.rank), Tag: int32(tag), Check: check, Len: uint32(len(buf))}
	return rt.direct.TrySend(dest, h, buf)
}

// startSendLocked starts r as a send of buf to world rank dest. check is
// the collective check word (0 for the program's messages).
func (e *engine) startSendLocked(r *Request, buf []byte, dest int, tag int, ctx uint32, sync bool, check uint32) {
	r.kind, r.peer, r.tag, r.ctx, r.check = reqSend, int32(dest), int32(tag), ctx, check
	e.trackLocked(r)
	if !sync && e.sendNowLocked(buf, dest, tag, ctx, check) {
		// The fast path of small messages: the frame is in the peer's
		// ring, and the send is complete.
		e.completeLocked(r, nil)
		return
	}
	if e.cause != nil {
		e.completeLocked(r, e.opError(r, "send", e.cause))
		return
	}
	if err := e.revokedLocked(ctx); err != nil {
		e.completeLocked(r, e.opError(r, "send", err))
		return
	}
	rt := e.routeLocked(dest)
	if rt.err != nil {
		e.completeLocked(r, e.opError(r, "send", rt.err))
		return
	}
	r.buf = buf
	if rt.self {
		e.sendSelfLocked(r, sync)
		return
	}
	h := &e.hdr
	*h = transport.Header{Kind: kindEager, Context: ctx, Source: uint32(e.rank), Tag: int32(tag), Check: check}
	if !sync && len(buf) <= rt.eager {
		// Eager, but the frame waits (a full ring, or a transport without
		// a direct path).
		h.Len = uint32(len(buf))
		op := r.ownOp()
		op.Header, op.Payload = *h, buf
		r.op = op
		e.sendFrameLocked(rt, dest, op)
		return
	}
	if !sync && len(buf) <= rt.chain {
		e.sendChainLocked(r, rt, dest, buf, *h)
		return
	}
	// Rendezvous: announce the message; the data moves once it matches.
	r.kind = reqSendRndv
	r.rv = &rendezvous{}
	r.rv.cookie = e.newCookieLocked(r)
	h.Kind, h.Aux, h.Cookie = kindRTS, uint64(len(buf)), r.rv.cookie
	op := r.ownOp()
	if rt.reader != nil && len(buf) > 0 {
		if desc, err := rt.reader.Expose(r.rv.desc[:0], buf); err == nil && len(desc) <= len(r.rv.desc) {
			r.rv.ndesc = copy(r.rv.desc[:], desc)
			r.rv.reader = rt.reader
			h.Flags = flagRemoteRead
			h.Len = uint32(r.rv.ndesc)
			op.Payload = r.rv.desc[:r.rv.ndesc]
		}
	}
	op.Header = *h
	r.op = op
	e.sendFrameLocked(rt, dest, op)
}

// sendChainLocked sends r's message eagerly as a chain: a head frame
// (hdr, the message's envelope, made a chain head) that carries the first
// piece and the message's size, then FlagDirect
// pieces that the receiver places where the head said (the receive buffer
// it matched, or the buffer of the unexpected message). The frames are
// queued under this one hold of the lock, so no other frame of the link
// comes between them. Where a message above the eager limit would have
// waited a round trip for its rendezvous, the receiver copies the first
// piece out of the ring while the sender still writes the next.
func (e *engine) sendChainLocked(r *Request, rt *route, dest int, buf []byte, hdr transport.Header) {
	r.kind = reqSendChain
	piece := rt.maxFrame
	n := (len(buf) + piece - 1) / piece
	r.rv = e.chainStateLocked(n - 1)
	r.rv.opsLeft = n
	head := r.ownOp()
	first := min(piece, len(buf)) // less only below a lowered eager limit (tests)
	hdr.Kind, hdr.Len, hdr.Aux = kindChain, uint32(first), uint64(len(buf))
	head.Header = hdr
	head.Payload = buf[:first]
	r.op = head
	// Set up every op before the first goes out: a transport may complete
	// an op (SendDone) inside Send.
	for i := range r.rv.dataOps {
		off := (i + 1) * piece
		end := min(off+piece, len(buf))
		r.rv.dataOps[i] = transport.SendOp{Owner: (*sendOwner)(r), Payload: buf[off:end],
			Header: transport.Header{Kind: kindPiece, Flags: transport.FlagDirect, Source: uint32(e.rank),
				Len: uint32(end - off), Aux: uint64(off)}}
	}
	e.sendFrameLocked(rt, dest, head)
	for i := range r.rv.dataOps {
		e.sendFrameLocked(rt, dest, &r.rv.dataOps[i])
	}
}

// maxFreeChains bounds the states of ended chained sends kept for reuse.
const maxFreeChains = 16

// chainStateLocked returns the state of a chained send with ops pieces,
// reusing one whose send ended: a stream of chained sends then allocates
// nothing.
func (e *engine) chainStateLocked(ops int) *rendezvous {
	var rv *rendezvous
	if n := len(e.chainFree); n > 0 {
		rv = e.chainFree[n-1]
		e.chainFree = e.chainFree[:n-1]
		*rv = rendezvous{dataOps: rv.dataOps[:0]}
	} else {
		rv = new(rendezvous)
	}
	if cap(rv.dataOps) < ops {
		rv.dataOps = make([]transport.SendOp, ops)
	}
	rv.dataOps = rv.dataOps[:ops]
	return rv
}

// revokedLocked returns why context ctx was revoked, or nil; a map
// lookup only once some context was.
func (e *engine) revokedLocked(ctx uint32) error {
	if len(e.revoked) == 0 {
		return nil
	}
	return e.revoked[ctx]
}

func (e *engine) newCookieLocked(r *Request) uint64 {
	e.nextCookie++
	e.cookies[e.nextCookie] = r
	return e.nextCookie
}

// sendSelfLocked delivers a send to this rank.
func (e *engine) sendSelfLocked(r *Request, sync bool) {
	q := e.queue(r.ctx)
	src := int32(e.rank)
	if rr := q.matchPosted(src, r.tag); rr != nil {
		e.finishRecvLocked(rr, src, r.tag, r.check, r.buf)
		e.completeLocked(r, nil)
		return
	}
	m := e.newMessageLocked(src, r.tag, len(r.buf))
	m.check = r.check
	if !sync && len(r.buf) <= selfEagerLimit {
		e.holdPayloadLocked(m, r.buf)
		e.completeLocked(r, nil)
	} else {
		m.selfReq = r
	}
	q.addUnexpected(m)
}

// sendOwner is a Request in its role of owner of frame ops (a
// transport.Completer), a type of its own so that the method transports
// call is not part of Request's API.
type sendOwner Request

// SendDone is called by a transport, under the engine lock, when one of the
// request's frames is out.
func (o *sendOwner) SendDone(op *transport.SendOp, err error) {
	r := (*Request)(o)
	e := r.e
	if r.kind == reqSendChain {
		// Done when every frame is out, failed or not: until then the
		// transport holds ops that point at r.
		if op == r.op {
			r.op = nil
		}
		if err != nil && r.rv.err == nil {
			r.rv.err = err
		}
		if r.rv.opsLeft--; r.rv.opsLeft == 0 {
			rv := r.rv
			r.rv = nil
			if len(e.chainFree) < maxFreeChains {
				e.chainFree = append(e.chainFree, rv)
			}
			e.endSendLocked(r, rv.err)
		}
		return
	}
	if op == r.op {
		// The eager frame, or a rendezvous's announcement, is out.
		r.op = nil
		if err != nil {
			e.endSendLocked(r, err)
		} else if r.kind == reqSend {
			e.completeLocked(r, nil)
		}
		return
	}
	// A data frame of a rendezvous.
	if err != nil {
		e.endSendLocked(r, err)
		return
	}
	r.rv.opsLeft--
	if r.rv.opsLeft == 0 {
		e.endSendLocked(r, nil)
	}
}

// endSendLocked completes a send, ending the exposure of its buffer.
func (e *engine) endSendLocked(r *Request, err error) {
	if r.rv != nil {
		if r.rv.reader != nil {
			r.rv.reader.Unexpose(r.rv.desc[:r.rv.ndesc])
			r.rv.reader = nil
		}
		if err != nil {
			delete(e.cookies, r.rv.cookie)
		}
	}
	if err != nil {
		err = e.opError(r, "send", err)
	}
	e.completeLocked(r, err)
}

// sendDataLocked answers a clear-to-send: the payload goes out in direct
// frames of at most the transport's frame size.
func (e *engine) sendDataLocked(r *Request, recvCookie uint64) {
	rt := e.routeLocked(int(r.peer))
	n := (len(r.buf) + rt.maxFrame - 1) / rt.maxFrame
	r.rv.dataOps = make([]transport.SendOp, n)
	r.rv.opsLeft = n
	for i := range r.rv.dataOps {
		off := i * rt.maxFrame
		end := min(off+rt.maxFrame, len(r.buf))
		op := &r.rv.dataOps[i]
		op.Owner = (*sendOwner)(r)
		op.Header = transport.Header{Kind: kindData, Flags: transport.FlagDirect, Source: uint32(e.rank),
			Len: uint32(end - off), Cookie: recvCookie, Aux: uint64(off)}
		op.Payload = r.buf[off:end]
		e.sendFrameLocked(rt, int(r.peer), op)
	}
}

// sendControlLocked sends a payload-less protocol frame. Control frames are
// fire-and-forget: their op is owned by the engine until done.
func (e *engine) sendControlLocked(rt *route, dest int, kind uint8, cookie, aux uint64) {
	op := e.getOp(e)
	op.Header = transport.Header{Kind: kind, Source: uint32(e.rank), Cookie: cookie, Aux: aux}
	e.sendFrameLocked(rt, dest, op)
}

// --- receiving ---

func (e *engine) irecv(c *Comm, buf []byte, src, tag int, ctx uint32, internal bool, check uint32) *Request {
	r := e.newRequest(c, internal)
	e.mu.Lock()
	e.startRecvLocked(r, buf, src, tag, ctx, check)
	e.unlockPosted()
	return r
}

// startRecvLocked starts r as a receive into buf from world rank src (or
// AnySource). check is the collective check word the message must carry.
func (e *engine) startRecvLocked(r *Request, buf []byte, src, tag int, ctx uint32, check uint32) {
	r.kind = reqRecv
	r.buf, r.src, r.peer, r.tag, r.ctx, r.check = buf, int32(src), int32(src), int32(tag), ctx, check
	e.trackLocked(r)
	if e.cause != nil {
		e.completeLocked(r, e.opError(r, "recv", e.cause))
		return
	}
	if err := e.revokedLocked(ctx); err != nil {
		e.completeLocked(r, e.opError(r, "recv", err))
		return
	}
	q := e.queue(ctx)
	if m := q.findUnexpected(r.src, r.tag); m != nil {
		q.removeUnexpected(m)
		e.matchUnexpectedLocked(r, m)
		e.freeMessageLocked(m)
	} else if err := e.closedPeer(src); err != nil {
		e.completeLocked(r, e.opError(r, "recv", err))
	} else if m := q.otherCheckUnexpected(r.tag, check); m != nil {
		e.mismatchLocked(r, m.src, m.check) // match.go: the message stays for staleLocked
	} else {
		q.post(r)
	}
}

// matchUnexpectedLocked completes (or starts) receive r with the waiting
// message m.
func (e *engine) matchUnexpectedLocked(r *Request, m *message) {
	switch {
	case m.eager:
		e.finishRecvLocked(r, m.src, m.tag, m.check, m.data)
	case m.selfReq != nil:
		e.finishRecvLocked(r, m.src, m.tag, m.check, m.selfReq.buf)
		e.completeLocked(m.selfReq, nil)
	default:
		e.startRndvRecvLocked(r, m.src, m.tag, m.check, m.size, m.cookie, m.desc[:m.ndesc], m.remote)
	}
}

// mismatchLocked fails receive r, whose message came from world rank src
// with another collective's check word.
func (e *engine) mismatchLocked(r *Request, src int32, check uint32) {
	e.completeLocked(r, e.opError(r, "recv", &MismatchError{Peer: r.c.commRank(int(src)), Got: check, Want: r.check}))
}

// finishRecvLocked copies an eager payload into r and completes it.
func (e *engine) finishRecvLocked(r *Request, src, tag int32, check uint32, payload []byte) {
	r.peer = src
	r.status = Status{Source: r.c.commRank(int(src)), Tag: int(tag), Count: len(payload)}
	if check != r.check {
		e.mismatchLocked(r, src, check)
		return
	}
	if len(payload) > len(r.buf) {
		e.completeLocked(r, e.opError(r, "recv", &TruncatedError{Message: len(payload), Buffer: len(r.buf)}))
		return
	}
	copy(r.buf, payload)
	e.completeLocked(r, nil)
}

// startRndvRecvLocked moves a rendezvous message into r: in one copy from
// the sender's memory where the transport allows (the copy is queued for
// unlock: no long system call under mu), else by asking the sender for
// data frames.
func (e *engine) startRndvRecvLocked(r *Request, src, tag int32, check uint32, size int, cookie uint64, desc []byte, remote bool) {
	r.peer = src
	r.status = Status{Source: r.c.commRank(int(src)), Tag: int(tag), Count: size}
	rt := e.routeLocked(int(src))
	if rt.err != nil {
		e.completeLocked(r, e.opError(r, "recv", rt.err))
		return
	}
	if check != r.check {
		e.sendControlLocked(rt, int(src), kindFin, cookie, 0) // the sender's buffer is free
		e.mismatchLocked(r, src, check)
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
	r.rv = &rendezvous{peerCookie: cookie}
	if remote && rt.reader != nil && len(desc) <= len(r.rv.desc) {
		r.rv.ndesc = copy(r.rv.desc[:], desc)
		r.rv.reader = rt.reader
		e.reads = append(e.reads, r)
		return
	}
	r.rv.cookie = e.newCookieLocked(r)
	e.sendControlLocked(rt, int(src), kindCTS, cookie, r.rv.cookie)
}

// finishReadLocked ends a single-copy read that unlock made without the
// lock: on success the sender is told it may reuse its buffer; when the
// kernel refused, this route falls back to data frames for good.
func (e *engine) finishReadLocked(r *Request, err error) {
	rt := e.routeLocked(int(r.peer))
	src := int(r.peer)
	r.rv.reader = nil
	switch {
	case err == nil:
		e.sendControlLocked(rt, src, kindFin, r.rv.peerCookie, 0)
		e.completeLocked(r, nil)
	case errors.Is(err, ErrNotSupported) && e.cause == nil:
		if rt.reader != nil {
			e.log.Info("single-copy transfer refused by the kernel; using copies through the transport",
				zap.Int("peer", src), zap.Error(err))
			e.noticeLocked(fmt.Sprintf("%s: single-copy transfers between ranks are off (the kernel refused process_vm_readv: %v); large messages are copied through shared memory instead, at lower bandwidth",
				rt.host, rootCause(err)))
			rt.reader = nil
			// Without a reader this rank exposes nothing to the peer
			// either: what it sends above the eager limit goes as chains
			// again, not as rendezvous with data frames.
			rt.chain = rt.t.Caps().ChainLimit
		}
		r.rv.cookie = e.newCookieLocked(r)
		e.sendControlLocked(rt, src, kindCTS, r.rv.peerCookie, r.rv.cookie)
	default:
		e.sendControlLocked(rt, src, kindFin, r.rv.peerCookie, 0)
		e.completeLocked(r, e.opError(r, "recv", err))
	}
}

// --- transport.Handler: called by transports' Poll, under mu ---

// Deliver handles one arrived frame from the link to world rank from.
func (e *engine) Deliver(from int, h *transport.Header, payload []byte) {
	if int64(h.Source) != int64(from) {
		e.protocolErrorLocked(from, "a frame on the link from rank %d claims to come from rank %d", from, h.Source)
		return
	}
	switch h.Kind {
	case kindEager, kindRTS:
		e.deliverMessageLocked(from, h, payload)
	case kindChain:
		e.startChainLocked(from, h, payload)
	case kindPiece:
		e.pieceLocked(from, h, payload)
	case kindCTS:
		r := e.cookies[h.Cookie]
		if r == nil && e.droppedAnswerLocked(from, h) {
			return
		}
		if r == nil || r.kind != reqSendRndv || int(r.peer) != from || r.rv.dataOps != nil {
			e.protocolErrorLocked(from, "clear to send for request %d, which rank %d was not given", h.Cookie, from)
			return
		}
		delete(e.cookies, h.Cookie)
		if r.rv.reader != nil {
			r.rv.reader.Unexpose(r.rv.desc[:r.rv.ndesc])
			r.rv.reader = nil
			// The peer could not read what this rank exposed (the kernel
			// refused it there): messages that would have waited for its
			// read go to it as chains from now on.
			if rt := e.routeLocked(from); rt.t != nil {
				rt.chain = rt.t.Caps().ChainLimit
			}
		}
		e.sendDataLocked(r, h.Aux)
	case kindData:
		r := e.cookies[h.Cookie]
		if r == nil && payload != nil && e.droppedDataLocked(from, h) {
			return
		}
		if r == nil || r.kind != reqRecv || int(r.peer) != from {
			e.protocolErrorLocked(from, "data for request %d, which rank %d was not given", h.Cookie, from)
			return
		}
		if payload == nil {
			// Destination refused to place it: it lies outside the message.
			e.protocolErrorLocked(from, "data of %d bytes at offset %d lies outside the %d-byte message", h.Len, h.Aux, r.status.Count)
			return
		}
		r.rv.got += len(payload)
		if r.rv.got >= r.status.Count {
			delete(e.cookies, h.Cookie)
			e.completeLocked(r, nil)
		}
	case kindRevoke:
		if h.Context%ctxStride != ctxColl || len(payload) > maxRevokeReason {
			e.protocolErrorLocked(from, "a malformed revocation")
			return
		}
		e.revokeLocked(h.Context, RevokedError{By: from, Call: int(h.Tag), Kind: coll.KindOf(h.Check), Mismatch: h.Aux == 1, Reason: string(payload)})
	case kindFin:
		r := e.cookies[h.Cookie]
		if r == nil && e.droppedAnswerLocked(from, h) {
			return
		}
		if r == nil || r.kind != reqSendRndv || int(r.peer) != from || h.Aux == 1 && !r.rv.retracting {
			e.protocolErrorLocked(from, "end of transfer for request %d, which rank %d was not given", h.Cookie, from)
			return
		}
		delete(e.cookies, h.Cookie)
		if h.Aux == 1 {
			e.endSendLocked(r, errRetracted) // the receiver dropped the unmatched message
			return
		}
		e.endSendLocked(r, nil)
	case kindRetract:
		e.dropRetractedLocked(from, h)
	default:
		e.protocolErrorLocked(from, "a frame of unknown kind %d", h.Kind)
	}
}

// Destination names where a data frame's payload goes: the part of the
// receive buffer it claims, if it is a data frame for a receive that this
// rank asked the sending peer for, and it lies within the message.
func (e *engine) Destination(from int, h *transport.Header) []byte {
	if h.Kind == kindPiece {
		return e.pieceDestinationLocked(from, h)
	}
	r := e.cookies[h.Cookie]
	if h.Kind == kindData && r == nil {
		return e.droppedDestinationLocked(from, h)
	}
	if h.Kind != kindData || r == nil || r.kind != reqRecv || int(r.peer) != from {
		return nil
	}
	end := h.Aux + uint64(h.Len)
	if end > uint64(r.status.Count) || end < h.Aux {
		return nil
	}
	return r.buf[h.Aux:end]
}

func (e *engine) deliverMessageLocked(from int, h *transport.Header, payload []byte) {
	q := e.queue(h.Context)
	src := int32(from)
	remote := h.Kind == kindRTS && h.Flags&flagRemoteRead != 0
	if h.Kind == kindRTS && h.Aux > math.MaxInt {
		e.protocolErrorLocked(from, "announces a message of %d bytes", h.Aux)
		return
	}
	if r := q.matchPosted(src, h.Tag); r != nil {
		if h.Kind == kindEager {
			e.finishRecvLocked(r, src, h.Tag, h.Check, payload)
		} else {
			e.startRndvRecvLocked(r, src, h.Tag, h.Check, int(h.Aux), h.Cookie, payload, remote)
		}
		return
	}
	if r := q.otherCheckPosted(h.Tag, h.Check); r != nil {
		q.removePosted(r)
		e.mismatchLocked(r, src, h.Check) // match.go; the message is queued as any other
	}
	if h.Kind == kindEager {
		m := e.newMessageLocked(src, h.Tag, len(payload))
		m.check = h.Check
		e.holdPayloadLocked(m, payload)
		q.addUnexpected(m)
		return
	}
	m := e.newMessageLocked(src, h.Tag, int(h.Aux))
	m.check = h.Check
	m.cookie, m.remote = h.Cookie, remote
	if remote {
		if len(payload) > len(m.desc) {
			m.remote = false // not a descriptor this rank can use: ask for data frames
		} else {
			m.ndesc = copy(m.desc[:], payload)
		}
	}
	q.addUnexpected(m)
}

// maxFreeMessages bounds the unexpected-message records kept for reuse.
const maxFreeMessages = 64

// newMessageLocked returns an unexpected-message record, reusing a freed
// one: a small message that arrives before its receive is posted (the
// common case in collectives) then allocates nothing.
func (e *engine) newMessageLocked(src, tag int32, size int) *message {
	if n := len(e.msgFree); n > 0 {
		m := e.msgFree[n-1]
		e.msgFree = e.msgFree[:n-1]
		*m = message{src: src, tag: tag, size: size}
		return m
	}
	return &message{src: src, tag: tag, size: size}
}

// holdPayloadLocked copies an eager payload into m: into m itself when it
// is small (one allocation for record and payload), else into a buffer
// from the engine's payload pools, which freeMessageLocked gives back.
func (e *engine) holdPayloadLocked(m *message, payload []byte) {
	m.eager = true
	if len(payload) <= len(m.inline) {
		m.data = m.inline[:len(payload)]
	} else if m.pooled = e.payloads.get(len(payload)); m.pooled != nil {
		m.data = (*m.pooled)[:len(payload)]
	} else {
		m.data = make([]byte, len(payload))
	}
	copy(m.data, payload)
}

// payloadPools keep the buffers of unexpected eager payloads, in
// power-of-two size classes from 128 bytes to 64 KiB (TCP's eager limit);
// longer payloads get buffers of their own. Without them every such
// message was an allocation, zeroed and soon garbage: a stream of 64 KiB
// messages over TCP that arrive before their receives (bibw) collected
// garbage hundreds of times a second, and the Go runtime's threads woke
// for it: about 5,000 context switches a second on two cores.
//
// A sync.Pool per class, per engine (never shared between the engines of
// one process, as in tests): the collector empties them when they are
// not used, so a burst of unexpected messages does not pin its memory.
type payloadPools [payloadMaxClass - payloadMinClass + 1]sync.Pool

const payloadMinClass, payloadMaxClass = 7, 16 // 128 B .. 64 KiB

// payloadClass returns the index of the smallest class that holds n
// bytes, or -1 when n is larger than every class.
func payloadClass(n int) int {
	c := max(bits.Len(uint(n-1)), payloadMinClass) // 1<<c >= n
	if c > payloadMaxClass {
		return -1
	}
	return c - payloadMinClass
}

// get returns a buffer of its class's size that holds n bytes, pooled or
// new, or nil when n is larger than every class.
func (pp *payloadPools) get(n int) *[]byte {
	c := payloadClass(n)
	if c < 0 {
		return nil
	}
	if bp, _ := pp[c].Get().(*[]byte); bp != nil {
		return bp
	}
	b := make([]byte, 1<<(c+payloadMinClass))
	return &b
}

// put gives back a buffer get returned (its length is its class's size).
func (pp *payloadPools) put(bp *[]byte) { pp[payloadClass(len(*bp))].Put(bp) }

// freeMessageLocked drops a matched message's references.
//
// Only an eager message whose payload is inline or pooled is kept for
// reuse (its pooled buffer goes back to the pools): no request refers to
// it once matched, where a rendezvous request may keep its descriptor.
// Callers may still read m until they release the lock (its links and
// fields stay as they were until reuse), but not its payload.
func (e *engine) freeMessageLocked(m *message) {
	reuse := m.eager && m.selfReq == nil && (len(m.data) <= len(m.inline) || m.pooled != nil)
	if m.pooled != nil {
		e.payloads.put(m.pooled)
		m.pooled = nil
	}
	m.data, m.selfReq = nil, nil
	if reuse && len(e.msgFree) < maxFreeMessages {
		e.msgFree = append(e.msgFree, m)
	}
}

// rootCause returns the innermost error of err's chain, without the
// details (ranks, pids) that differ from rank to rank.
func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			if j, ok := err.(interface{ Unwrap() []error }); ok && len(j.Unwrap()) > 0 {
				errs := j.Unwrap()
				return rootCause(errs[len(errs)-1])
			}
			return err
		}
		err = u
	}
}

// errRetracted completes a send withdrawn from its receiver before it
// matched (WaitContext).
var errRetracted = errors.New("send withdrawn from its receiver before it matched")

// retract asks the receiver of send r, not complete, to drop it if no
// receive has matched it yet (as MPI_Cancel does for sends). The outcome
// comes back: a FIN that says the message was dropped (r fails with
// errRetracted), or the transfer's normal end. A send to self is withdrawn
// here; an eager send is already on its way and completes.
func (e *engine) retract(r *Request) {
	e.mu.Lock()
	defer e.unlock()
	if r.done.Load() || e.cause != nil {
		return
	}
	rt := e.routeLocked(int(r.peer))
	if rt.self {
		q := e.queue(r.ctx)
		for m := q.unexpHead; m != nil; m = m.next {
			if m.selfReq == r {
				q.removeUnexpected(m)
				e.freeMessageLocked(m)
				e.completeLocked(r, e.opError(r, "send", errRetracted))
				return
			}
		}
		return
	}
	if r.kind != reqSendRndv || r.rv == nil || r.rv.dataOps != nil || r.rv.retracting || rt.err != nil {
		return
	}
	if e.cookies[r.rv.cookie] != r {
		return // matched: the transfer is under way
	}
	r.rv.retracting = true
	op := e.getOp(e)
	op.Header = transport.Header{Kind: kindRetract, Context: r.ctx, Source: uint32(e.rank), Cookie: r.rv.cookie}
	e.sendFrameLocked(rt, int(r.peer), op)
}

// dropRetractedLocked handles a retraction from world rank from: if the
// RTS it names waits unmatched, it is dropped and the sender told so;
// if it matched already, the transfer goes on and the sender learns its
// normal end.
func (e *engine) dropRetractedLocked(from int, h *transport.Header) {
	q := e.queues[h.Context]
	if q == nil {
		return
	}
	for m := q.unexpHead; m != nil; m = m.next {
		if int(m.src) == from && !m.eager && m.selfReq == nil && m.cookie == h.Cookie {
			q.removeUnexpected(m)
			e.freeMessageLocked(m)
			e.sendControlLocked(e.routeLocked(from), from, kindFin, h.Cookie, 1)
			return
		}
	}
}
