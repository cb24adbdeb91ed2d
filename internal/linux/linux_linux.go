//go:build linux

package linux

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations (linux/futex.h); the shared variants, without
// FUTEX_PRIVATE_FLAG, because waiter and waker may be different processes.
const (
	futexWait = 0
	futexWake = 1
)

// FutexWait sleeps while *addr == val, for at most timeout (forever if
// timeout <= 0). The futex is shared (not FUTEX_PRIVATE), so a waker in
// another process that maps the same memory can wake it. Spurious wake-ups
// are possible; callers re-check their condition.
func FutexWait(addr *atomic.Uint32, val uint32, timeout time.Duration) {
	var tsp *unix.Timespec
	if timeout > 0 {
		ts := unix.NsecToTimespec(timeout.Nanoseconds())
		tsp = &ts
	}
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWait, uintptr(val),
		uintptr(unsafe.Pointer(tsp)), 0, 0)
}

// FutexWake wakes up to n waiters sleeping on addr.
func FutexWake(addr *atomic.Uint32, n int) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), futexWake, uintptr(n), 0, 0, 0)
}

// Yield gives the CPU to another runnable thread of any process
// (sched_yield), unlike runtime.Gosched, which only yields to goroutines.
// It is a raw system call: while another process has the core, the Go
// runtime must not hand this thread's P to a fresh thread, which would
// cost the rank a thread switch on return.
func Yield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

// ReadRemote copies len(dst) bytes starting at address addr in process pid
// into dst with process_vm_readv: one copy, no intermediate buffer. A
// refusal by the kernel (ptrace policy, another user) wraps ErrNotSupported.
func ReadRemote(dst []byte, pid int, addr uintptr) error {
	for done := 0; done < len(dst); {
		local := []unix.Iovec{{Base: &dst[done]}}
		local[0].SetLen(len(dst) - done)
		remote := []unix.RemoteIovec{{Base: addr + uintptr(done), Len: len(dst) - done}}
		n, err := unix.ProcessVMReadv(pid, local, remote, 0)
		if err != nil {
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EACCES) {
				return fmt.Errorf("process_vm_readv from pid %d: %w (%w)", pid, ErrNotSupported, err)
			}
			return fmt.Errorf("process_vm_readv %d bytes from pid %d: %w", len(dst)-done, pid, err)
		}
		if n == 0 {
			return fmt.Errorf("process_vm_readv from pid %d: no progress", pid)
		}
		done += n
	}
	runtime.KeepAlive(dst)
	return nil
}

// Affinity returns the cpus the calling thread may run on.
func Affinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	var cpus []int
	for i := 0; i < len(set)*64; i++ {
		if set.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	return cpus, nil
}

// SetThreadAffinity binds the calling OS thread to cpus. The caller must
// hold the thread with runtime.LockOSThread.
func SetThreadAffinity(cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		if c < 0 || c >= len(set)*64 {
			return fmt.Errorf("cpu %d out of range", c)
		}
		set.Set(c)
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return fmt.Errorf("sched_setaffinity %v: %w", cpus, err)
	}
	return nil
}
