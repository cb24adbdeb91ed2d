// Package release stores a word with release ordering only: every load and
// store the goroutine made before it is visible to whoever loads the word
// and sees the new value, and nothing more is promised.
//
// This is what a producer publishing into shared memory needs, and less
// than Go's atomic Store gives: on amd64 atomic.Uint64.Store compiles to
// XCHG, a full barrier that holds the core until every earlier store has
// left its store buffer and the line is owned, which on a ring that the
// consumer polls means waiting for the line to come back from the
// consumer's cache at every frame. A release store is C11's
// memory_order_release:
//
//   - amd64: a plain MOV. x86-64 keeps stores in program order (TSO), so
//     an earlier store is never seen after a later one.
//   - arm64: STLR, the store-release instruction.
//   - elsewhere, and in race-detector builds (whose checker must see the
//     synchronization): sync/atomic's Store.
//
// Invariants that make the assembly versions correct: they are functions
// in assembly, which the Go compiler cannot inline or look into, so every
// store the caller wrote before the call has been emitted before it (the
// compiler must assume the function reads memory); the pointer is 8-byte
// aligned (callers pass an *atomic.Uint64, which Go aligns), so the store
// is single-copy atomic; and readers use sync/atomic loads, which on both
// architectures are at least acquire loads.
package release
