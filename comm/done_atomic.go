//go:build !amd64 || race

package comm

import "sync/atomic"

// markDone sets a request's done flag (see done_tso.go).
func markDone(b *atomic.Bool) { b.Store(true) }

// releaseWord stores 0 to a lock word (see done_tso.go).
func releaseWord(w *atomic.Uint32) { w.Store(0) }

// putSpare puts a finished internal request into an empty spare slot
// (see done_tso.go).
func putSpare(slot *atomic.Pointer[Request], r *Request) { slot.CompareAndSwap(nil, r) }
