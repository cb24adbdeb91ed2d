package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the encoded size of a Header in bytes.
const HeaderLen = 40

// A Header precedes every frame a transport moves between two ranks. The
// transport treats every field but Len and Flags as an opaque number: Kind,
// Context, Source, Tag, Cookie and Aux belong to the protocol layer (comm).
//
// Layout (little endian):
//
//	off  size  field
//	  0     1  Kind
//	  1     1  Flags
//	  2     2  (zero)
//	  4     4  Len      payload bytes that follow this header
//	  8     4  Context
//	 12     4  Source
//	 16     4  Tag
//	 20     4  Check    a collective message's signature (0 otherwise)
//	 24     8  Cookie
//	 32     8  Aux
type Header struct {
	Kind    uint8
	Flags   uint8
	Len     uint32
	Context uint32
	Source  uint32
	Tag     int32
	Check   uint32
	Cookie  uint64
	Aux     uint64
}

// FlagDirect asks the receiving transport to place the payload into a
// buffer the protocol layer names for it (Handler.Destination), instead of
// a transport buffer; it is how large rendezvous data avoids a copy.
const FlagDirect uint8 = 1 << 0

// ErrShortHeader reports an input shorter than HeaderLen.
var ErrShortHeader = errors.New("wire: frame header truncated")

// AppendHeader appends the encoding of h to b.
func AppendHeader(b []byte, h *Header) []byte {
	var e [HeaderLen]byte
	PutHeader(e[:], h)
	return append(b, e[:]...)
}

// PutHeader writes h into b, which must hold at least HeaderLen bytes.
func PutHeader(b []byte, h *Header) {
	_ = b[HeaderLen-1]
	b[0] = h.Kind
	b[1] = h.Flags
	b[2], b[3] = 0, 0
	binary.LittleEndian.PutUint32(b[4:], h.Len)
	binary.LittleEndian.PutUint32(b[8:], h.Context)
	binary.LittleEndian.PutUint32(b[12:], h.Source)
	binary.LittleEndian.PutUint32(b[16:], uint32(h.Tag))
	binary.LittleEndian.PutUint32(b[20:], h.Check)
	binary.LittleEndian.PutUint64(b[24:], h.Cookie)
	binary.LittleEndian.PutUint64(b[32:], h.Aux)
}

// ParseHeader decodes a header from the start of b. It returns the number
// of bytes consumed (HeaderLen) or an error when b is too short or the
// reserved bytes are not zero.
func ParseHeader(b []byte, h *Header) (int, error) {
	if len(b) < HeaderLen {
		return 0, ErrShortHeader
	}
	if b[2] != 0 || b[3] != 0 {
		return 0, fmt.Errorf("wire: frame header has non-zero reserved bytes (corrupt stream?)")
	}
	h.Kind = b[0]
	h.Flags = b[1]
	h.Len = binary.LittleEndian.Uint32(b[4:])
	h.Context = binary.LittleEndian.Uint32(b[8:])
	h.Source = binary.LittleEndian.Uint32(b[12:])
	h.Tag = int32(binary.LittleEndian.Uint32(b[16:]))
	h.Check = binary.LittleEndian.Uint32(b[20:])
	h.Cookie = binary.LittleEndian.Uint64(b[24:])
	h.Aux = binary.LittleEndian.Uint64(b[32:])
	return HeaderLen, nil
}
