package comm

import (
	"sync/atomic"

	"github.com/parley-hpc/parley/internal/release"
)

// Matching, as MPI defines it: a message matches the first posted receive
// (in post order) whose source and tag accept it; a receive matches the
// first unexpected message (in arrival order) it accepts. Messages from
// one sender on one context arrive in the order sent (every transport
// keeps per-pair order), so they are never overtaken.
//
// Each context has its own queues. All of it is guarded by engine.mu.

// message is an arrival no receive was waiting for.
type message struct {
	src   int32 // world rank of the sender
	tag   int32
	check uint32 // the collective check word of the message
	size  int    // message bytes

	eager  bool
	data   []byte  // eager payload copy (len == size): inline, pooled, or a buffer of its own
	pooled *[]byte // data's buffer when it came from the engine's payload pools
	inline [64]byte

	// Rendezvous: the sender's request cookie and, for a single-copy read,
	// the descriptor of its buffer.
	cookie uint64
	desc   [32]byte
	ndesc  int
	remote bool

	// A send to self larger than the eager limit waits here, uncopied,
	// until a receive matches it.
	selfReq *Request

	next, prev *message
}

type matchQueue struct {
	postedHead, postedTail *Request
	unexpHead, unexpTail   *message
	unexpLen               int
	// coll, on a collective context, is the engine's count of unexpected
	// messages on every collective context, which collBegin reads without
	// the lock.
	coll *unexpCount
	// nbActive, on a collective context, holds the tags of nonblocking
	// collectives started and not completed: their messages may wait here
	// legitimately while later collectives run (see staleLocked).
	nbActive map[int32]int
}

func accepts(wantSrc, wantTag, src, tag int32) bool {
	return (wantSrc == AnySource || wantSrc == src) && (wantTag == AnyTag || wantTag == tag)
}

func (q *matchQueue) post(r *Request) {
	r.posted = true
	r.qnext, r.qprev = nil, q.postedTail
	if q.postedTail == nil {
		q.postedHead = r
	} else {
		q.postedTail.qnext = r
	}
	q.postedTail = r
}

func (q *matchQueue) removePosted(r *Request) {
	if r.qprev == nil {
		q.postedHead = r.qnext
	} else {
		r.qprev.qnext = r.qnext
	}
	if r.qnext == nil {
		q.postedTail = r.qprev
	} else {
		r.qnext.qprev = r.qprev
	}
	r.qnext, r.qprev = nil, nil
	r.posted = false
}

// matchPosted finds and removes the first posted receive that accepts a
// message from src with tag.
func (q *matchQueue) matchPosted(src, tag int32) *Request {
	for r := q.postedHead; r != nil; r = r.qnext {
		if accepts(r.src, r.tag, src, tag) {
			q.removePosted(r)
			return r
		}
	}
	return nil
}

func (q *matchQueue) addUnexpected(m *message) {
	m.next, m.prev = nil, q.unexpTail
	if q.unexpTail == nil {
		q.unexpHead = m
	} else {
		q.unexpTail.next = m
	}
	q.unexpTail = m
	q.unexpLen++
	if q.coll != nil {
		q.coll.add(1)
	}
}

func (q *matchQueue) removeUnexpected(m *message) {
	if m.prev == nil {
		q.unexpHead = m.next
	} else {
		m.prev.next = m.next
	}
	if m.next == nil {
		q.unexpTail = m.prev
	} else {
		m.next.prev = m.prev
	}
	m.next, m.prev = nil, nil
	q.unexpLen--
	if q.coll != nil {
		q.coll.add(-1)
	}
}

// Two messages of one collective call carry the same check word (coll.Check
// of what every rank must agree on), so a message whose call (tag) a receive
// here waits for, with another check, is a mismatch even where its source
// is not the one the receive names. Ranks whose arguments differ can take
// different algorithms (a flat exchange for a short vector, recursive
// doubling for a long one) and wait for each other in a cycle, every
// message of the call queued where no receive takes it; these two checks
// find it, at arrival and at post.

// otherCheckPosted returns a posted receive of collective call tag whose
// check word is not check (nil on a context of the program's messages).
func (q *matchQueue) otherCheckPosted(tag int32, check uint32) *Request {
	if q.coll == nil || q.postedHead == nil {
		return nil
	}
	for r := q.postedHead; r != nil; r = r.qnext {
		if r.tag == tag && r.check != check {
			return r
		}
	}
	return nil
}

// otherCheckUnexpected returns a waiting message of collective call tag
// whose check word is not check.
func (q *matchQueue) otherCheckUnexpected(tag int32, check uint32) *message {
	if q.coll == nil || q.unexpLen == 0 {
		return nil
	}
	for m := q.unexpHead; m != nil; m = m.next {
		if m.tag == tag && m.check != check {
			return m
		}
	}
	return nil
}

// findUnexpected returns the first unexpected message a receive for
// (src, tag) accepts, without removing it.
func (q *matchQueue) findUnexpected(src, tag int32) *message {
	for m := q.unexpHead; m != nil; m = m.next {
		if accepts(src, tag, m.src, m.tag) {
			return m
		}
	}
	return nil
}

// unexpCount counts unexpected messages. Only the engine's lock holder
// changes it, with a release store, so that the count costs the message
// path no atomic read-modify-write; collBegin reads it without the lock.
type unexpCount struct{ n atomic.Uint32 }

func (c *unexpCount) add(d int) { release.Store32(&c.n, c.n.Load()+uint32(d)) }
