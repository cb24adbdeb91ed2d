package comm

import "fmt"

// Number is the set of fixed-size numeric types that typed messages carry.
// int and uint are 8 bytes on the 64-bit systems parley runs on; every rank
// of a job must agree on them.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64 | ~complex64 | ~complex128
}

// Send sends the elements of xs, viewed as bytes without a copy.
func Send[T Number](c *Comm, xs []T, dest, tag int) error { return c.Send(asBytes(xs), dest, tag) }

// Ssend is the synchronous Send of typed elements.
func Ssend[T Number](c *Comm, xs []T, dest, tag int) error { return c.Ssend(asBytes(xs), dest, tag) }

// Recv receives elements into xs. The returned Status counts elements; a
// message whose length is not a whole number of elements is an error.
func Recv[T Number](c *Comm, xs []T, src, tag int) (Status, error) {
	st, err := c.Recv(asBytes(xs), src, tag)
	if err != nil {
		return st, err
	}
	return countElements[T](c, "recv", st)
}

// Isend starts a send of the elements of xs, which belong to the request
// until it completes.
func Isend[T Number](c *Comm, xs []T, dest, tag int) *Request { return c.Isend(asBytes(xs), dest, tag) }

// Irecv starts a receive into xs. The status its Wait returns counts bytes;
// Count converts it to elements.
func Irecv[T Number](c *Comm, xs []T, src, tag int) *Request { return c.Irecv(asBytes(xs), src, tag) }

// Count converts a byte status (from Wait, Probe) into one that counts
// elements of T, failing if the byte count is not a multiple of T's size.
func Count[T Number](c *Comm, st Status) (Status, error) { return countElements[T](c, "count", st) }

func countElements[T Number](c *Comm, op string, st Status) (Status, error) {
	size := sizeOf[T]()
	if st.Count%size != 0 {
		return st, &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: st.Source, Tag: st.Tag,
			Err: fmt.Errorf("%w: %d bytes is not a whole number of %d-byte elements", ErrInvalidArg, st.Count, size)}
	}
	st.Count /= size
	return st, nil
}

// Bytes views a slice of numbers as its bytes without a copy, for use with
// the byte-level calls. The view aliases xs.
func Bytes[T Number](xs []T) []byte { return asBytes(xs) }
