package comm

import "github.com/parley-hpc/parley/transport"

// Rendezvous cut short by a revocation. When a communicator's collectives
// are revoked, its pending operations fail at once and their cookies are
// dropped, but a peer may already be answering one of them: a receiver
// that matched this rank's announcement sends CTS (or, after a single-copy
// read, FIN); a sender this rank asked for data streams its data frames.
// Those frames name a cookie this rank no longer has, which would read as
// a protocol violation and end the world. The cookie is therefore kept as
// a dropped transfer until its answers are in: a CTS or FIN ends it (the
// receiver's side is revoked too, so nobody waits for data that will not
// come), data frames are counted and thrown away.

// droppedTransfer is a revoked rendezvous whose peer may still answer.
type droppedTransfer struct {
	peer int32
	send bool // this rank's send: a CTS or FIN may come; else a receive: data frames
	left int  // a receive: data bytes still to come
}

// maxDropped bounds the dropped transfers kept: a peer that never answers
// (it failed too) leaves its entry behind, and a program that revokes
// communicators in a loop must not grow the map without end.
const maxDropped = 1024

// dropTransferLocked records that the rendezvous of request r, under
// cookie, is being revoked.
func (e *engine) dropTransferLocked(cookie uint64, r *Request) {
	d := droppedTransfer{peer: r.peer}
	switch {
	case r.kind == reqSendRndv:
		d.send = true
	case r.kind == reqRecv && r.rv != nil:
		d.left = r.status.Count - r.rv.got
	default:
		return
	}
	if e.dropped == nil {
		e.dropped = make(map[uint64]droppedTransfer)
	}
	if len(e.dropped) >= maxDropped {
		for k := range e.dropped {
			delete(e.dropped, k) // the oldest cannot be told apart: any one
			break
		}
	}
	e.dropped[cookie] = d
}

// droppedAnswerLocked takes a CTS or FIN from world rank from that
// names a dropped send; it reports whether it did.
func (e *engine) droppedAnswerLocked(from int, h *transport.Header) bool {
	d, ok := e.dropped[h.Cookie]
	if !ok || !d.send || int(d.peer) != from {
		return false
	}
	delete(e.dropped, h.Cookie)
	return true
}

// droppedDestinationLocked names where a data frame for a dropped receive
// goes: a scratch buffer, if the frame fits what is still to come.
func (e *engine) droppedDestinationLocked(from int, h *transport.Header) []byte {
	d, ok := e.dropped[h.Cookie]
	if !ok || d.send || int(d.peer) != from || int(h.Len) > d.left {
		return nil
	}
	if cap(e.discard) < int(h.Len) {
		e.discard = make([]byte, h.Len)
	}
	return e.discard[:h.Len]
}

// droppedDataLocked counts a data frame placed by droppedDestinationLocked;
// it reports whether the frame was one.
func (e *engine) droppedDataLocked(from int, h *transport.Header) bool {
	d, ok := e.dropped[h.Cookie]
	if !ok || d.send || int(d.peer) != from {
		return false
	}
	if d.left -= int(h.Len); d.left <= 0 {
		delete(e.dropped, h.Cookie)
	} else {
		e.dropped[h.Cookie] = d
	}
	return true
}
