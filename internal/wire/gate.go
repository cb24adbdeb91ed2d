package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Pending handshakes. A listener that admits peers by the job secret must
// accept a connection before it can tell a peer from a stranger, and each
// connection costs a file descriptor until its handshake ends. Without a
// bound, a local user who opens hundreds of idle connections takes the
// descriptors a job needs (a rank with a limit of 512 failed with "too many
// open files"). So each listener lets at most MaxPending handshakes run at
// once, closes connections beyond that at once, and gives each handshake
// HandshakeTimeout; a dialer whose connection is closed before the
// handshake ends tries again (Retryable).
const (
	MaxPending       = 32
	HandshakeTimeout = 3 * time.Second
)

// A Gate bounds a listener's handshakes in progress. The zero value is not
// usable; NewGate makes one.
type Gate struct{ slots chan struct{} }

// NewGate returns a gate of MaxPending slots.
func NewGate() *Gate { return &Gate{slots: make(chan struct{}, MaxPending)} }

// Enter takes a slot for a new connection's handshake, without waiting; it
// reports false when all are taken (the caller closes the connection).
func (g *Gate) Enter() bool {
	select {
	case g.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// Leave gives the slot back when the handshake has ended, either way.
func (g *Gate) Leave() { <-g.slots }

// Retryable reports whether a dialer's handshake failed because the
// acceptor closed the connection before answering (its gate was full, or
// it restarted): the dialer may try again while its deadline allows.
func Retryable(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &ne) && !ne.Timeout() && errors.Is(err, net.ErrClosed))
}

// DialRetrying calls connect until it succeeds, fails in a way Retryable
// does not forgive, or ctx ends, waiting 1 ms, 2 ms, ... up to 100 ms
// between tries (a peer not listening yet, or whose handshakes are all
// taken). An error after ctx ended says for how long (within) it tried.
func DialRetrying(ctx context.Context, within time.Duration, connect func() (net.Conn, error)) (net.Conn, error) {
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		nc, err := connect()
		if err == nil {
			return nc, nil
		}
		if Retryable(err) && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(delay):
				continue
			}
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("no connection within %v: %w", within, err)
		}
		return nil, err
	}
}
