package comm

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/parley-hpc/parley/internal/coll"
	"github.com/parley-hpc/parley/internal/linux"
)

// Waiting. A goroutine that waits for a request makes progress itself: it
// polls the transports, spinning at first, then yielding the CPU between
// polls, then sleeping on the bell until a transport (or a completion by
// another goroutine) rings it. There is no progress thread: a rank whose
// goroutines are all outside the runtime moves nothing but what the
// flusher pushes out (startFlusherLocked).
//
// A wait that lasts more than a few dozen polls records what it waits for
// in the engine's waitList, one record per blocked goroutine, which is
// what the hang report (mpirun --timeout, or Ctrl-C) prints.

// waitWhat names the call a goroutine is blocked in.
type waitWhat uint8

const (
	inWait     waitWhat = iota // Request.Wait
	inRecv                     // Recv, and the receives of blocking collectives
	inSend                     // Send
	inProbe                    // Probe, Mprobe
	inWaitany                  // Waitany
	inWaitsome                 // Waitsome
	inWaitall                  // Waitall
	inCreate                   // Dup, Split and the other communicator constructors
	inTest                     // a loop of Test (or Testall, Testany, Testsome) on a request that does not complete
	inFinalize                 // Finalize, waiting for every rank to reach it
	inBoard                    // a collective on the shared-memory board, waiting for the other ranks' parts
)

var waitNames = [...]string{inWait: "wait", inRecv: "recv", inSend: "send", inProbe: "probe",
	inWaitany: "waitany", inWaitsome: "waitsome", inWaitall: "waitall", inCreate: "communicator creation",
	inTest: "a loop testing a request", inFinalize: "finalize", inBoard: "a shared-memory collective"}

// waitRecord is what one blocked goroutine waits for.
type waitRecord struct {
	what  waitWhat
	op    string // the request's operation ("recv", "send", or a collective's name), if any
	peer  int    // world rank waited on, AnySource, or noPeer
	tag   int
	ctx   uint32
	check uint32   // the collective check word, which names the collective
	n     int      // requests waited on, for Waitany, Waitsome and Waitall
	req   *Request // for a Test loop: the request, whose record lapses when it completes
	since time.Time
	idx   int // position in waitList.recs
}

// waitList holds the records of the goroutines blocked now. Records are
// added only once a wait has lasted a while, so its lock is off the fast
// path.
type waitList struct {
	mu   sync.Mutex
	recs []*waitRecord
	free []*waitRecord
}

func (l *waitList) add(rec waitRecord) *waitRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var p *waitRecord
	if n := len(l.free); n > 0 {
		p = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		p = new(waitRecord)
	}
	*p = rec
	p.idx = len(l.recs)
	l.recs = append(l.recs, p)
	return p
}

func (l *waitList) remove(p *waitRecord) {
	if p == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	last := len(l.recs) - 1
	l.recs[p.idx] = l.recs[last]
	l.recs[p.idx].idx = p.idx
	l.recs[last] = nil
	l.recs = l.recs[:last]
	if len(l.free) < 64 {
		l.free = append(l.free, p)
	}
}

func (l *waitList) snapshot() []waitRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]waitRecord, 0, len(l.recs))
	for _, p := range l.recs {
		if p.req != nil && p.req.done.Load() {
			continue // a tested request that completed: nobody waits for it
		}
		out = append(out, *p)
	}
	return out
}

// recordFor describes a wait for request r.
func recordFor(r *Request, what waitWhat) waitRecord {
	rec := waitRecord{what: what, peer: noPeer, tag: noPeer, ctx: r.ctx, check: r.check}
	switch {
	case r.poll != nil:
		rec.op, rec.tag = r.label, int(r.tag)
	case r.kind == reqRecv:
		rec.op, rec.peer, rec.tag = "recv", int(r.src), int(r.tag)
	default:
		rec.op, rec.peer, rec.tag = "send", int(r.peer), int(r.tag)
	}
	return rec
}

