//go:build linux && !parleyportable

package tcp

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/parley-hpc/parley/transport"
)

var errWouldBlock = errors.New("would block")

// detachFD takes nc's socket out of Go's hands: it duplicates the
// descriptor (close-on-exec, non-blocking) and closes nc, which also
// removes the socket from the runtime's netpoller. The progress loop reads
// and writes the duplicate with non-blocking system calls and closes it
// with closeFD.
//
// Why: a socket Go's netpoller watches wakes the runtime's idle thread at
// every segment that arrives, whoever reads it (the netpoller's epoll is
// edge-triggered). With GOMAXPROCS above 1 an idle P's thread sleeps in
// that epoll, so every message woke a thread that found nothing to do and
// slept again: one context switch per message, and 8-byte TCP latency
// 1.7x that of GOMAXPROCS=1 (go tool trace showed a P going from idle to
// running and back at each ping-pong round; perf, 200,000 rounds:
// 505,859 context switches unbound against 2,970 bound).
func detachFD(nc *net.TCPConn) (int, error) {
	rc, err := nc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) {
		fd, dupErr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, fmt.Errorf("dup of a TCP socket: %w", dupErr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("non-blocking TCP socket: %w", err)
	}
	nc.Close()
	return fd, nil
}

// closeFD closes a socket detachFD returned.
func closeFD(fd int) { unix.Close(fd) }

// sysRead reads what fd has without blocking.
//
// It and writev use RawSyscall, not Syscall: the sockets are non-blocking,
// so the call returns as soon as the kernel has copied what it can, and
// the scheduler has nothing to gain from hearing about it. With Syscall,
// a long copy (megabytes into a socket buffer) let Go's sysmon hand the P
// to another thread mid-call, and the scheduler churn that followed cost
// 40% of TCP bandwidth on large messages (measured with bench bw).
func sysRead(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch e {
		case 0:
			return int(n), nil
		case unix.EAGAIN:
			return 0, errWouldBlock
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// iovecs is a reusable writev vector.
type iovecs struct {
	v    [maxIov]unix.Iovec
	keep [maxIov][]byte // keeps the buffers reachable while v points at them
	n    int
}

func (v *iovecs) reset() {
	for i := 0; i < v.n; i++ {
		v.keep[i] = nil
	}
	v.n = 0
}

func (v *iovecs) add(b []byte) {
	if len(b) == 0 {
		return
	}
	v.v[v.n].Base = &b[0]
	v.v[v.n].SetLen(len(b))
	v.keep[v.n] = b
	v.n++
}

func (v *iovecs) writev(fd int) (int, error) {
	if v.n == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&v.v[0])), uintptr(v.n))
		switch e {
		case 0:
			return int(n), nil
		case unix.EAGAIN:
			return 0, errWouldBlock
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// watcher waits in epoll for any connection to become readable while the
// rank sleeps, and rings the rank's Bell. It is armed once per sleep; the
// epoll set is level-triggered, so data left unread re-rings at once.
type watcher struct {
	bell   transport.Bell
	epfd   int
	stopfd int // an eventfd in the set: written by close
	armCh  chan struct{}
	closed atomic.Bool
	once   sync.Once

	evs []unix.EpollEvent // ready's buffer, owned by the progress loop
}

func newWatcher(bell transport.Bell) (*watcher, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &watcher{bell: bell, epfd: epfd, stopfd: stopfd, armCh: make(chan struct{}, 1)}
	if err := w.add(stopfd); err != nil {
		unix.Close(epfd)
		unix.Close(stopfd)
		return nil, err
	}
	return w, nil
}

func (w *watcher) add(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	return nil
}

// modify switches waiting for writability on or off for fd.
func (w *watcher) modify(fd int, out bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if out {
		ev.Events |= unix.EPOLLOUT
	}
	unix.EpollCtl(w.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

func (w *watcher) remove(fd int) { unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, fd, nil) }

// ready appends to dst the sockets among the n watched that have something
// to read (data, end of stream, an error), asking epoll without waiting:
// one system call, where trying a read on each socket costs n. It reports
// false if epoll failed; the caller then reads every socket. The progress
// loop calls it, never after close.
func (w *watcher) ready(dst []int, n int) ([]int, bool) {
	if cap(w.evs) < n+1 {
		w.evs = make([]unix.EpollEvent, n+1) // +1: the stop eventfd
	}
	evs := w.evs[:cap(w.evs)]
	for {
		// RawSyscall, as for sysRead: a zero timeout never blocks.
		k, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(w.epfd), uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), 0, 0, 0)
		switch e {
		case 0:
		case unix.EINTR:
			continue
		default:
			return dst, false
		}
		for _, ev := range evs[:k] {
			if int(ev.Fd) != w.stopfd && ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
				dst = append(dst, int(ev.Fd))
			}
		}
		return dst, true
	}
}

func (w *watcher) arm() {
	select {
	case w.armCh <- struct{}{}:
	default:
	}
}

func (w *watcher) run() {
	var evs [8]unix.EpollEvent
	for {
		<-w.armCh
		if w.closed.Load() {
			break
		}
		_, err := unix.EpollWait(w.epfd, evs[:], -1)
		if w.closed.Load() {
			break
		}
		if err != nil && err != unix.EINTR {
			continue
		}
		w.bell.Ring()
	}
	unix.Close(w.epfd)
	unix.Close(w.stopfd)
}

func (w *watcher) close() {
	w.once.Do(func() {
		w.closed.Store(true)
		var one = [8]byte{1}
		unix.Write(w.stopfd, one[:])
		w.arm()
	})
}
