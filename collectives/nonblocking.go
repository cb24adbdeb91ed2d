package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// A schedule is a collective algorithm written as rounds: each round posts
// its receives and sends, and once they complete runs its local step (a
// reduction, a copy). The request of a nonblocking collective advances its
// schedule whenever the program waits for or tests it; nothing runs in the
// background.
type schedule struct {
	k      *call
	rounds []round
	cur    int
	posted bool
	reqs   []*comm.Request
	sizes  []int // expected byte counts of the receives in reqs; -1 for sends
}

type round struct {
	sends []xfer
	recvs []xfer
	then  func() error
}

type xfer struct {
	buf  []byte
	peer int
}

// poll advances the schedule; when it fails, the other members are told
// (see call.settle).
func (s *schedule) poll() (bool, error) {
	done, err := s.advance()
	if err != nil {
		coll.Bridge.Abandon(&s.k.k, err)
	}
	return done, err
}

func (s *schedule) advance() (bool, error) {
	for s.cur < len(s.rounds) {
		r := &s.rounds[s.cur]
		if !s.posted {
			s.reqs, s.sizes = s.reqs[:0], s.sizes[:0]
			for _, x := range r.recvs {
				s.reqs = append(s.reqs, s.k.irecv(x.buf, x.peer))
				s.sizes = append(s.sizes, len(x.buf))
			}
			for _, x := range r.sends {
				s.reqs = append(s.reqs, s.k.isend(x.buf, x.peer))
				s.sizes = append(s.sizes, -1)
			}
			s.posted = true
		}
		done, err := comm.Testall(s.reqs...)
		if err != nil {
			return true, s.k.fail(err)
		}
		if !done {
			return false, nil
		}
		var bad error
		for i, q := range s.reqs {
			if st, _ := q.Wait(); s.sizes[i] >= 0 && st.Count != s.sizes[i] && bad == nil {
				bad = s.k.errorf("%w: rank %d sent %d bytes where %d were expected: ranks disagree on the counts", comm.ErrMismatch, st.Source, st.Count, s.sizes[i])
			}
			coll.Bridge.Free(q)
		}
		if bad != nil {
			return true, bad
		}
		if r.then != nil {
			if err := r.then(); err != nil {
				return true, s.k.fail(err)
			}
		}
		s.cur++
		s.posted = false
	}
	return true, nil
}

func (s *schedule) request(c *comm.Comm) *comm.Request {
	return coll.Bridge.Generic(&s.k.k, s.poll).(*comm.Request)
}

// Ibarrier starts a barrier and returns its request (dissemination, as
// Barrier).
func Ibarrier(c *comm.Comm) *comm.Request {
	kv, err := begin(c, coll.Barrier|coll.Nonblocking, coll.Args{})
	if err != nil {
		return failedRequest(err)
	}
	k := &kv
	s := &schedule{k: k}
	for d := 1; d < k.size; d *= 2 {
		s.rounds = append(s.rounds, round{
			sends: []xfer{{[]byte{}, (k.rank + d) % k.size}},
			recvs: []xfer{{[]byte{}, (k.rank - d + k.size) % k.size}},
		})
	}
	return s.request(c)
}

// Ibcast starts a broadcast of root's xs (binomial tree) and returns its
// request; xs belongs to the request until it completes.
func Ibcast[T Elem](c *comm.Comm, xs []T, root int) *comm.Request {
	kv, err := start[T](c, coll.Bcast|coll.Nonblocking, root, "", len(xs))
	if err != nil {
		return failedRequest(err)
	}
	k := &kv
	if err := k.checkRoot(root); err != nil {
		return k.failedRequest(err)
	}
	s := &schedule{k: k}
	n := k.size
	b := asBytes(xs)
	vr := (k.rank - root + n) % n
	mask := 1
	for mask < n {
		if vr&mask != 0 {
			s.rounds = append(s.rounds, round{recvs: []xfer{{b, (vr - mask + root) % n}}})
			break
		}
		mask <<= 1
	}
	var sends []xfer
	for mask >>= 1; mask > 0; mask >>= 1 {
		if vr+mask < n {
			sends = append(sends, xfer{b, (vr + mask + root) % n})
		}
	}
	if len(sends) > 0 {
		s.rounds = append(s.rounds, round{sends: sends})
	}
	return s.request(c)
}

