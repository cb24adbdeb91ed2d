//go:build linux && !parleyportable

package linux

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
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
//
// The calls are raw system calls, like Yield: the copy is work this thread
// does, not a wait, and a 1 MiB read takes about 80 us, past the 20 us
// after which the Go runtime hands the P of a thread in a system call to
// another thread. With the normal call, each large read cost a rank bound
// to one core a thread switch (measured: 12,900 context switches in a
// 1 MiB bibw run against Open MPI's 2,200, and 0.82 of its bandwidth).
// Each call moves at most readChunk bytes, so that no call keeps the P
// from the scheduler for long.
func ReadRemote(dst []byte, pid int, addr uintptr) error {
	for done := 0; done < len(dst); {
		n := min(len(dst)-done, readChunk)
		local := unix.Iovec{Base: &dst[done]}
		local.SetLen(n)
		remote := unix.RemoteIovec{Base: addr + uintptr(done), Len: n}
		r, _, errno := unix.RawSyscall6(unix.SYS_PROCESS_VM_READV, uintptr(pid),
			uintptr(unsafe.Pointer(&local)), 1, uintptr(unsafe.Pointer(&remote)), 1, 0)
		runtime.KeepAlive(&local)
		runtime.KeepAlive(&remote)
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EPERM || errno == unix.ENOSYS || errno == unix.EACCES:
			return fmt.Errorf("process_vm_readv from pid %d: %w (%w)", pid, ErrNotSupported, errno)
		case errno != 0:
			return fmt.Errorf("process_vm_readv %d bytes from pid %d: %w", len(dst)-done, pid, errno)
		case r == 0:
			return fmt.Errorf("process_vm_readv from pid %d: no progress", pid)
		}
		done += int(r)
	}
	runtime.KeepAlive(dst)
	return nil
}

// readChunk bounds one process_vm_readv of ReadRemote: 4 MiB, about 0.3 ms
// at this machine kind's 12-14 GB/s.
const readChunk = 4 << 20

// ProbeReadRemote reads a byte of this process's own memory with
// process_vm_readv: a seccomp filter or a kernel without the call refuses
// it even for oneself (Yama restricts only reads of others).
func ProbeReadRemote() error {
	src, dst := []byte{42}, []byte{0}
	if err := ReadRemote(dst, os.Getpid(), uintptr(unsafe.Pointer(&src[0]))); err != nil {
		return err
	}
	runtime.KeepAlive(src)
	if dst[0] != 42 {
		return fmt.Errorf("process_vm_readv copied %d, not 42", dst[0])
	}
	return nil
}

// OnlineCPUs returns how many cpus the host has online
// (/sys/devices/system/cpu/online), whatever this process's affinity;
// 0 if unknown.
func OnlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if found {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return 0
		}
		n += z - a + 1
	}
	return n
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

// A Child is a child process whose exit can be waited for without an OS
// thread: its pidfd is polled by Go's netpoller, so a goroutine waiting
// for it is parked, where os.Process.Wait blocks a thread in waitid. A
// launcher with a thousand ranks needs a thousand waiters, not a thousand
// threads.
type Child struct {
	pid int
	f   *os.File // the pidfd
}

// Watch opens a pidfd for child pid, which must be an unreaped child of
// this process (so the pid cannot have been reused).
func Watch(pid int) (*Child, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	return &Child{pid: pid, f: os.NewFile(uintptr(fd), "pidfd")}, nil
}

// Wait waits for the child to exit, reaps it, and returns its exit code,
// or the signal that killed it (code -1).
func (c *Child) Wait() (code, signal int, err error) {
	ws, err := c.wait()
	if err != nil {
		return -1, 0, err
	}
	if ws.Signaled() {
		return -1, int(ws.Signal()), nil
	}
	return ws.ExitStatus(), 0, nil
}

func (c *Child) wait() (unix.WaitStatus, error) {
	defer c.f.Close()
	rc, err := c.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var ws unix.WaitStatus
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		var info unix.Siginfo
		werr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG, nil)
		if werr == unix.EINTR {
			return false
		}
		if werr != nil {
			return true
		}
		pid, status, code := siginfoChild(&info)
		if pid == 0 {
			return false // not yet: wait until the pidfd is readable
		}
		ws = waitStatus(code, status)
		return true
	})
	if err == nil {
		err = werr
	}
	return ws, err
}

// siginfoChild reads the SIGCHLD fields of a siginfo_t filled by waitid:
// si_code, and si_pid and si_status from the _sigchld member of the union
// (linux/siginfo.h), which starts after signo, errno and code, aligned to
// a pointer: at byte 16 on 64-bit systems, 12 on 32-bit ones. si_pid is
// its first field, si_status its third (after si_uid).
func siginfoChild(info *unix.Siginfo) (pid int, status int32, code int32) {
	union := uintptr(12)
	if unsafe.Sizeof(uintptr(0)) == 8 {
		union = 16
	}
	base := unsafe.Pointer(info)
	pid = int(*(*int32)(unsafe.Add(base, union)))
	status = *(*int32)(unsafe.Add(base, union+8))
	return pid, status, info.Code
}

// waitStatus turns waitid's si_code and si_status into a wait status.
func waitStatus(code, status int32) unix.WaitStatus {
	const (
		cldExited = 1
		cldKilled = 2
		cldDumped = 3
	)
	switch code {
	case cldExited:
		return unix.WaitStatus(status&0xff) << 8
	case cldKilled:
		return unix.WaitStatus(status & 0x7f)
	case cldDumped:
		return unix.WaitStatus(status&0x7f) | 0x80
	}
	return 0
}

// yamaScopeFile holds Yama's ptrace policy, where the Yama security module
// is present.
const yamaScopeFile = "/proc/sys/kernel/yama/ptrace_scope"

// AllowPeersToRead lets other processes of this user read this process's
// memory with process_vm_readv, where Yama's ptrace_scope 1 (Ubuntu's
// default) would allow it only to an ancestor: the ranks of a host are
// siblings, so each declares every process of its user a permitted tracer
// (PR_SET_PTRACER_ANY), as a debugger's target does. It returns what it
// found, for the log: Yama absent or scope 0 (nothing to do), scope 1
// (granted), or scope 2 or 3, under which only CAP_SYS_PTRACE can read
// another process and single copy is off.
func AllowPeersToRead() (string, error) {
	b, err := os.ReadFile(yamaScopeFile)
	if err != nil {
		return "no Yama", nil
	}
	return allowPeers(string(b), func() error {
		return unix.Prctl(unix.PR_SET_PTRACER, unix.PR_SET_PTRACER_ANY, 0, 0, 0)
	})
}

func allowPeers(scope string, grant func() error) (string, error) {
	switch s := strings.TrimSpace(scope); s {
	case "0":
		return "Yama ptrace_scope 0", nil
	case "1":
		if err := grant(); err != nil {
			return "Yama ptrace_scope 1", fmt.Errorf("prctl(PR_SET_PTRACER): %w", err)
		}
		return "Yama ptrace_scope 1: peers of this user may read this rank", nil
	default:
		return "Yama ptrace_scope " + s, fmt.Errorf("Yama ptrace_scope %s forbids one process to read another's memory: %w", s, ErrNotSupported)
	}
}

// ForbidReads makes this process refuse process_vm_readv by other
// processes of its user that lack CAP_SYS_PTRACE (PR_SET_DUMPABLE 0): for
// tests of the fallback when the kernel refuses single copy.
func ForbidReads() error { return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) }
