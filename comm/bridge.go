package comm

import (
	"errors"
	"fmt"

	"github.com/parley-hpc/parley/internal/coll"
	"github.com/parley-hpc/parley/internal/release"
	"github.com/parley-hpc/parley/transport"
)

// The bridge to package collectives (see internal/coll): the operations a
// collective algorithm needs on a communicator's collective context, with
// the call's tag and check word, and requests the runtime recycles. It is
// set here so that none of it appears in this package's API.
func init() {
	b := &coll.Bridge
	b.Begin = collBegin
	b.Send = collSend
	b.SendRead = collSendRead
	b.Recv = collRecv
	b.Sendrecv = collSendrecv
	b.Isend = collIsend
	b.Irecv = collIrecv
	b.Free = collFree
	b.Generic = collGeneric
	b.Failed = func(err error) any { return failed(err) }
	b.Abandon = collAbandon
	b.ReadsAbove = collReadsAbove
	b.Board = collBoard
	b.BoardExchange = collBoardExchange
	b.BoardBarrier = collBoardBarrier
	b.BoardPart = collBoardPart
}

// collReadsAbove answers from what the members of a host share: the node
// agent's settings, the same for all, through their transport's Caps; a
// communicator that spans hosts, or a rank reached over TCP, has a route
// without ReadFirst on every member. Whether the kernel allows the single
// copy (route.reader) is left out: it can differ from rank to rank, and
// where it is refused the messages still arrive, as chains.
//
// The answer is worked out once per communicator (it takes the lock and a
// look at every member's route) and cached: after that a question costs
// one load, so algorithms may ask it at any size.
func collReadsAbove(k coll.Call) int {
	v := k.View.(*Comm)
	above := v.readsAbove.Load()
	if above == 0 {
		above = v.e.readsAbove(v)
		v.readsAbove.Store(above)
	}
	return int(above)
}

// readsAbove returns the size above which every member of v reads the
// messages of every other (the largest eager limit among v's routes), or
// -1 where some member never does.
func (e *engine) readsAbove(v *Comm) int64 {
	e.mu.Lock()
	defer e.unlock()
	above := int64(-1)
	for r := range v.size {
		w := v.worldRank(r)
		if w == e.rank {
			continue
		}
		rt := e.routeLocked(w)
		if rt.err != nil || rt.t == nil || !rt.t.Caps().ReadFirst {
			return -1
		}
		above = max(above, int64(rt.eager))
	}
	return above
}

func collBegin(c any, k coll.Kind, a coll.Args) (view any, rank, size, tag int, check uint32, err error) {
	cm, _ := c.(*Comm)
	if cm == nil || cm.freed.Load() || cm.e.finalized() {
		return nil, 0, 0, 0, 0, cm.usable(k.String()) // the name only when it is needed
	}
	v := cm.coll
	tag = int(cm.nextCollective() % (MaxTag + 1))
	// The checks for a revoked context and for stale messages take the
	// lock only when there may be something to find: a revocation, or an
	// unexpected message on a collective context. Otherwise nothing is
	// missed: what arrives an instant after these loads could as well
	// have arrived an instant after the unlock. (Blocks of calls
	// alternating in one run, 2 ranks, 8 B: Bcast 0.94, Allreduce 0.92,
	// Reduce 0.91, Gather 0.96 of the time with the lock at every start.)
	var revoked, stale error
	if v.e.revokedAny.Load() || v.e.collUnexp.n.Load() != 0 {
		v.e.mu.Lock()
		revoked = v.e.revoked[v.ctx]
		if revoked == nil {
			stale = v.e.staleLocked(v, tag)
		}
		v.e.unlock()
	}
	if revoked != nil {
		return nil, 0, 0, 0, 0, &OpError{Op: k.String(), Comm: cm.name(), Rank: cm.rank, Peer: noPeer, Tag: noPeer, Err: revoked}
	}
	check = coll.Check(k, a)
	if b := v.e.worldBoard(v); b != nil {
		b.own.Arrive(boardWord(tag, check)) // board.go: whatever path the call takes
	}
	if stale != nil {
		// Tell the others, as for any failed call: they may already wait
		// in this call for this rank, without a stale message of their
		// own to find (one that was still on its way when they began).
		collAbandon(coll.Call{View: v, Tag: tag, Check: check}, stale)
		return nil, 0, 0, 0, 0, stale
	}
	return v, v.rank, v.size, tag, check, nil
}

