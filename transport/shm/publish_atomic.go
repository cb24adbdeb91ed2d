//go:build !amd64 || race

package shm

import "sync/atomic"

// publishSeq stores the sequence word that publishes a frame. Off amd64
// (arm64 compiles it to a store-release) and in race-detector builds it is
// an atomic store; see publish_tso.go.
func publishSeq(w *atomic.Uint64, v uint64) { w.Store(v) }
