//go:build (amd64 || arm64) && !race

package release

import "sync/atomic"

// Store64 stores v in *w with release ordering (see the package comment).
//
//go:noescape
func Store64(w *atomic.Uint64, v uint64)

// Store32 stores v in *w with release ordering (see the package comment).
//
//go:noescape
func Store32(w *atomic.Uint32, v uint32)

// SetTrue stores true in *b with release ordering (see the package
// comment).
//
//go:noescape
func SetTrue(b *atomic.Bool)
