package bootstrap

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// MaxFrame bounds one bootstrap message. Output is forwarded in chunks far
// below it; only the fence of a very large job comes near.
const MaxFrame = 256 << 20

// Roles keep one kind of endpoint from posing as another in the handshake.
const (
	RoleAgent byte = 'a' // an agent dialing mpirun
	RoleRank  byte = 'r' // a rank dialing its agent
)

// A Conn carries bootstrap frames over a stream. Send is safe for
// concurrent use; Recv must be called from one goroutine.
type Conn struct {
	c   net.Conn
	r   *bufio.Reader
	wmu sync.Mutex
	buf []byte
}

// NewConn wraps c, which has completed its handshake.
func NewConn(c net.Conn) *Conn {
	return &Conn{c: c, r: bufio.NewReaderSize(c, 64<<10)}
}

// Send writes one frame of type t with the given body.
func (c *Conn) Send(t Type, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.buf = binary.LittleEndian.AppendUint32(c.buf[:0], uint32(len(body)+1))
	c.buf = append(c.buf, byte(t))
	c.buf = append(c.buf, body...)
	_, err := c.c.Write(c.buf)
	if cap(c.buf) > 1<<20 {
		c.buf = nil // do not pin a large output chunk forever
	}
	if err != nil {
		return fmt.Errorf("send %v: %w", t, err)
	}
	return nil
}

// SendMsg encodes m and sends it.
func (c *Conn) SendMsg(m Msg) error { return c.Send(m.Type(), m.Append(nil)) }

// Recv reads the next frame. The body is freshly allocated and owned by the
// caller.
func (c *Conn) Recv() (Type, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n == 0 || n > MaxFrame {
		return 0, nil, fmt.Errorf("bootstrap frame of %d bytes (limit %d): corrupt stream", n, MaxFrame)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		return 0, nil, fmt.Errorf("bootstrap frame truncated: %w", err)
	}
	return Type(b[0]), b[1:], nil
}

// SetDeadline sets the deadline of the underlying connection.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.c.Close() }

// NetConn returns the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.c }