// wait makes progress until r completes.
func (e *engine) wait(r *Request, what waitWhat) {
	if r.done.Load() {
		return
	}
	var clock waitClock
	busy := false // progress since the last check of the clock
	// Polls between looks at the clock: every 64th, or every 16th
	// oversubscribed, where each idle poll yields. A look each poll cost
	// a tenth of an oversubscribed rank's user time (perf: the vDSO clock
	// after every switch back to the rank); a look at the first poll too,
	// which started the wait's record (and its lock) at once, cost 2-9%
	// of a 4-rank Allreduce, Allgather, Barrier or Alltoall of 8-64 B on
	// 2 cores (9 interleaved runs against the first look at the 16th).
	checkEvery := e.checkEvery()
	for i := 1; ; i++ {
		moved := false
		if e.mayProgress(i) && e.mu.TryLock() {
			if !e.politely {
				// Ranks that share cores drain every frame: stopping
				// early left 4-rank Bcast of 8-128 B 1.12-1.20x slower
				// on 2 cores (11 interleaved runs), a switch away
				// costing more there than the look at the next slot.
				e.waitTarget = r
			}
			moved = e.progressLocked() > 0
			e.waitTarget = nil
			e.unlock()
			if r.done.Load() {
				break
			}
		} else if r.done.Load() {
			break
		}
		busy = busy || moved
		if e.politely && !moved && i > 1 {
			e.givePolitely(i, checkEvery)
		}
		if i&checkEvery != 0 {
			continue
		}
		if !clock.started {
			clock.begin(e, recordFor(r, what))
			continue
		}
		// The clock that leads to yielding and sleeping runs only while
		// nothing moves: a rank streaming a large message keeps polling.
		if clock.turn(e, busy) {
			e.sleep(r.done.Load, r)
			clock.slept()
		}
		busy = false
	}
	clock.end(e)
}

// waitClock is a wait's look at the clock, once every checkEvery+1 polls.
// The first look begins the wait: from then on it counts as one in the
// runtime (enterWait, which keeps the progress goroutine and TCP's
// flusher from polling too) and has its record for the hang report; a
// wait that ends within its first polls, as most do, pays for neither.
// Later looks spin, yield or say it is time to sleep, by how long nothing
// has moved (turn).
type waitClock struct {
	started   bool
	idleSince time.Time
	rec       *waitRecord
}

// begin starts the wait, recording rec.
func (c *waitClock) begin(e *engine, rec waitRecord) {
	e.enterWait()
	c.started, c.idleSince = true, time.Now()
	rec.since = c.idleSince
	c.rec = e.waits.add(rec)
}

// turn looks at the clock; busy says something moved since the last look.
// By how long nothing has, it spins (returns), yields, or reports that the
// wait should sleep now: spinFor, then yieldFor (policy in
// setWaitPolicy). Oversubscribed, the wait yielded at its idle polls
// already.
func (c *waitClock) turn(e *engine, busy bool) (sleep bool) {
	now := time.Now()
	if busy {
		c.idleSince = now
		return false
	}
	switch idle := now.Sub(c.idleSince); {
	case idle < e.spinFor:
	case idle < e.yieldFor:
		if !e.politely {
			e.yield()
		}
	default:
		return true
	}
	return false
}

// slept restarts the idle time after a sleep.
func (c *waitClock) slept() { c.idleSince = time.Now() }

// end ends the wait that begin started, if it did.
func (c *waitClock) end(e *engine) {
	if c.started {
		e.waits.remove(c.rec)
		e.leaveWait()
	}
}

// checkEvery is the mask of a wait's polls between looks at the clock
// (see wait): every 64th, or every 16th oversubscribed.
func (e *engine) checkEvery() int {
	if e.politely {
		return 15
	}
	return 63
}

// givePolitely gives the core away after idle poll i of a wait, when
// ranks outnumber cores: the rank being waited for may need it. The
// rank's own other goroutines get the processor (Gosched) at every
// (checkEvery+1)th, with the look at the clock: a Gosched at each poll
// cost 7-9% of a 4-rank Barrier, Allreduce or Alltoall on 2 cores (blocks
// of calls alternating in one run), and none at all would leave them to
// the runtime's preemption, every 10 ms (TestPoliteWaitSharesTheProcessor).
func (e *engine) givePolitely(i, checkEvery int) {
	if i&checkEvery == 0 {
		runtime.Gosched()
	}
	linux.Yield()
}

