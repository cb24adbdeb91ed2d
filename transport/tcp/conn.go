package tcp

import (
	"fmt"
	"io"
	"net"

	"github.com/parley-hpc/parley/internal/wire"
	"github.com/parley-hpc/parley/transport"
)

// maxFramesPerPoll bounds the frames one Poll delivers from one connection,
// so that a flood from one peer does not starve the others.
const maxFramesPerPoll = 256

// maxIov caps the vectors of one writev (nats caps its net.Buffers too);
// the kernel's limit is 1024.
const maxIov = 64

// conn is one established connection and its framing state. All fields
// are owned by the progress loop.
type conn struct {
	peer int
	addr string
	fd   int // the socket, detached from Go's netpoller (detachFD); closed by close

	// Read side: rbuf[r:w] holds bytes read but not yet delivered.
	rbuf []byte
	r, w int
	// A FlagDirect payload being read straight into direct[doff:].
	direct []byte
	doff   int
	dhdr   transport.Header
	hd     transport.Header // scratch: a local would escape through the Handler
	// A compressed block being gathered: zleft bytes still to come.
	zhdr     transport.Header
	zbuf     []byte
	zleft    int
	compress bool // both ends agreed to compress large payloads
	discard  int  // payload bytes still to be dropped (Destination returned nil)

	// Write side.
	sendq    transport.OpQueue
	iov      iovecs
	hdrs     [maxIov][wire.HeaderLen]byte
	watchOut bool // the watcher also waits for this socket to be writable
	writes   int  // writev calls made: what a batch saves (TestBatch)
	watched  bool // the socket is in the watcher's epoll set

	dead error
}

// newConn makes a connection of nc, which it takes over (nc is closed).
func newConn(peer int, nc *net.TCPConn) (*conn, error) {
	nc.SetNoDelay(true)
	addr := nc.RemoteAddr().String()
	fd, err := detachFD(nc)
	if err != nil {
		return nil, err
	}
	return &conn{peer: peer, addr: addr, fd: fd, rbuf: make([]byte, recvBufSize)}, nil
}

// close closes the socket; once only (the progress loop's).
func (c *conn) close() {
	if c.fd >= 0 {
		closeFD(c.fd)
		c.fd = -1
	}
}

func (c *conn) lost(op string, err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return &transport.PeerError{Rank: c.peer, Addr: c.addr, Op: op, Err: err}
}

// read delivers the frames that have arrived, reading the socket until it
// has nothing more or maxFramesPerPoll frames were delivered. It counts a
// read that brought bytes but completed no frame as one event, so that a
// rank receiving a large payload knows it is making progress.
func (c *conn) read(h transport.Handler) (int, error) {
	n, moved := 0, false
	defer func() {
		if n == 0 && moved {
			n = 1
		}
	}()
	for n < maxFramesPerPoll {
		// Finish a compressed block first.
		if c.zleft > 0 || c.zhdr.Flags&flagCompressed != 0 {
			k := min(c.zleft, c.w-c.r)
			c.zbuf = append(c.zbuf, c.rbuf[c.r:c.r+k]...)
			c.r += k
			c.zleft -= k
			if c.zleft == 0 {
				hd := c.zhdr
				c.zhdr = transport.Header{}
				if err := c.finishCompressed(h, &hd, c.zbuf); err != nil {
					return n, err
				}
				n++
				continue
			}
			if c.r == c.w {
				c.r, c.w = 0, 0
			}
			k2, err := sysRead(c.fd, c.rbuf[c.w:])
			if err == errWouldBlock {
				return n, nil
			}
			if err != nil || k2 == 0 {
				if err == nil {
					err = io.EOF
				}
				return n, c.lost("read from", err)
			}
			c.w += k2
			moved = true
			continue
		}
		// Finish a direct payload first.
		if c.direct != nil || c.discard > 0 {
			more, got, err := c.readDirect(h)
			moved = moved || got
			if err != nil {
				return n, err
			}
			if c.direct != nil || c.discard > 0 {
				return n, nil // would block
			}
			if more {
				n++
			}
			continue
		}
		if c.w-c.r >= wire.HeaderLen {
			hd := &c.hd
			if _, err := wire.ParseHeader(c.rbuf[c.r:c.w], hd); err != nil {
				return n, c.lost("read from", fmt.Errorf("%w: %v", transport.ErrProtocol, err))
			}
			if hd.Flags&flagCompressed != 0 {
				if !c.compress || hd.Len > maxDirect {
					return n, c.lost("read from", fmt.Errorf("%w: unexpected compressed frame of %d bytes", transport.ErrProtocol, hd.Len))
				}
				c.r += wire.HeaderLen
				c.zhdr = *hd
				c.zbuf = c.zbuf[:0]
				c.zleft = int(hd.Len)
				continue
			}
			if hd.Flags&transport.FlagDirect != 0 {
				if hd.Len > maxDirect {
					return n, c.lost("read from", fmt.Errorf("%w: direct frame of %d bytes", transport.ErrProtocol, hd.Len))
				}
				c.r += wire.HeaderLen
				c.startDirect(h, hd)
				continue
			}
			end := c.r + wire.HeaderLen + int(hd.Len)
			if int(hd.Len) > len(c.rbuf)-wire.HeaderLen {
				return n, c.lost("read from", fmt.Errorf("%w: frame of %d bytes exceeds the %d-byte eager buffer",
					transport.ErrProtocol, hd.Len, len(c.rbuf)-wire.HeaderLen))
			}
			if end <= c.w {
				h.Deliver(c.peer, hd, c.rbuf[c.r+wire.HeaderLen:end])
				c.r = end
				n++
				continue
			}
		}
		// Need more bytes: make room, then read.
		if c.r == c.w {
			c.r, c.w = 0, 0
		} else if c.r > 0 && len(c.rbuf)-c.r < wire.HeaderLen+EagerLimit {
			c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
			c.r = 0
		}
		k, err := sysRead(c.fd, c.rbuf[c.w:])
		if err == errWouldBlock {
			return n, nil
		}
		if err != nil {
			return n, c.lost("read from", err)
		}
		if k == 0 {
			return n, c.lost("read from", io.EOF)
		}
		c.w += k
		moved = true
	}
	return n, nil
}

