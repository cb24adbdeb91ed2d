package comm

import (
	"sync/atomic"

	"github.com/parley-hpc/parley/internal/release"
)

// markDone sets a request's done flag, which publishes its status and
// error to a goroutine waiting without the engine lock: a release store
// (internal/release), which is all the waiter's atomic load needs, where
// atomic's Store is an XCHG on amd64, a full barrier on the path from a
// frame's arrival to the program's next send.
func markDone(b *atomic.Bool) { release.SetTrue(b) }
