//go:build linux && !parleyportable

package linux

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"testing"
	"unsafe"
)

// TestAllowPeers: under Yama's scope 1 a rank grants its user's processes
// (PR_SET_PTRACER_ANY); under 0 nothing is needed; under 2 and 3 single
// copy is off, with ErrNotSupported. (Yama is not in every kernel: this
// checks the decision on each scope's text.)
func TestAllowPeers(t *testing.T) {
	for _, tc := range []struct {
		scope   string
		granted bool
		err     bool
	}{{"0\n", false, false}, {"1\n", true, false}, {"2\n", false, true}, {"3\n", false, true}} {
		granted := false
		_, err := allowPeers(tc.scope, func() error { granted = true; return nil })
		if granted != tc.granted || (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrNotSupported)) {
			t.Errorf("scope %q: granted %v, err %v", tc.scope, granted, err)
		}
	}
}

func TestOnlineCPUs(t *testing.T) {
	if n := OnlineCPUs(); n < runtime.NumCPU() {
		t.Errorf("OnlineCPUs() = %d, fewer than the %d this process may use", n, runtime.NumCPU())
	}
}

// TestReadRemote reads this process's own memory in sizes around the
// largest single call (readChunk), so that the reads that take several
// calls land every byte where it belongs, and reports an address that
// does not exist as an error, not a panic.
func TestReadRemote(t *testing.T) {
	src := make([]byte, 2*readChunk+12345)
	for i := range src {
		src[i] = byte(i*31 + i>>20)
	}
	for _, n := range []int{1, 4096, readChunk - 1, readChunk, readChunk + 1, len(src)} {
		dst := make([]byte, n)
		if err := ReadRemote(dst, os.Getpid(), uintptr(unsafe.Pointer(&src[0]))); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(dst, src[:n]) {
			t.Fatalf("%d bytes: the copy differs", n)
		}
	}
	runtime.KeepAlive(src)
	if err := ReadRemote(make([]byte, 8), os.Getpid(), 8); err == nil {
		t.Fatal("a read from address 8 succeeded")
	}
}