// staleLocked looks, as collective call tag begins on the collective view v, for
// messages of earlier collective calls that no receive on this rank took:
// their sender believed this rank would receive them (a Bcast whose ranks
// named different roots leaves such messages, and returns without error
// on the ranks that only send). It reports the first as ErrMismatch, and
// drops them all, so that the error is reported once.
func (e *engine) staleLocked(v *Comm, tag int) error {
	q := e.queueIfAny(v.ctx)
	if q == nil || q.unexpLen == 0 {
		return nil
	}
	var first *message
	for m := q.unexpHead; m != nil; {
		next := m.next
		if d := (tag - int(m.tag)) & MaxTag; d > 0 && d < MaxTag/2 && q.nbActive[m.tag] == 0 {
			if first == nil {
				first = m
				defer e.freeMessageLocked(m)
			} else {
				e.freeMessageLocked(m)
			}
			q.removeUnexpected(m)
			if !m.eager && m.selfReq == nil {
				e.sendControlLocked(e.routeLocked(int(m.src)), int(m.src), kindFin, m.cookie, 0)
			}
		}
		m = next
	}
	if first == nil {
		return nil
	}
	return &OpError{Op: coll.KindOf(first.check).String(), Comm: v.parent.name(), Rank: v.rank, Peer: v.commRank(int(first.src)), Tag: noPeer,
		Err: fmt.Errorf("%w: rank %d sent this rank a message of %v (collective call %d) that no receive here took: the ranks disagreed on that call (its root, most likely)",
			ErrMismatch, v.commRank(int(first.src)), coll.KindOf(first.check), first.tag)}
}

func collSend(k coll.Call, buf []byte, dest int) error {
	v := k.View.(*Comm)
	return v.e.send(v, buf, v.worldRank(dest), k.Tag, v.ctx, k.Check)
}

// collSendRead is a synchronous send: its announcement carries no data,
// and the receiver reads the message out of buf where a transport lets it
// (kindRTS with flagRemoteRead), whatever its size.
func collSendRead(k coll.Call, buf []byte, dest int) error {
	v := k.View.(*Comm)
	r := v.e.isend(v, buf, v.worldRank(dest), k.Tag, v.ctx, true, true, k.Check)
	_, err := v.e.finish(r, inSend)
	return err
}

func collRecv(k coll.Call, buf []byte, src int) (int, error) {
	v := k.View.(*Comm)
	r := v.e.irecv(v, buf, v.worldRank(src), k.Tag, v.ctx, true, k.Check)
	st, err := v.e.finish(r, inRecv)
	return st.Count, err
}

func collSendrecv(k coll.Call, sbuf []byte, dest int, rbuf []byte, src int) (int, error) {
	v := k.View.(*Comm)
	sr, rr := v.e.sendrecv(v, sbuf, v.worldRank(dest), k.Tag, rbuf, v.worldRank(src), k.Tag, v.ctx, k.Check)
	_, serr := v.e.finish(sr, inSend)
	if serr != nil {
		// The send failed (no transport reaches dest, most likely): the
		// receive would wait for a rank that may be waiting for this one,
		// as in a Barrier between ranks that cannot reach each other.
		// Abandoning the call fails the receive and tells the others.
		collAbandon(k, serr)
		v.e.finish(rr, inRecv)
		return 0, serr
	}
	st, rerr := v.e.finish(rr, inRecv)
	return st.Count, rerr
}

func collIsend(k coll.Call, buf []byte, dest int) any {
	v := k.View.(*Comm)
	r := v.e.isend(v, buf, v.worldRank(dest), k.Tag, v.ctx, false, true, k.Check)
	if r.done.Load() && r.err != nil {
		// Failed at once (no transport reaches dest): as in collSendrecv,
		// the call's receives, posted first, must not wait for ranks that
		// may be waiting for this one.
		collAbandon(k, r.err)
	}
	return r
}

func collIrecv(k coll.Call, buf []byte, src int) any {
	v := k.View.(*Comm)
	return v.e.irecv(v, buf, v.worldRank(src), k.Tag, v.ctx, true, k.Check)
}

// collFree recycles a collective's own request once it is complete.
func collFree(x any) {
	r, _ := x.(*Request)
	if r == nil || !r.internal || !r.done.Load() || r.err != nil {
		return
	}
	e := r.e
	*r = Request{e: e, internal: true}
	for i := range e.spares {
		if e.spares[i].Load() == nil && e.spares[i].CompareAndSwap(nil, r) {
			return
		}
	}
}

// leftoverCollectiveLocked reports, at Finalize, messages of collective
// calls that no receive on this rank took (see stale): the last collective
// before Finalize has no next one to find them.
func (e *engine) leftoverCollectiveLocked() error {
	for ctx, q := range e.queues {
		if ctx%ctxStride != ctxColl || e.revoked[ctx] != nil {
			continue
		}
		for m := q.unexpHead; m != nil; m = m.next {
			if q.nbActive[m.tag] == 0 {
				return fmt.Errorf("finalize: %w: rank %d sent this rank a message of %v (collective call %d on %s) that no receive here took: the ranks disagreed on that call (its root, most likely)",
					ErrMismatch, m.src, coll.KindOf(m.check), m.tag, describeComm(ctx))
			}
		}
	}
	return nil
}