// Iallreduce starts an allreduce (recursive doubling, as Allreduce for
// short vectors; a non-commutative op combines in rank order) and returns
// its request; in and out belong to the request until it completes.
func Iallreduce[T Elem](c *comm.Comm, in, out []T, op Op) *comm.Request {
	if err := checkOp[T](op); err != nil {
		return failedRequest(opError(coll.Allreduce|coll.Nonblocking, err))
	}
	kv, err := start[T](c, coll.Allreduce|coll.Nonblocking, 0, op.name, len(in))
	if err != nil {
		return failedRequest(err)
	}
	k := &kv
	if len(out) != len(in) {
		return k.failedRequest(k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in)))
	}
	if !sameVector(in, out) {
		copy(out, in)
	}
	s := &schedule{k: k}
	if k.size == 1 {
		return s.request(c)
	}
	if !op.commutative {
		return iallreduceOrdered(c, k, s, out, op)
	}
	pof2 := floorPow2(k.size)
	rem := k.size - pof2
	tmp := make([]T, len(out))
	ob, tb := asBytes(out), asBytes(tmp)
	newrank := k.rank - rem
	switch {
	case k.rank >= 2*rem:
	case k.rank%2 == 0:
		newrank = -1
		s.rounds = append(s.rounds, round{sends: []xfer{{ob, k.rank + 1}}})
	default:
		newrank = k.rank / 2
		s.rounds = append(s.rounds, round{recvs: []xfer{{tb, k.rank - 1}}, then: func() error {
			if err := apply(op, tmp, out); err != nil {
				return err
			}
			copy(out, tmp)
			return nil
		}})
	}
	if newrank >= 0 {
		for mask := 1; mask < pof2; mask <<= 1 {
			dst := realRank(newrank^mask, rem)
			lowerFirst := dst < k.rank
			s.rounds = append(s.rounds, round{sends: []xfer{{ob, dst}}, recvs: []xfer{{tb, dst}}, then: func() error {
				if lowerFirst {
					if err := apply(op, tmp, out); err != nil {
						return err
					}
					copy(out, tmp)
					return nil
				}
				return apply(op, out, tmp)
			}})
		}
	}
	if k.rank < 2*rem {
		if k.rank%2 == 1 {
			s.rounds = append(s.rounds, round{sends: []xfer{{ob, k.rank - 1}}})
		} else {
			s.rounds = append(s.rounds, round{recvs: []xfer{{ob, k.rank + 1}}})
		}
	}
	return s.request(c)
}

// iallreduceOrdered gathers every vector at rank 0 in rank order, folds
// them left to right, and sends the result back.
func iallreduceOrdered[T Elem](c *comm.Comm, k *call, s *schedule, out []T, op Op) *comm.Request {
	ob := asBytes(out)
	if k.rank != 0 {
		s.rounds = append(s.rounds, round{sends: []xfer{{ob, 0}}}, round{recvs: []xfer{{ob, 0}}})
		return s.request(c)
	}
	all := make([]T, len(out)*k.size)
	var recvs []xfer
	for r := 1; r < k.size; r++ {
		recvs = append(recvs, xfer{asBytes(all[r*len(out) : (r+1)*len(out)]), r})
	}
	s.rounds = append(s.rounds, round{recvs: recvs, then: func() error {
		for r := 1; r < k.size; r++ {
			if err := apply(op, out, all[r*len(out):(r+1)*len(out)]); err != nil {
				return err
			}
		}
		return nil
	}})
	var sends []xfer
	for r := 1; r < k.size; r++ {
		sends = append(sends, xfer{ob, r})
	}
	s.rounds = append(s.rounds, round{sends: sends})
	return s.request(c)
}

func failedRequest(err error) *comm.Request {
	return coll.Bridge.Failed(err).(*comm.Request)
}

// failedRequest is the request of a nonblocking call that failed as it
// started; the other members are told (see settle).
func (k *call) failedRequest(err error) *comm.Request {
	k.settle(&err)
	return failedRequest(err)
}
