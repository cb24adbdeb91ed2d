//go:build !linux

package linux

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
)

func notSupported(what string) error {
	return fmt.Errorf("%s on %s: %w", what, runtime.GOOS, ErrNotSupported)
}

// FutexWait sleeps briefly: there is no futex here.
func FutexWait(addr *atomic.Uint32, val uint32, timeout time.Duration) {
	if timeout <= 0 || timeout > time.Millisecond {
		timeout = time.Millisecond
	}
	time.Sleep(timeout)
}

// FutexWake does nothing: FutexWait only sleeps.
func FutexWake(addr *atomic.Uint32, n int) {}

// Yield yields to other goroutines.
func Yield() { runtime.Gosched() }

// ReadRemote is not available.
func ReadRemote(dst []byte, pid int, addr uintptr) error { return notSupported("process_vm_readv") }

// Affinity is not available.
func Affinity() ([]int, error) { return nil, notSupported("sched_getaffinity") }

// SetThreadAffinity is not available.
func SetThreadAffinity(cpus []int) error { return notSupported("sched_setaffinity") }