// collGeneric makes the request of a nonblocking collective. While it is
// in progress, its tag is marked active on the collective context, so that
// its messages waiting there are not taken for stale ones.
func collGeneric(k *coll.Call, poll func() (bool, error)) any {
	v := k.View.(*Comm)
	e, tag := v.e, int32(k.Tag)
	e.mu.Lock()
	q := e.queue(v.ctx)
	if q.nbActive == nil {
		q.nbActive = make(map[int32]int)
	}
	q.nbActive[tag]++
	e.unlock()
	finished := false
	return v.parent.newGeneric(coll.KindOf(k.Check).String(), v.ctx, k.Tag, k.Check, func() (bool, error) {
		done, err := poll()
		if (done || err != nil) && !finished {
			finished = true
			e.mu.Lock()
			if q.nbActive[tag]--; q.nbActive[tag] <= 0 {
				delete(q.nbActive, tag)
			}
			e.unlock()
		}
		return done, err
	})
}

// maxRevokeReason bounds the reason a revocation carries.
const maxRevokeReason = 512

// RevokedError is the cause inside an OpError when a collective failed on
// another rank of the communicator: that rank told the others, so that
// none waits forever for it, and the communicator's collectives are
// unusable from then on. It matches ErrMismatch when the failure was a
// mismatch, and ErrRevoked always.
type RevokedError struct {
	By       int // world rank that found the failure
	Call     int // the collective call (sequence number) that failed
	Kind     coll.Kind
	Mismatch bool
	Reason   string
}

func (e RevokedError) Error() string {
	return fmt.Sprintf("%v (collective call %d) failed on world rank %d, which told every rank: %s; the communicator's collectives are unusable from now on",
		e.Kind, e.Call, e.By, e.Reason)
}

func (e RevokedError) Is(target error) bool {
	return target == ErrRevoked || e.Mismatch && target == ErrMismatch
}

// revokeLocked marks collective context ctx failed: pending operations on
// it fail with why, and so do later ones.
func (e *engine) revokeLocked(ctx uint32, why RevokedError) {
	if e.revoked == nil {
		e.revoked = make(map[uint32]error)
	}
	if e.revoked[ctx] != nil {
		return
	}
	e.revoked[ctx] = why
	release.SetTrue(&e.revokedAny)
	if q := e.queues[ctx]; q != nil {
		for r := q.postedHead; r != nil; {
			next := r.qnext
			q.removePosted(r)
			e.completeLocked(r, e.opError(r, "recv", why))
			r = next
		}
	}
	e.failChainsLocked(func(r *Request) error {
		if r.ctx != ctx {
			return nil
		}
		return e.opError(r, "recv", why)
	})
	for k, r := range e.cookies {
		if r.ctx == ctx {
			e.dropTransferLocked(k, r)
			delete(e.cookies, k)
			op := "send"
			if r.kind == reqRecv {
				op = "recv"
			}
			e.completeLocked(r, e.opError(r, op, why))
		}
	}
	e.bell.Ring()
}

// collAbandon is called by a collective that failed on this rank: it
// revokes the communicator's collective context here and tells every
// other member, so that those waiting for this rank fail too, naming it,
// instead of waiting forever.
func collAbandon(k coll.Call, err error) {
	v := k.View.(*Comm)
	e := v.e
	var rv RevokedError
	if errors.As(err, &rv) {
		return // a revocation received: the rank that found it told everyone
	}
	reason := err.Error()
	if len(reason) > maxRevokeReason {
		reason = reason[:maxRevokeReason]
	}
	why := RevokedError{By: e.rank, Call: k.Tag, Kind: coll.KindOf(k.Check), Mismatch: errors.Is(err, ErrMismatch), Reason: reason}
	aux := uint64(0)
	if why.Mismatch {
		aux = 1
	}
	e.mu.Lock()
	defer e.unlock()
	if e.revoked[v.ctx] != nil || e.cause != nil {
		return
	}
	e.revokeLocked(v.ctx, why)
	for r := 0; r < v.size; r++ {
		w := v.worldRank(r)
		if w == e.rank {
			continue
		}
		rt := e.routeLocked(w)
		if rt.err != nil || rt.self {
			continue
		}
		op := e.getOp(e)
		op.Header = transport.Header{Kind: kindRevoke, Context: v.ctx, Source: uint32(e.rank), Tag: int32(k.Tag), Check: k.Check, Aux: aux, Len: uint32(len(reason))}
		op.Payload = []byte(reason)
		e.sendFrameLocked(rt, w, op)
	}
}
