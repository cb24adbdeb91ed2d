package comm

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-hpc/parley/internal/linux"
)

// Asynchronous progress. Without it, a rank moves messages only while one
// of its goroutines is inside the runtime (a Wait, a Test, a blocking
// call): a large Isend whose receiver computes, or a nonblocking
// collective whose members compute, stands still until they next call in.
// Where the rank has a P to spare (GOMAXPROCS > 1), a progress goroutine
// does that work in the background, but only while the program has
// nonblocking operations outstanding and none of its goroutines is inside
// the runtime to do it itself: it never competes with a waiting goroutine
// (whose own polling is the fastest path), and a program that only makes
// blocking calls never wakes it. Between events it sleeps on the rank's
// bell, as a waiting goroutine does.
//
// PARLEY_PROGRESS=off turns it off, =on forces it even with one P (where
// it can run only when the program's goroutine yields).

// progressSpin is how long the progress goroutine polls without result
// before it sleeps on the bell: short, since its polling takes a core the
// program may want.
const progressSpin = 20 * time.Microsecond

// progressState is the engine's part of asynchronous progress.
type progressState struct {
	on       bool
	active   atomic.Int32 // program nonblocking operations not yet complete
	inWait   atomic.Int32 // program goroutines in wait loops
	kick     chan struct{}
	stop     chan struct{}
	stopped  sync.WaitGroup
	generics []*Request // incomplete generic requests, under genericMu
}

// asyncProgressWanted decides from the environment, the Ps and the cores:
// on by default only where the rank has a core to spare, that is at least
// two Ps and at least two cores of its own (its cpu set, shared with the
// host's other ranks when they are not bound apart). With one core, a
// progress goroutine would take the core from the program's own
// goroutines: on this 2-core machine, 2 ranks with GOMAXPROCS=2 each and
// progress on sent 2-3x fewer 8-byte messages a second (bench mbw_mr).
func asyncProgressWanted(localSize int) bool {
	switch os.Getenv("PARLEY_PROGRESS") {
	case "off", "0":
		return false
	case "on", "1":
		return true
	}
	return runtime.GOMAXPROCS(0) > 1 && coresOfRank(localSize) >= 2
}

// coresOfRank estimates the cores this rank has to itself: its cpu set
// when that is a part of the host (bound), else the host's cpus shared
// among the host's ranks.
func coresOfRank(localSize int) int {
	cpus, err := linux.Affinity()
	if err != nil || len(cpus) == 0 {
		return 1
	}
	if online := linux.OnlineCPUs(); online > 0 && len(cpus) < online {
		return len(cpus)
	}
	return len(cpus) / max(1, localSize)
}

// startProgress starts the progress goroutine, if wanted.
func (e *engine) startProgress(localSize int) {
	if e.size == 1 || !asyncProgressWanted(localSize) {
		return
	}
	p := &e.progress
	p.on = true
	p.kick = make(chan struct{}, 1)
	p.stop = make(chan struct{})
	p.stopped.Add(1)
	go e.progressLoop()
}

// stopProgress ends the progress goroutine (Finalize).
func (e *engine) stopProgress() {
	p := &e.progress
	if !p.on {
		return
	}
	close(p.stop) // p.on stays set: trackLocked may still count, harmlessly
	e.bell.Ring()
	p.stopped.Wait()
}

// kickProgress wakes the progress goroutine if it waits for work.
func (e *engine) kickProgress() {
	select {
	case e.progress.kick <- struct{}{}:
	default:
	}
}

// trackLocked counts r, a program operation just started, as outstanding
// until completeLocked.
func (e *engine) trackLocked(r *Request) {
	if r.internal || !e.progress.on || r.tracked {
		return
	}
	r.tracked = true
	if e.progress.active.Add(1) == 1 {
		e.kickProgress()
	}
}

// untrackLocked ends the count of r.
func (e *engine) untrackLocked(r *Request) {
	if r.tracked {
		r.tracked = false
		e.progress.active.Add(-1)
	}
}

// trackGeneric registers a new generic request (a nonblocking
// collective), which only polling advances.
func (e *engine) trackGeneric(r *Request) {
	if !e.progress.on {
		return
	}
	e.genericMu.Lock()
	r.tracked = true
	e.progress.generics = append(e.progress.generics, r)
	e.genericMu.Unlock()
	if e.progress.active.Add(1) == 1 {
		e.kickProgress()
	}
}

// enterWait and leaveWait bracket a program goroutine's wait loop.
func (e *engine) enterWait() { e.progress.inWait.Add(1) }

func (e *engine) leaveWait() {
	if e.progress.inWait.Add(-1) == 0 && e.progress.on && e.progress.active.Load() > 0 {
		e.kickProgress()
	}
}

// needsProgress reports whether the progress goroutine has work: program
// operations outstanding, and no program goroutine in the runtime.
func (e *engine) needsProgress() bool {
	return e.progress.active.Load() > 0 && e.progress.inWait.Load() == 0
}

// pollGenerics advances the registered generic requests, unless a
// program goroutine is polling them itself; it returns how many moved on.
func (e *engine) pollGenerics() int {
	if !e.genericMu.TryLock() {
		return 0
	}
	p := &e.progress
	n := 0
	kept := p.generics[:0]
	for _, r := range p.generics {
		if !r.done.Load() {
			done, err := r.poll()
			if done || err != nil {
				r.err = err
				r.done.Store(true)
			}
		}
		if r.done.Load() {
			n++
			if r.tracked {
				r.tracked = false
				p.active.Add(-1)
			}
			e.wakeWaiter(r)
			continue
		}
		kept = append(kept, r)
	}
	clear(p.generics[len(kept):])
	p.generics = kept
	e.genericMu.Unlock()
	return n
}

// wakeWaiter lets a goroutine blocked on r (see sleep) know it completed.
func (e *engine) wakeWaiter(r *Request) {
	e.mu.Lock()
	ch := r.ch
	r.ch = nil
	e.unlock()
	if ch != nil {
		close(ch)
	}
}

// progressLoop is the progress goroutine.
func (e *engine) progressLoop() {
	p := &e.progress
	defer p.stopped.Done()
	for {
		// Wait for outstanding work that nobody is driving.
		for !e.needsProgress() {
			select {
			case <-p.kick:
			case <-p.stop:
				return
			}
		}
		idleSince := time.Now()
		for e.needsProgress() {
			n := 0
			if e.mu.TryLock() {
				n = e.progressLocked()
				e.unlock()
			}
			n += e.pollGenerics()
			select {
			case <-p.stop:
				return
			default:
			}
			if n > 0 {
				idleSince = time.Now()
				continue
			}
			if time.Since(idleSince) < progressSpin {
				runtime.Gosched()
				continue
			}
			e.sleep(func() bool {
				select {
				case <-p.stop:
					return true
				default:
				}
				return !e.needsProgress()
			}, nil)
			idleSince = time.Now()
		}
	}
}

// genericDoneLocked ends the count of a generic request the program
// completed itself (genericMu held).
func (e *engine) genericDoneLocked(r *Request) {
	if !r.tracked {
		return
	}
	r.tracked = false
	e.progress.active.Add(-1)
	gs := e.progress.generics
	for i, g := range gs {
		if g == r {
			e.progress.generics = append(gs[:i], gs[i+1:]...)
			gs[len(gs)-1] = nil
			break
		}
	}
}
