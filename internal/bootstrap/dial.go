package bootstrap

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/parley-hpc/parley/internal/wire"
)

// SplitAddr splits "unix:PATH" or "tcp:HOST:PORT" into a network and an
// address for net.Dial.
func SplitAddr(a string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(a, "unix:"):
		return "unix", a[len("unix:"):], nil
	case strings.HasPrefix(a, "tcp:"):
		return "tcp", a[len("tcp:"):], nil
	}
	return "", "", fmt.Errorf("bootstrap address %q is neither unix:PATH nor tcp:HOST:PORT", a)
}

// Dial connects to a bootstrap acceptor at a ("unix:PATH" or
// "tcp:HOST:PORT"), proves the secret in the given role and sends hello.
func Dial(ctx context.Context, a string, secret []byte, role byte, hello []byte) (*Conn, error) {
	network, addr, err := SplitAddr(a)
	if err != nil {
		return nil, err
	}
	// Again after a short wait if the acceptor closed the connection before
	// answering (its handshakes were all taken: see wire.Gate).
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		c, err := dialOnce(ctx, network, addr, secret, role, hello)
		if err == nil {
			return c, nil
		}
		if !wire.Retryable(err) {
			return nil, fmt.Errorf("bootstrap handshake with %s: %w", a, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bootstrap handshake with %s: %w", a, err)
		case <-time.After(delay):
		}
	}
}

func dialOnce(ctx context.Context, network, addr string, secret []byte, role byte, hello []byte) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := wire.Dial(c, secret, role, hello); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return NewConn(c), nil
}

// Accept runs the acceptor's handshake on c within timeout and returns the
// wrapped connection and the dialer's greeting. On failure c is closed.
func Accept(c net.Conn, secret []byte, role byte, timeout time.Duration) (*Conn, []byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	hello, err := wire.Accept(c, secret, role)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("bootstrap handshake with %s: %w", c.RemoteAddr(), err)
	}
	c.SetDeadline(time.Time{})
	return NewConn(c), hello, nil
}
