//go:build !(amd64 || arm64) || race

package release

import "sync/atomic"

// Store64 stores v in *w with release ordering (see the package comment):
// here sync/atomic's sequentially consistent Store, which is stronger.
func Store64(w *atomic.Uint64, v uint64) { w.Store(v) }

// Store32 stores v in *w with release ordering (see the package comment):
// here sync/atomic's sequentially consistent Store, which is stronger.
func Store32(w *atomic.Uint32, v uint32) { w.Store(v) }

// SetTrue stores true in *b with release ordering (see the package
// comment): here sync/atomic's sequentially consistent Store.
func SetTrue(b *atomic.Bool) { b.Store(true) }
