package comm

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley-hpc/parley/transport"
)

// DebugRequest describes a request's internal state, for tests.
func DebugRequest(r *Request) string {
	if r == nil {
		return "nil"
	}
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	s := fmt.Sprintf("kind=%d done=%v peer=%d tag=%d len=%d op=%v", r.kind, r.done.Load(), r.peer, r.tag, len(r.buf), r.op != nil)
	if r.rv != nil {
		_, inCookies := r.e.cookies[r.rv.cookie]
		s += fmt.Sprintf(" cookie=%d registered=%v opsLeft=%d", r.rv.cookie, inCookies, r.rv.opsLeft)
	}
	if r.op != nil {
		s += fmt.Sprintf(" opstate=%v kind=%d flags=%d", r.op.Done(), r.op.Header.Kind, r.op.Header.Flags)
	}
	return s
}

// WriteCalls counts the write system calls c's engine made on its
// transports that count them (TCP).
func WriteCalls(c *Comm) int {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, t := range e.transports {
		if w, ok := t.(interface{ WriteCalls() int }); ok {
			n += w.WriteCalls()
		}
	}
	return n
}

// DebugEngine describes the transports' state of c's engine, for tests.
func DebugEngine(c *Comm) string {
	e := c.e
	e.mu.Lock()
	defer e.mu.Unlock()
	s := fmt.Sprintf("rank %d sleeping=%v flushing=%v", e.rank, e.sleeping, e.flushing)
	for _, l := range e.links {
		if d, ok := l.t.(interface{ DebugState() string }); ok {
			s += " " + l.name + ": " + d.DebugState()
		}
	}
	for _, rec := range e.waits.snapshot() {
		s += "\n  " + e.describeWait(rec)
	}
	for ctx, q := range e.queues {
		for r := q.postedHead; r != nil; r = r.qnext {
			s += fmt.Sprintf("\n  ctx %d posted recv src=%d tag=%d len=%d", ctx, r.src, r.tag, len(r.buf))
		}
		for m := q.unexpHead; m != nil; m = m.next {
			s += fmt.Sprintf("\n  ctx %d unexpected src=%d tag=%d size=%d eager=%v self=%v", ctx, m.src, m.tag, m.size, m.eager, m.selfReq != nil)
		}
	}
	for k, r := range e.cookies {
		s += fmt.Sprintf("\n  cookie %d: kind=%d peer=%d src=%d tag=%d count=%d", k, r.kind, r.peer, r.src, r.tag, r.status.Count)
	}
	return s
}

// SetReadHook makes c's engine call f before each batch of single-copy
// reads, without its lock held.
func SetReadHook(c *Comm, f func()) {
	c.e.mu.Lock()
	c.e.readHook = f
	c.e.mu.Unlock()
}

// DeliverFrame hands c's engine a frame as if its transport had read it
// from the link to world rank from: for direct frames, the payload is
// placed where the engine's Destination says (nil if nowhere), as the
// transports do.
func DeliverFrame(c *Comm, from int, h transport.Header, payload []byte) {
	e := c.e
	e.mu.Lock()
	if h.Flags&transport.FlagDirect != 0 {
		dst := e.Destination(from, &h)
		if len(dst) == len(payload) {
			copy(dst, payload)
		} else {
			dst = nil
		}
		payload = dst
	}
	e.Deliver(from, &h, payload)
	e.unlock()
}

// Cookie returns the cookie a rendezvous request gave its peer, or 0.
func Cookie(r *Request) uint64 {
	r.e.mu.Lock()
	defer r.e.mu.Unlock()
	if r.rv == nil {
		return 0
	}
	return r.rv.cookie
}

// Frame kinds, for forged frames.
const (
	KindEager  = kindEager
	KindCTS    = kindCTS
	KindData   = kindData
	KindFin    = kindFin
	KindChain  = kindChain
	KindPiece  = kindPiece
	KindRevoke = kindRevoke
)

// CollContext is the context of c's collective operations.
func CollContext(c *Comm) uint32 { return c.coll.ctx }

// Cookies counts the rendezvous requests of c's engine waiting for their
// peer, and lists the cookies of those a revocation dropped.
func Cookies(c *Comm) (pending int, dropped []uint64) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	for k := range c.e.dropped {
		dropped = append(dropped, k)
	}
	return len(c.e.cookies), dropped
}

// Report is what the rank would answer mpirun's hang query.
func Report(c *Comm) string {
	text, _, _ := c.e.report()
	return text
}

// LooseFence tells Start that o.KV's Fence is no barrier (as Hydra's
// PMI-2 kvs-fence), so that Finalize adds its own.
func LooseFence(o *Options) { o.looseFence = true }

// BreakRoute makes c's rank unable to reach world rank dest from now on,
// as when no transport reaches it: sends to it fail with err.
func BreakRoute(c *Comm, dest int, err error) {
	e := c.e
	e.mu.Lock()
	rt := e.routeLocked(dest)
	rt.err = fmt.Errorf("rank %d: %w (%w)", dest, transport.ErrNoRoute, err)
	e.unlock()
}

// RefuseReads makes c's engine read nothing out of its peers' memory from
// now on, as when the kernel refuses process_vm_readv (for routes not yet
// set up: call it before the first message).
func RefuseReads(c *Comm) {
	c.e.mu.Lock()
	c.e.noRemoteRead = true
	c.e.mu.Unlock()
}

// ChainLimit is the largest message c's engine now sends to world rank
// dest as a chain.
func ChainLimit(c *Comm, dest int) int {
	c.e.mu.Lock()
	defer c.e.unlock()
	return c.e.routeLocked(dest).chain
}

// TransportOptionsFromEnv is what Init reads from the environment
// mpirun's agent gives a rank about how ranks talk.
func TransportOptionsFromEnv() (Options, error) {
	var o Options
	err := transportOptionsFromEnv(&o)
	return o, err
}

// WaitForCalls makes c's engine wait, with no spinning or yielding
// before it sleeps, for a condition that first holds at its kth call,
// and returns how many times the condition was called. The condition
// rings the bell at every call, so that each sleep ends at once.
func WaitForCalls(c *Comm, k int) int {
	e := c.e
	e.mu.Lock()
	spin, yield := e.spinFor, e.yieldFor
	e.spinFor, e.yieldFor = 0, 0
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.spinFor, e.yieldFor = spin, yield
		e.mu.Unlock()
	}()
	calls := 0
	e.waitFor(func() bool {
		calls++
		e.bell.Ring()
		return calls >= k
	}, waitRecord{what: inProbe, peer: -1, tag: -1, ctx: c.ctx})
	return calls
}

// SetPolitely makes c's engine wait as ranks that share cores do (true)
// or as ranks with cores of their own (false).
func SetPolitely(c *Comm, polite bool) {
	c.e.mu.Lock()
	c.e.politely = polite
	c.e.mu.Unlock()
}

// NoBoard makes c's rank decide that the world has no shared-memory
// board, as a rank whose view of the world differed would (before its
// first collective call on the world).
func NoBoard(c *Comm) { c.e.boardState.Store(boardNone) }

// SetSleepTimeout makes every sleep on the bell last up to d unless rung,
// until tb's cleanup, which restores it: call it before the test makes
// its worlds, whose cleanup (ending them) then runs first.
func SetSleepTimeout(tb testing.TB, d time.Duration) {
	old := sleepTimeout
	sleepTimeout = d
	tb.Cleanup(func() { sleepTimeout = old })
}
