package collectives

import (
	"fmt"

	"github.com/parley-hpc/parley/comm"
)

// call is one collective operation in progress on a communicator: the
// collective view it sends on, and the tag that keeps its messages apart
// from those of other (nonblocking) collectives on the same communicator.
type call struct {
	name string
	c    *comm.Comm // the collective view
	rank int
	size int
	tag  int
}

// begin returns the call by value, so that it can live on the caller's
// stack (a collective on a short vector should not allocate).
func begin(c *comm.Comm, name string) call {
	cv := c.CollectiveView()
	return call{name: name, c: cv, rank: cv.Rank(), size: cv.Size(), tag: int(c.NextCollective() % (comm.MaxTag + 1))}
}

// fail wraps an error with the collective's name.
func (k *call) fail(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s on %s: %w", k.name, k.c, err)
}

func (k *call) errorf(format string, args ...any) error {
	return fmt.Errorf("%s on %s (rank %d): %w", k.name, k.c, k.rank, fmt.Errorf(format, args...))
}

func (k *call) send(buf []byte, peer int) error { return k.c.Send(buf, peer, k.tag) }

func (k *call) recv(buf []byte, peer int) (comm.Status, error) { return k.c.Recv(buf, peer, k.tag) }

// recvExact receives exactly len(buf) bytes from peer; a message of
// another length means the ranks called the collective with different
// arguments.
func (k *call) recvExact(buf []byte, peer int) error {
	st, err := k.c.Recv(buf, peer, k.tag)
	if err != nil {
		return k.mismatch(err, peer)
	}
	if st.Count != len(buf) {
		return k.errorf("rank %d sent %d bytes where %d were expected: ranks disagree on the counts", peer, st.Count, len(buf))
	}
	return nil
}

// exchange sends to one peer and receives exactly len(recv) bytes from
// another at once.
func (k *call) exchange(send []byte, to int, recv []byte, from int) error {
	st, err := k.c.Sendrecv(send, to, k.tag, recv, from, k.tag)
	if err != nil {
		return k.mismatch(err, from)
	}
	if st.Count != len(recv) {
		return k.errorf("rank %d sent %d bytes where %d were expected: ranks disagree on the counts", from, st.Count, len(recv))
	}
	return nil
}

// mismatch turns a truncation into the error it means in a collective.
func (k *call) mismatch(err error, peer int) error {
	var te *comm.TruncatedError
	if asTruncated(err, &te) {
		return k.errorf("rank %d sent %d bytes where %d were expected: ranks disagree on the counts (%w)", peer, te.Message, te.Buffer, err)
	}
	return k.fail(err)
}

func (k *call) checkRoot(root int) error {
	if root < 0 || root >= k.size {
		return k.errorf("%w: root %d is outside 0..%d", comm.ErrInvalidArg, root, k.size-1)
	}
	return nil
}

// waitAll waits for reqs, gives them back to the runtime, and reports the
// first failure.
func (k *call) waitAll(reqs []*comm.Request) error {
	err := comm.WaitallNoStatus(reqs...)
	for _, r := range reqs {
		r.Release() // the collective's own: reused by the next one
	}
	return k.fail(err)
}

// floorPow2 returns the largest power of two <= n (n >= 1).
func floorPow2(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}
