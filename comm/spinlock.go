package comm

import (
	"runtime"
	"sync/atomic"
)

// spinMutex is the engine's lock: held for short, non-blocking sections
// only, so waiting for it spins (then yields) instead of parking. Unlike
// sync.Mutex, its Unlock is a plain store on amd64 (see releaseWord),
// which matters on the shared-memory fast path: an atomic read-modify-
// write right after a frame's stores waits for the ring's cache line to
// come over from the peer's core, and sync.Mutex.Unlock is one.
type spinMutex struct {
	state atomic.Uint32
}

func (m *spinMutex) Lock() {
	for i := 0; ; i++ {
		if m.state.Load() == 0 && m.state.CompareAndSwap(0, 1) {
			return
		}
		if i >= 32 {
			runtime.Gosched()
		}
	}
}

func (m *spinMutex) TryLock() bool {
	return m.state.Load() == 0 && m.state.CompareAndSwap(0, 1)
}

func (m *spinMutex) Unlock() { releaseWord(&m.state) }