// startDirect begins placing the payload of a FlagDirect frame, taking
// what is already buffered first.
func (c *conn) startDirect(h transport.Handler, hd *transport.Header) {
	c.dhdr = *hd
	dst := h.Destination(c.peer, hd)
	if dst != nil && len(dst) != int(hd.Len) {
		dst = nil // a Handler bug; drop rather than overrun
	}
	if dst == nil {
		c.discard = int(hd.Len)
		k := min(c.discard, c.w-c.r)
		c.discard -= k
		c.r += k
		if c.discard == 0 {
			h.Deliver(c.peer, &c.dhdr, nil)
		}
		return
	}
	k := copy(dst, c.rbuf[c.r:c.w])
	c.r += k
	if k == len(dst) {
		h.Deliver(c.peer, &c.dhdr, dst)
		return
	}
	c.direct, c.doff = dst, k
}

// readDirect continues a direct payload; it reports whether one completed
// and whether any bytes came.
func (c *conn) readDirect(h transport.Handler) (done, moved bool, err error) {
	if c.discard > 0 {
		for c.discard > 0 {
			k, err := sysRead(c.fd, c.rbuf[:min(c.discard, len(c.rbuf))])
			if err == errWouldBlock {
				return false, moved, nil
			}
			if err != nil || k == 0 {
				if err == nil {
					err = io.EOF
				}
				return false, moved, c.lost("read from", err)
			}
			c.discard -= k
			moved = true
		}
		h.Deliver(c.peer, &c.dhdr, nil)
		return true, true, nil
	}
	for c.doff < len(c.direct) {
		k, err := sysRead(c.fd, c.direct[c.doff:min(len(c.direct), c.doff+maxDirectRead)])
		if err == errWouldBlock {
			return false, moved, nil
		}
		if err != nil || k == 0 {
			if err == nil {
				err = io.EOF
			}
			return false, moved, c.lost("read from", err)
		}
		c.doff += k
		moved = true
	}
	dst := c.direct
	c.direct, c.doff = nil, 0
	h.Deliver(c.peer, &c.dhdr, dst)
	return true, true, nil
}

// flush writes as much of the queued frames as the socket takes without
// blocking, completing the ops fully written.
func (c *conn) flush() error {
	_, err := c.flushCount()
	return err
}

// flushCount is flush, reporting whether any bytes were written.
func (c *conn) flushCount() (bool, error) {
	moved := false
	for !c.sendq.Empty() {
		c.iov.reset()
		for op := c.sendq.Head(); op != nil && c.iov.n < maxIov-1; op = op.Next {
			c.prepare(op)
			hd, payload := wireForm(op)
			off := op.Off
			if off < wire.HeaderLen {
				// Headers are encoded at each attempt into scratch that
				// lives as long as the connection; the encoding is the
				// same every time, so a partly written header resumes.
				h := c.hdrs[c.iov.n][:]
				wire.PutHeader(h, &hd)
				c.iov.add(h[off:])
				off = 0
			} else {
				off -= wire.HeaderLen
			}
			if off < len(payload) {
				c.iov.add(payload[off:])
			}
		}
		k, err := c.iov.writev(c.fd)
		c.writes++
		if err == errWouldBlock {
			return moved, nil
		}
		if err != nil {
			return moved, c.lost("write to", err)
		}
		moved = moved || k > 0
		for k > 0 {
			op := c.sendq.Head()
			_, payload := wireForm(op)
			left := wire.HeaderLen + len(payload) - op.Off
			if k < left {
				op.Off += k
				break
			}
			k -= left
			c.sendq.Pop()
			release(op)
			op.Complete(nil)
		}
	}
	return moved, nil
}
