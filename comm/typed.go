package comm

import (
	"fmt"

	"github.com/parley-hpc/parley/internal/elem"
)

// Number is the set of Go's fixed-size numeric types, the element types
// the predefined reduction operators of package collectives apply to.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64 | ~complex64 | ~complex128
}

// Typed messages. The generic functions send and receive slices of any
// fixed-size type without pointers: numbers, bool, and arrays and structs
// of them, viewed as their bytes without a copy (Go's layout, padding
// included, the same on every rank of one binary). A type with a pointer
// anywhere (a string, a slice, a map field) fails with an error wrapping
// ErrInvalidArg that names the field, before anything is sent. Counts are
// elements in every generic call (and bytes in every []byte method).

// typeOK checks T once (the answer is cached) for op on c.
func typeOK[T any](c *Comm, op string) error {
	if err := elem.Check[T](); err != nil {
		name, rank := "nil", -1
		if c != nil {
			name, rank = c.name(), c.rank
		}
		return &OpError{Op: op, Comm: name, Rank: rank, Peer: noPeer, Tag: noPeer, Err: fmt.Errorf("%w: %w", ErrInvalidArg, err)}
	}
	return nil
}

// Send sends the elements of xs to dest with tag (see Comm.Send).
func Send[T any](c *Comm, xs []T, dest, tag int) error {
	if err := typeOK[T](c, "send"); err != nil {
		return err
	}
	return c.Send(elem.Bytes(xs), dest, tag)
}

// Ssend is the synchronous Send of typed elements (see Comm.Ssend).
func Ssend[T any](c *Comm, xs []T, dest, tag int) error {
	if err := typeOK[T](c, "ssend"); err != nil {
		return err
	}
	return c.Ssend(elem.Bytes(xs), dest, tag)
}

// Recv receives elements into xs. The returned Status counts elements; a
// message whose length is not a whole number of elements is an error.
func Recv[T any](c *Comm, xs []T, src, tag int) (Status, error) {
	if err := typeOK[T](c, "recv"); err != nil {
		return Status{}, err
	}
	st, err := c.Recv(elem.Bytes(xs), src, tag)
	if err != nil {
		return st, err
	}
	return countElements(c, "recv", st, elem.Size[T]())
}

// Isend starts a send of the elements of xs, which belong to the request
// until it completes.
func Isend[T any](c *Comm, xs []T, dest, tag int) *Request {
	if err := typeOK[T](c, "isend"); err != nil {
		return failed(err)
	}
	return c.Isend(elem.Bytes(xs), dest, tag)
}

// Irecv starts a receive into xs. The status its Wait (or Test) returns
// counts elements.
func Irecv[T any](c *Comm, xs []T, src, tag int) *Request {
	if err := typeOK[T](c, "irecv"); err != nil {
		return failed(err)
	}
	r := c.Irecv(elem.Bytes(xs), src, tag)
	r.esize = int32(elem.Size[T]())
	return r
}

// Sendrecv sends send to dest and receives into recv from src at once (see
// Comm.Sendrecv); the status counts elements.
func Sendrecv[T any](c *Comm, send []T, dest, sendTag int, recv []T, src, recvTag int) (Status, error) {
	if err := typeOK[T](c, "sendrecv"); err != nil {
		return Status{}, err
	}
	st, err := c.Sendrecv(elem.Bytes(send), dest, sendTag, elem.Bytes(recv), src, recvTag)
	if err != nil {
		return st, err
	}
	return countElements(c, "sendrecv", st, elem.Size[T]())
}

// SendInit makes a persistent send of the elements of xs (see
// Comm.SendInit).
func SendInit[T any](c *Comm, xs []T, dest, tag int) (*Request, error) {
	if err := typeOK[T](c, "send_init"); err != nil {
		return nil, err
	}
	return c.SendInit(elem.Bytes(xs), dest, tag)
}

// RecvInit makes a persistent receive into xs (see Comm.RecvInit); the
// status of each completion counts elements.
func RecvInit[T any](c *Comm, xs []T, src, tag int) (*Request, error) {
	if err := typeOK[T](c, "recv_init"); err != nil {
		return nil, err
	}
	r, err := c.RecvInit(elem.Bytes(xs), src, tag)
	if err == nil {
		r.esize = int32(elem.Size[T]())
	}
	return r, err
}

// Count converts a status that counts bytes (from Probe, or a Comm
// method) into one that counts elements of T, failing if the byte count is
// not a multiple of T's size.
func Count[T any](c *Comm, st Status) (Status, error) {
	return countElements(c, "count", st, elem.Size[T]())
}

func countElements(c *Comm, op string, st Status, size int) (Status, error) {
	if size <= 1 || st.Source == ProcNull {
		return st, nil
	}
	if st.Count%size != 0 {
		return st, &OpError{Op: op, Comm: c.name(), Rank: c.rank, Peer: st.Source, Tag: st.Tag,
			Err: fmt.Errorf("%w: %d bytes is not a whole number of %d-byte elements", ErrInvalidArg, st.Count, size)}
	}
	st.Count /= size
	return st, nil
}

// Bytes views a slice of a fixed-size type without pointers as its bytes,
// without a copy, for the []byte methods; the view aliases xs. It panics
// if T holds pointers (a program bug that Send and the others report as an
// error).
func Bytes[T any](xs []T) []byte {
	if err := elem.Check[T](); err != nil {
		panic("comm.Bytes: " + err.Error())
	}
	return elem.Bytes(xs)
}
