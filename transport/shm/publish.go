package shm

import (
	"sync/atomic"

	"github.com/parley-hpc/parley/internal/release"
)

// publishSeq stores the sequence word that publishes a frame: a release
// store, so that the frame's header and payload, written before it, are
// visible to the consumer that loads the word (see doc.go). Not atomic's
// Store: on amd64 that is XCHG, which holds the producer until the line
// comes back from the consumer polling it, at every frame.
func publishSeq(w *atomic.Uint64, v uint64) { release.Store64(w, v) }
