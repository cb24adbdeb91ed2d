package tcp

import (
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/parley-hpc/parley/transport"
)

// Compression of large payloads (Config.Compress): for links slower than
// the cores that feed them. A direct payload of at least compressMin bytes
// is encoded as one S2 block when both ends of the connection agreed to it
// in the handshake; a block that does not come out at least an eighth
// smaller is thrown away and the payload goes as it is, so incompressible
// data costs one pass of the encoder (S2 runs at gigabytes per second) and
// no bandwidth. The encoder runs in the progress loop when the frame is
// first written; its output buffers come from a pool.
const (
	compressMin    = 64 << 10
	flagCompressed = 1 << 6 // a transport-private flag bit
)

// Per-op compression state (SendOp.TState).
const (
	zUndecided uint8 = iota
	zPlain
	zCompressed
)

var zbufs sync.Pool // *[]byte

// prepare decides, on a frame's first write, whether it goes compressed.
func (c *conn) prepare(op *transport.SendOp) {
	if op.TState != zUndecided {
		return
	}
	op.TState = zPlain
	if !c.compress || op.Header.Flags&transport.FlagDirect == 0 || len(op.Payload) < compressMin {
		return
	}
	var buf []byte
	if bp, ok := zbufs.Get().(*[]byte); ok {
		buf = *bp
	}
	if n := s2.MaxEncodedLen(len(op.Payload)); cap(buf) < n {
		buf = make([]byte, n)
	}
	enc := s2.Encode(buf[:cap(buf)], op.Payload)
	if len(enc) > len(op.Payload)-len(op.Payload)/8 {
		zbufs.Put(&buf)
		return
	}
	op.Scratch, op.TState = enc, zCompressed
}

// wireForm returns the header to encode and the payload to send for op.
func wireForm(op *transport.SendOp) (transport.Header, []byte) {
	h := op.Header
	if op.TState == zCompressed {
		h.Flags |= flagCompressed
		h.Len = uint32(len(op.Scratch))
		return h, op.Scratch
	}
	return h, op.Payload
}

// release gives a compressed op's buffer back.
func release(op *transport.SendOp) {
	if op.TState == zCompressed && op.Scratch != nil {
		b := op.Scratch[:0]
		zbufs.Put(&b)
		op.Scratch = nil
	}
}

// finishCompressed decodes a compressed frame whose block is complete in
// blk, and hands it on.
func (c *conn) finishCompressed(h transport.Handler, hd *transport.Header, blk []byte) error {
	n, err := s2.DecodedLen(blk)
	if err != nil || n > maxDirect {
		return c.lost("read from", fmt.Errorf("%w: bad compressed block (%d bytes): %v", transport.ErrProtocol, len(blk), err))
	}
	hd.Flags &^= flagCompressed
	hd.Len = uint32(n)
	dst := h.Destination(c.peer, hd)
	if dst == nil || len(dst) != n {
		h.Deliver(c.peer, hd, nil)
		return nil
	}
	if _, err := s2.Decode(dst, blk); err != nil {
		return c.lost("read from", fmt.Errorf("%w: compressed block: %v", transport.ErrProtocol, err))
	}
	h.Deliver(c.peer, hd, dst)
	return nil
}
