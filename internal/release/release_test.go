package release_test

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/parley-hpc/parley/internal/release"
)

// TestStore64 stores words a plain load then sees, including all 64 bits.
func TestStore64(t *testing.T) {
	var w atomic.Uint64
	for _, v := range []uint64{1, 0, 1 << 63, ^uint64(0), 0x0123456789abcdef} {
		release.Store64(&w, v)
		if got := w.Load(); got != v {
			t.Fatalf("Store64(%#x), then Load = %#x", v, got)
		}
	}
}

// TestStore32 stores words a plain load then sees, all 32 bits and not
// a byte beyond them.
func TestStore32(t *testing.T) {
	var pad struct {
		w     atomic.Uint32
		after uint32
	}
	pad.after = 9
	for _, v := range []uint32{1, 0, 1 << 31, ^uint32(0), 0x01234567} {
		release.Store32(&pad.w, v)
		if got := pad.w.Load(); got != v || pad.after != 9 {
			t.Fatalf("Store32(%#x), then Load = %#x, neighbour %d (want 9)", v, got, pad.after)
		}
	}
}

// TestSetTrue: the flag reads true after SetTrue (atomic.Bool's layout is
// what the assembly assumes).
func TestSetTrue(t *testing.T) {
	var pad struct {
		before uint32
		b      atomic.Bool
		after  uint32
	}
	pad.before, pad.after = 7, 9
	release.SetTrue(&pad.b)
	if !pad.b.Load() || pad.before != 7 || pad.after != 9 {
		t.Fatalf("after SetTrue: %v, neighbours %d %d (want true, 7, 9)", pad.b.Load(), pad.before, pad.after)
	}
	pad.b.Store(false)
	if pad.b.Load() {
		t.Fatal("Store(false) after SetTrue reads true")
	}
}

// TestPublishes is the message-passing litmus test the rings rely on: a
// goroutine writes a block of data, then publishes a sequence number with
// Store64; another that loads that number must find the block written.
// The reader hands each turn back through an ack word. On amd64 the data's
// own atomic stores already keep their order, so there this checks that
// Store64 stores and publishes each value; on arm64 it exercises STLR.
func TestPublishes(t *testing.T) {
	const rounds = 20000
	var data [8]atomic.Uint64 // atomics, so that the race detector's build accepts the test
	var seq, ack atomic.Uint64
	go func() {
		for i := uint64(1); i <= rounds; i++ {
			for ack.Load() != i-1 {
				runtime.Gosched()
			}
			for j := range data {
				data[j].Store(i*8 + uint64(j))
			}
			release.Store64(&seq, i)
		}
	}()
	for i := uint64(1); i <= rounds; i++ {
		for seq.Load() != i {
			runtime.Gosched()
		}
		for j := range data {
			if got := data[j].Load(); got != i*8+uint64(j) {
				t.Fatalf("round %d: data[%d] = %d after the sequence word, want %d", i, j, got, i*8+uint64(j))
			}
		}
		ack.Store(i)
	}
}
