//go:build !linux || parleyportable

package linux

import (
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
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
func OnlineCPUs() int { return 0 }

func ProbeReadRemote() error   { return notSupported("process_vm_readv") }
func Affinity() ([]int, error) { return nil, notSupported("sched_getaffinity") }

// SetThreadAffinity is not available.
func SetThreadAffinity(cpus []int) error { return notSupported("sched_setaffinity") }

// A Child is a child process to wait for (see linux_linux.go).
type Child struct{ p *os.Process }

// Watch finds child pid.
func Watch(pid int) (*Child, error) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	return &Child{p}, nil
}

// Wait waits for the child with os.Process.Wait, and returns its exit
// code, or the signal that killed it (code -1).
func (c *Child) Wait() (code, signal int, err error) {
	st, err := c.p.Wait()
	if err != nil {
		return -1, 0, err
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, int(ws.Signal()), nil
	}
	return st.ExitCode(), 0, nil
}

// AllowPeersToRead reports that single copy is not available here.
func AllowPeersToRead() (string, error) { return "", notSupported("process_vm_readv") }

// ForbidReads does nothing here.
func ForbidReads() error { return notSupported("prctl") }
