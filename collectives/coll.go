package collectives

import (
	"errors"
	"fmt"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// call is one collective operation in progress on a communicator: its
// rank and size, and the bridge's call (internal/coll), which carries the
// collective view it sends on, the tag that keeps its messages apart from
// those of other (nonblocking) collectives on the same communicator, and
// the check word that lets the receivers catch ranks that called another
// collective or gave other arguments.
type call struct {
	kind coll.Kind // named only in errors: String concatenates
	k    coll.Call
	rank int
	size int
}

// begin starts a collective of kind on c in k, which the caller holds
// (on its stack, for a blocking call): a collective on a short vector
// should neither allocate nor copy the call from frame to frame (returned
// by value through begin and start, the call was built in memory and
// copied, each copy stalling on the stores just made: half of the 90 ns
// a Barrier on one rank took).
func begin(k *call, c *comm.Comm, kind coll.Kind, a coll.Args) (err error) {
	k.kind = kind
	k.k.View, k.rank, k.size, k.k.Tag, k.k.Check, err = coll.Bridge.Begin(c, kind, a)
	return err
}

// start checks that T can travel, then begins a collective of kind on c
// in k with the check arguments root, op and count (see coll.Args).
func start[T Elem](k *call, c *comm.Comm, kind coll.Kind, root int, op string, count int) error {
	if err := checkType[T](); err != nil {
		return opError(kind, err)
	}
	return begin(k, c, kind, args[T](root, op, count))
}

// args builds the check arguments of a call on vectors of T.
func args[T Elem](root int, op string, count int) coll.Args {
	return coll.Args{Root: root, Op: op, ElemSize: elemSize[T](), Count: count}
}

// settle ends the call: when it failed on this rank, the other members
// are told (comm revokes the communicator's collectives), so that none of
// them waits forever for a message this rank will never send.
func (k *call) settle(err *error) {
	if *err != nil {
		coll.Bridge.Abandon(k.k, *err)
	}
}

// opError wraps an error found before a call of kind began.
func opError(kind coll.Kind, err error) error { return fmt.Errorf("%v: %w", kind, err) }

// fail wraps an error with the collective's name.
func (k *call) fail(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%v: %w", k.kind, err)
}

func (k *call) errorf(format string, args ...any) error {
	return fmt.Errorf("%v (rank %d of %d): %w", k.kind, k.rank, k.size, fmt.Errorf(format, args...))
}

func (k *call) send(buf []byte, peer int) error { return coll.Bridge.Send(k.k, buf, peer) }

// readsAbove returns the size above which messages between the call's
// ranks move by single copy, all of them on one host, or -1 (see
// coll.Bridge.ReadsAbove): every rank gets the same answer.
func (k *call) readsAbove() int { return coll.Bridge.ReadsAbove(k.k) }

// readsOnHost reports whether messages of n bytes between the call's
// ranks move by single copy, all of them on one host.
func (k *call) readsOnHost(n int) bool {
	above := k.readsAbove()
	return above > 0 && n > above
}

func (k *call) isend(buf []byte, peer int) *comm.Request {
	return coll.Bridge.Isend(k.k, buf, peer).(*comm.Request)
}

func (k *call) irecv(buf []byte, peer int) *comm.Request {
	return coll.Bridge.Irecv(k.k, buf, peer).(*comm.Request)
}

// recvExact receives exactly len(buf) bytes from peer; a message of
// another length means the ranks called the collective with different
// arguments.
func (k *call) recvExact(buf []byte, peer int) error {
	n, err := coll.Bridge.Recv(k.k, buf, peer)
	if err != nil {
		return k.mismatch(err, peer)
	}
	if n != len(buf) {
		return k.errorf("%w: rank %d sent %d bytes where %d were expected: ranks disagree on the counts", comm.ErrMismatch, peer, n, len(buf))
	}
	return nil
}

// sendInTurnMax bounds the messages that a root sending to every rank
// itself (a flat Bcast or Scatter) sends with one blocking send after the
// other, where longer ones are posted together and waited for at once.
// Within every transport's eager limit a blocking send is over once its
// frame is queued, and the send that fits the ring at once takes no
// request, where each Isend takes one, locks twice and is given back (4
// ranks on 2 cores, 7-9 interleaved runs: Bcast of 1-256 B 0.67-0.80 of
// the time, Scatter of 1-128 B 0.82-0.94).
const sendInTurnMax = 1024

// sendInTurn sends part(r) to every rank r but root, one after the other,
// starting with root+1.
func (k *call) sendInTurn(root int, part func(r int) []byte) error {
	for s := 1; s < k.size; s++ {
		r := (root + s) % k.size
		if err := k.send(part(r), r); err != nil {
			return k.fail(err)
		}
	}
	return nil
}

// exchange sends to one peer and receives exactly len(recv) bytes from
// another at once.
func (k *call) exchange(send []byte, to int, recv []byte, from int) error {
	n, err := coll.Bridge.Sendrecv(k.k, send, to, recv, from)
	if err != nil {
		return k.mismatch(err, from)
	}
	if n != len(recv) {
		return k.errorf("%w: rank %d sent %d bytes where %d were expected: ranks disagree on the counts", comm.ErrMismatch, from, n, len(recv))
	}
	return nil
}

// mismatch turns a truncation into the error it means in a collective.
func (k *call) mismatch(err error, peer int) error {
	var te *comm.TruncatedError
	if errors.As(err, &te) {
		return k.errorf("%w: rank %d sent %d bytes where %d were expected: ranks disagree on the counts (%w)", comm.ErrMismatch, peer, te.Message, te.Buffer, err)
	}
	return k.fail(err)
}

func (k *call) checkRoot(root int) error {
	if root < 0 || root >= k.size {
		return k.errorf("%w: root %d is outside 0..%d", comm.ErrInvalidArg, root, k.size-1)
	}
	return nil
}

// waitAll waits for the call's own requests, gives them back to the
// runtime, and reports the first failure.
func (k *call) waitAll(reqs []*comm.Request) error {
	err := comm.WaitallNoStatus(reqs...)
	for _, r := range reqs {
		coll.Bridge.Free(r)
	}
	return k.fail(err)
}

// exchangeAll posts a receive from every other rank r into recvFrom(r),
// sends sendTo(r) to every other rank, and waits for all of them; each
// receive must fill its buffer exactly. One round: no rank waits for
// another to pass anything on (the direct algorithms of Allgather,
// Alltoall, ReduceScatter and their v variants).
func (k *call) exchangeAll(recvFrom, sendTo func(r int) []byte) error {
	var arr [16]*comm.Request // no allocation up to 8 ranks
	var sizeArr [8]int
	reqs, sizes := arr[:0], sizeArr[:0]
	n := k.size
	for s := 1; s < n; s++ {
		from := (k.rank - s + n) % n
		buf := recvFrom(from)
		reqs = append(reqs, k.irecv(buf, from))
		sizes = append(sizes, len(buf))
	}
	for s := 1; s < n; s++ {
		to := (k.rank + s) % n
		reqs = append(reqs, k.isend(sendTo(to), to))
	}
	err := k.waitRecvs(reqs[:n-1], sizes)
	if serr := k.waitAll(reqs[n-1:]); serr != nil {
		// A send that failed is the cause: it failed the call, and the
		// receives with it (comm abandons the call then).
		err = serr
	}
	return err
}

// waitRecvs waits for receives, the i-th of which must bring exactly
// sizes[i] bytes, gives the requests back, and reports the first failure.
func (k *call) waitRecvs(reqs []*comm.Request, sizes []int) error {
	var first error
	for i, r := range reqs {
		st, err := r.Wait()
		switch {
		case err != nil:
			if first == nil {
				first = k.mismatch(err, st.Source)
			}
		case st.Count != sizes[i] && first == nil:
			first = k.errorf("%w: rank %d sent %d bytes where %d were expected: ranks disagree on the counts", comm.ErrMismatch, st.Source, st.Count, sizes[i])
		}
		coll.Bridge.Free(r)
	}
	return first
}

// floorPow2 returns the largest power of two <= n (n >= 1).
func floorPow2(n int) int {
	p := 1
	for p*2 <= n {
		p *= 2
	}
	return p
}