// mayProgress reports whether poll i of a wait should take the lock and
// poll the transports: when a transport says it may have work (shared
// memory shows a frame; TCP is in use, since a socket cannot be peeked at
// without a system call), when a posting call left single-copy reads to
// make (unlockPosted), and every 16th poll regardless, which bounds what a
// missed hint could cost.
func (e *engine) mayProgress(i int) bool {
	if i&15 == 0 {
		return true
	}
	for _, p := range e.peekers {
		if p == nil || p.MayPoll() {
			return true
		}
	}
	return e.readsLeft.Load()
}

// waitFor is wait for an arbitrary condition (Waitany, Probe, generic
// requests). cond is called without locks held, and never again once it
// has returned true: a condition may act when it holds (Mprobe's takes
// the message it found out of matching, so a second call would take a
// second message and the first would be lost). rec says what the
// goroutine waits for, for the hang report.
func (e *engine) waitFor(cond func() bool, rec waitRecord) {
	held := false
	done := func() bool {
		if !held {
			held = cond()
		}
		return held
	}
	e.enterWait()
	defer e.leaveWait()
	var start time.Time
	var p *waitRecord
	defer func() { e.waits.remove(p) }()
	for i := 1; ; i++ {
		if done() {
			return
		}
		e.progressOnce()
		if done() {
			return
		}
		if i&15 != 0 {
			continue
		}
		if start.IsZero() {
			start = time.Now()
			rec.since = start
			p = e.waits.add(rec)
			continue
		}
		waited := time.Since(start)
		switch {
		case waited < e.spinFor:
		case waited < e.yieldFor:
			e.yield()
		default:
			e.sleep(done, nil)
		}
	}
}

// yield gives the CPU away while waiting: to other goroutines, and, when
// ranks outnumber cores, to other processes (the rank being waited for
// may need this very core).
func (e *engine) yield() {
	runtime.Gosched()
	if e.politely {
		linux.Yield()
	}
}

// sleepTimeout bounds one sleep on the bell: a safety net, since every
// event that matters rings it (a variable for the tests that show so).
var sleepTimeout = 50 * time.Millisecond

// pendingSleep bounds a sleep while frames wait for room in a full ring.
const pendingSleep = 100 * time.Microsecond

// sleep waits until something happens. One goroutine at a time sleeps on
// the bell (the sleeper); others block until their request completes or the
// sleeper leaves, then take their turn.
//
// done is called without the lock held (a generic condition, such as a
// probe, takes it itself).
func (e *engine) sleep(done func() bool, r *Request) {
	if done() {
		return
	}
	e.mu.Lock()
	if e.cause != nil {
		e.unlock()
		return
	}
	if e.sleeping {
		if e.vacancy == nil {
			e.vacancy = make(chan struct{})
		}
		vac := e.vacancy
		var ch chan struct{}
		if r != nil {
			if r.ch == nil {
				r.ch = make(chan struct{})
			}
			ch = r.ch
		}
		e.unlock()
		t := time.NewTimer(sleepTimeout)
		select {
		case <-ch:
		case <-vac:
		case <-t.C:
		}
		t.Stop()
		return
	}
	e.sleeping = true
	bell := e.bell
	bell.Arm()
	for _, a := range e.armers {
		a.Arm()
	}
	n := e.progressLocked()
	timeout := sleepTimeout
	if e.pendingLocked() {
		// Frames wait for room in a peer's ring, which frees without a
		// ring here: look again soon.
		timeout = pendingSleep
	}
	e.unlock()
	if n == 0 && !done() && !e.dead.Load() {
		bell.Sleep(timeout)
	}
	bell.Disarm()
	e.mu.Lock()
	e.sleeping = false
	if e.vacancy != nil {
		close(e.vacancy)
		e.vacancy = nil
	}
	e.unlock()
}

