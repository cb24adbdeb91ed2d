//go:build !linux || parleyportable

package tcp

import (
	"errors"
	"fmt"
	"net"
	"runtime"

	"github.com/parley-hpc/parley/internal/linux"
	"github.com/parley-hpc/parley/transport"
)

// The TCP transport's progress loop reads and writes sockets with raw
// non-blocking system calls and watches them with epoll (sys_linux.go):
// Linux only. Elsewhere (and in the parleyportable build, which tests this
// path on Linux) Listen fails with an error wrapping ErrNotSupported, and a
// program runs as a world of one.

var errWouldBlock = errors.New("would block")

func notSupported() error {
	return fmt.Errorf("the TCP transport on %s/%s: %w", runtime.GOOS, runtime.GOARCH, linux.ErrNotSupported)
}

func detachFD(nc *net.TCPConn) (int, error) { return -1, notSupported() }

func closeFD(fd int) {}

func sysRead(fd int, b []byte) (int, error) { return 0, notSupported() }

type iovecs struct{ n int }

func (v *iovecs) reset()                     {}
func (v *iovecs) add(b []byte)               {}
func (v *iovecs) writev(fd int) (int, error) { return 0, notSupported() }

type watcher struct{}

func newWatcher(bell transport.Bell) (*watcher, error) { return nil, notSupported() }

func (w *watcher) add(fd int) error        { return notSupported() }
func (w *watcher) modify(fd int, out bool) {}
func (w *watcher) remove(fd int)           {}
func (w *watcher) arm()                    {}
func (w *watcher) ready(dst []int, n int) ([]int, bool) {
	return dst, false
}
func (w *watcher) run()   {}
func (w *watcher) close() {}
