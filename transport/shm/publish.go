package shm

import "sync/atomic"

// publishSeq stores the sequence word that publishes a frame: an atomic
// store, so that the frame's header and payload, written before it, are
// visible to the consumer that loads the word (see doc.go). A plain store
// would be enough on x86-64's store order, but the Go memory model does
// not promise it, and measured here it gained nothing (comm/done.go).
func publishSeq(w *atomic.Uint64, v uint64) { w.Store(v) }