// --- the hang report ---

// maxReportedUnexpected bounds the unexpected messages a report lists.
const maxReportedUnexpected = 8

// report describes what the rank is doing, for the hang report: one line
// per blocked goroutine, the messages that arrived and match no receive,
// the world ranks its goroutines wait on, and the count of events handled
// so far, which mpirun compares between two reports to tell a hang from
// slow progress.
func (e *engine) report() (text string, waitsOn []int, progress uint64) {
	recs := e.waits.snapshot()
	sort.Slice(recs, func(i, j int) bool { return recs[i].since.Before(recs[j].since) })
	var lines []string
	seen := map[int]bool{}
	for _, rec := range recs {
		lines = append(lines, e.describeWait(rec))
		if rec.peer >= 0 && !seen[rec.peer] {
			seen[rec.peer] = true
			waitsOn = append(waitsOn, rec.peer)
		}
	}
	if len(lines) == 0 {
		lines = append(lines, "running (not blocked in a parley call)")
	}
	e.mu.Lock()
	progress = e.events
	var unexp []string
	total := 0
	for ctx, q := range e.queues {
		for m := q.unexpHead; m != nil; m = m.next {
			total++
			if len(unexp) < maxReportedUnexpected {
				unexp = append(unexp, fmt.Sprintf("from rank %d, %s, %d bytes", m.src, describeTag(ctx, int(m.tag), m.check), m.size))
			}
		}
	}
	e.mu.Unlock()
	if total > 0 {
		sort.Strings(unexp)
		s := fmt.Sprintf("%d message(s) arrived that no receive matches: %s", total, strings.Join(unexp, "; "))
		if total > len(unexp) {
			s += "; ..."
		}
		lines = append(lines, s)
	}
	return strings.Join(lines, "\n"), waitsOn, progress
}

// describeWait renders one record.
func (e *engine) describeWait(rec waitRecord) string {
	var b strings.Builder
	fmt.Fprintf(&b, "blocked in %s", waitNames[rec.what])
	if rec.n > 0 {
		fmt.Fprintf(&b, " over %d requests, the first", rec.n)
	}
	switch {
	case rec.op != "" && rec.op != "recv" && rec.op != "send":
		fmt.Fprintf(&b, " of %s", rec.op)
	case rec.op != "" && rec.what != inRecv && rec.what != inSend:
		fmt.Fprintf(&b, " of a %s", rec.op)
	}
	switch {
	case rec.peer == AnySource:
		b.WriteString(" from any rank")
	case rec.peer >= 0 && rec.op == "send":
		fmt.Fprintf(&b, " to rank %d", rec.peer)
	case rec.peer >= 0:
		fmt.Fprintf(&b, " from rank %d", rec.peer)
	}
	if rec.tag != noPeer || rec.op != "" {
		fmt.Fprintf(&b, ", %s", describeTag(rec.ctx, rec.tag, rec.check))
	}
	fmt.Fprintf(&b, ", for %v", time.Since(rec.since).Round(time.Millisecond))
	return b.String()
}

// describeComm names the communicator a context belongs to.
func describeComm(ctx uint32) string {
	if ctx/ctxStride == 0 {
		return "world"
	}
	return fmt.Sprintf("communicator %d", ctx/ctxStride)
}

// describeTag names a tag on a context: a user tag on a communicator, or
// the collective operation a collective context's message belongs to (its
// kind from the check word, its sequence number from the tag).
func describeTag(ctx uint32, tag int, check uint32) string {
	comm := describeComm(ctx)
	switch ctx % ctxStride {
	case ctxColl:
		return fmt.Sprintf("%v (collective call %d) on %s", coll.KindOf(check), tag, comm)
	case ctxInternal:
		return "communicator creation on " + comm
	}
	switch tag {
	case AnyTag:
		return "any tag on " + comm
	case noPeer:
		return comm
	}
	return fmt.Sprintf("tag %d on %s", tag, comm)
}
