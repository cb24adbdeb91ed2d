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
		coll.Bridge.Abandon(s.k.k, err)
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
	var kv call
	k := &kv
	if err := begin(k, c, coll.Barrier|coll.Nonblocking, coll.Args{}); err != nil {
		return failedRequest(err)
	}
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
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Bcast|coll.Nonblocking, root, "", len(xs)); err != nil {
		return failedRequest(err)
	}
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
// its request; in and out belong to the request until it completes, and
// must be the same slice or not overlap, as for Allreduce.
func Iallreduce[T Elem](c *comm.Comm, in, out []T, op Op) *comm.Request {
	if err := checkOp[T](op); err != nil {
		return failedRequest(opError(coll.Allreduce|coll.Nonblocking, err))
	}
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Allreduce|coll.Nonblocking, 0, op.name, len(in)); err != nil {
		return failedRequest(err)
	}
	if len(out) != len(in) {
		return k.failedRequest(k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in)))
	}
	if err := checkApart(k, in, out); err != nil {
		return k.failedRequest(err) // as Allreduce, though the copy below would cope
	}
	if !sameVector(in, out) {
		copyElems(out, in)
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
			copyElems(out, tmp)
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
					copyElems(out, tmp)
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

// The other nonblocking collectives, as schedules. Each is the simplest
// schedule that is correct for any rank count: one round where every
// message can go at once (gathers, scatters, all-to-all exchanges), or the
// rounds of the blocking algorithm where each depends on the one before
// (reductions, scans). The request advances whenever the program waits
// for or tests it.

// roundOf is a schedule of a single round.
func roundOf(k *call, r round) *schedule { return &schedule{k: k, rounds: []round{r}} }

// Igather starts a Gather (every rank's send to root's recv, in rank
// order) and returns its request.
func Igather[T Elem](c *comm.Comm, send, recv []T, root int) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Gather|coll.Nonblocking, root, "", len(send)); err != nil {
		return failedRequest(err)
	}
	if err := k.checkRoot(root); err != nil {
		return k.failedRequest(err)
	}
	blk := len(send)
	if k.rank != root {
		return roundOf(k, round{sends: []xfer{{asBytes(send), root}}}).request(c)
	}
	if len(recv) < blk*k.size {
		return k.failedRequest(k.errorf("%w: recv holds %d elements, %d ranks of %d need %d", comm.ErrInvalidArg, len(recv), k.size, blk, blk*k.size))
	}
	var r round
	for p := 0; p < k.size; p++ {
		if p != root {
			r.recvs = append(r.recvs, xfer{asBytes(recv[p*blk : (p+1)*blk]), p})
		}
	}
	copyElems(recv[root*blk:(root+1)*blk], send)
	return roundOf(k, r).request(c)
}

// Igatherv starts a Gatherv and returns its request.
func Igatherv[T Elem](c *comm.Comm, send, recv []T, counts, displs []int, root int) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Gatherv|coll.Nonblocking, root, "", 0); err != nil {
		return failedRequest(err)
	}
	if err := k.checkRoot(root); err != nil {
		return k.failedRequest(err)
	}
	if k.rank != root {
		return roundOf(k, round{sends: []xfer{{asBytes(send), root}}}).request(c)
	}
	if err := k.checkV("igatherv", counts, displs, len(recv)); err != nil {
		return k.failedRequest(err)
	}
	var r round
	for p := 0; p < k.size; p++ {
		off := vOffset(counts, displs, p)
		if p == root {
			copyElems(recv[off:off+counts[p]], send)
			continue
		}
		r.recvs = append(r.recvs, xfer{asBytes(recv[off : off+counts[p]]), p})
	}
	return roundOf(k, r).request(c)
}

// Iscatter starts a Scatter (block r of root's send to rank r's recv) and
// returns its request.
func Iscatter[T Elem](c *comm.Comm, send, recv []T, root int) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Scatter|coll.Nonblocking, root, "", len(recv)); err != nil {
		return failedRequest(err)
	}
	if err := k.checkRoot(root); err != nil {
		return k.failedRequest(err)
	}
	blk := len(recv)
	if k.rank != root {
		return roundOf(k, round{recvs: []xfer{{asBytes(recv), root}}}).request(c)
	}
	if len(send) < blk*k.size {
		return k.failedRequest(k.errorf("%w: send holds %d elements, %d ranks of %d need %d", comm.ErrInvalidArg, len(send), k.size, blk, blk*k.size))
	}
	var r round
	for p := 0; p < k.size; p++ {
		if p != root {
			r.sends = append(r.sends, xfer{asBytes(send[p*blk : (p+1)*blk]), p})
		}
	}
	copyElems(recv, send[root*blk:(root+1)*blk])
	return roundOf(k, r).request(c)
}

// Iscatterv starts a Scatterv and returns its request. Each rank's recv
// must have exactly the length root's counts give it.
func Iscatterv[T Elem](c *comm.Comm, send []T, counts, displs []int, recv []T, root int) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Scatterv|coll.Nonblocking, root, "", 0); err != nil {
		return failedRequest(err)
	}
	if err := k.checkRoot(root); err != nil {
		return k.failedRequest(err)
	}
	if k.rank != root {
		return roundOf(k, round{recvs: []xfer{{asBytes(recv), root}}}).request(c)
	}
	if err := k.checkV("iscatterv", counts, displs, len(send)); err != nil {
		return k.failedRequest(err)
	}
	var r round
	for p := 0; p < k.size; p++ {
		off := vOffset(counts, displs, p)
		if p == root {
			copyElems(recv, send[off:off+counts[p]])
			continue
		}
		r.sends = append(r.sends, xfer{asBytes(send[off : off+counts[p]]), p})
	}
	return roundOf(k, r).request(c)
}

// Iallgather starts an Allgather and returns its request.
func Iallgather[T Elem](c *comm.Comm, send, recv []T) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Allgather|coll.Nonblocking, 0, "", len(send)); err != nil {
		return failedRequest(err)
	}
	blk := len(send)
	if len(recv) != blk*k.size {
		return k.failedRequest(k.errorf("%w: recv holds %d elements, %d ranks of %d need %d", comm.ErrInvalidArg, len(recv), k.size, blk, blk*k.size))
	}
	var r round
	for p := 0; p < k.size; p++ {
		if p != k.rank {
			r.sends = append(r.sends, xfer{asBytes(send), p})
			r.recvs = append(r.recvs, xfer{asBytes(recv[p*blk : (p+1)*blk]), p})
		}
	}
	copyElems(recv[k.rank*blk:(k.rank+1)*blk], send)
	return roundOf(k, r).request(c)
}

// Iallgatherv starts an Allgatherv and returns its request.
func Iallgatherv[T Elem](c *comm.Comm, send, recv []T, counts, displs []int) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Allgatherv|coll.Nonblocking, 0, "", 0); err != nil {
		return failedRequest(err)
	}
	if err := k.checkV("iallgatherv", counts, displs, len(recv)); err != nil {
		return k.failedRequest(err)
	}
	if counts[k.rank] != len(send) {
		return k.failedRequest(k.errorf("%w: this rank sends %d elements but counts[%d] = %d", comm.ErrInvalidArg, len(send), k.rank, counts[k.rank]))
	}
	var r round
	for p := 0; p < k.size; p++ {
		off := vOffset(counts, displs, p)
		if p == k.rank {
			copyElems(recv[off:off+counts[p]], send)
			continue
		}
		r.sends = append(r.sends, xfer{asBytes(send), p})
		r.recvs = append(r.recvs, xfer{asBytes(recv[off : off+counts[p]]), p})
	}
	return roundOf(k, r).request(c)
}

// Ialltoall starts an Alltoall and returns its request.
func Ialltoall[T Elem](c *comm.Comm, send, recv []T) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Alltoall|coll.Nonblocking, 0, "", len(send)); err != nil {
		return failedRequest(err)
	}
	if len(send) != len(recv) || len(send)%k.size != 0 || sameVector(send, recv) {
		return k.failedRequest(k.errorf("%w: send (%d) and recv (%d) must be distinct and hold %d equal blocks", comm.ErrInvalidArg, len(send), len(recv), k.size))
	}
	blk := len(send) / k.size
	var r round
	for p := 0; p < k.size; p++ {
		if p != k.rank {
			r.sends = append(r.sends, xfer{asBytes(send[p*blk : (p+1)*blk]), p})
			r.recvs = append(r.recvs, xfer{asBytes(recv[p*blk : (p+1)*blk]), p})
		}
	}
	copyElems(recv[k.rank*blk:(k.rank+1)*blk], send[k.rank*blk:(k.rank+1)*blk])
	return roundOf(k, r).request(c)
}

// Ialltoallv starts an Alltoallv and returns its request.
func Ialltoallv[T Elem](c *comm.Comm, send []T, sendCounts, sendDispls []int, recv []T, recvCounts, recvDispls []int) *comm.Request {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Alltoallv|coll.Nonblocking, 0, "", 0); err != nil {
		return failedRequest(err)
	}
	if err := k.checkV("ialltoallv send", sendCounts, sendDispls, len(send)); err != nil {
		return k.failedRequest(err)
	}
	if err := k.checkV("ialltoallv recv", recvCounts, recvDispls, len(recv)); err != nil {
		return k.failedRequest(err)
	}
	so := func(i int) []T { o := vOffset(sendCounts, sendDispls, i); return send[o : o+sendCounts[i]] }
	ro := func(i int) []T { o := vOffset(recvCounts, recvDispls, i); return recv[o : o+recvCounts[i]] }
	if len(so(k.rank)) != len(ro(k.rank)) {
		return k.failedRequest(k.errorf("%w: this rank sends itself %d elements but expects %d", comm.ErrInvalidArg, len(so(k.rank)), len(ro(k.rank))))
	}
	var r round
	for p := 0; p < k.size; p++ {
		if p != k.rank {
			r.sends = append(r.sends, xfer{asBytes(so(p)), p})
			r.recvs = append(r.recvs, xfer{asBytes(ro(p)), p})
		}
	}
	copyElems(ro(k.rank), so(k.rank))
	return roundOf(k, r).request(c)
}

// Ireduce starts a Reduce (binomial tree, lower ranks' values on the left,
// as the blocking one; a non-commutative op reduces to rank 0 first) and
// returns its request; in and out belong to it until it completes, and at
// the root must be the same slice or not overlap, as for Reduce.
func Ireduce[T Elem](c *comm.Comm, in, out []T, op Op, root int) *comm.Request {
	if err := checkOp[T](op); err != nil {
		return failedRequest(opError(coll.Reduce|coll.Nonblocking, err))
	}
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Reduce|coll.Nonblocking, root, op.name, len(in)); err != nil {
		return failedRequest(err)
	}
	if err := k.checkRoot(root); err != nil {
		return k.failedRequest(err)
	}
	if k.rank == root && len(out) < len(in) {
		return k.failedRequest(k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in)))
	}
	if k.rank == root {
		if err := checkApart(k, in, out[:len(in)]); err != nil {
			return k.failedRequest(err) // as Reduce, though the copy below would cope
		}
	}
	treeRoot := root
	if !op.commutative {
		treeRoot = 0
	}
	acc := make([]T, len(in))
	copyElems(acc, in)
	s := &schedule{k: k}
	n := k.size
	vr := (k.rank - treeRoot + n) % n
	for mask := 1; mask < n; mask <<= 1 {
		if vr&mask != 0 {
			s.rounds = append(s.rounds, round{sends: []xfer{{asBytes(acc), (vr&^mask + treeRoot) % n}}})
			break
		}
		if src := vr | mask; src < n {
			tmp := make([]T, len(in))
			s.rounds = append(s.rounds, round{recvs: []xfer{{asBytes(tmp), (src + treeRoot) % n}},
				then: func() error { return apply(op, acc, tmp) }})
		}
	}
	if treeRoot != root {
		switch k.rank {
		case treeRoot:
			s.rounds = append(s.rounds, round{sends: []xfer{{asBytes(acc), root}}})
		case root:
			s.rounds = append(s.rounds, round{recvs: []xfer{{asBytes(acc), treeRoot}}})
		}
	}
	if k.rank == root {
		s.rounds = append(s.rounds, round{then: func() error { copyElems(out, acc); return nil }})
	}
	return s.request(c)
}

// IreduceScatter starts a ReduceScatter and returns its request: every
// rank sends each block to its owner at once, and the owner combines the
// contributions in rank order (so non-commutative operators work).
func IreduceScatter[T Elem](c *comm.Comm, in, out []T, counts []int, op Op) *comm.Request {
	if err := checkOp[T](op); err != nil {
		return failedRequest(opError(coll.ReduceScatter|coll.Nonblocking, err))
	}
	var kv call
	k := &kv
	if err := startReduceScatter[T](k, c, coll.ReduceScatter|coll.Nonblocking, in, counts, op); err != nil {
		return failedRequest(err)
	}
	if err := k.checkV("ireduce_scatter", counts, nil, len(in)); err != nil {
		return k.failedRequest(err)
	}
	mine := counts[k.rank]
	if len(out) < mine {
		return k.failedRequest(k.errorf("%w: out holds %d elements, counts[%d] = %d", comm.ErrInvalidArg, len(out), k.rank, mine))
	}
	parts := make([][]T, k.size)
	var r round
	for p := 0; p < k.size; p++ {
		off := vOffset(counts, nil, p)
		if p == k.rank {
			parts[p] = in[off : off+mine]
			continue
		}
		r.sends = append(r.sends, xfer{asBytes(in[off : off+counts[p]]), p})
		parts[p] = make([]T, mine)
		r.recvs = append(r.recvs, xfer{asBytes(parts[p]), p})
	}
	r.then = func() error {
		acc := make([]T, mine)
		copyElems(acc, parts[0])
		for p := 1; p < k.size; p++ {
			if err := apply(op, acc, parts[p]); err != nil {
				return err
			}
		}
		copyElems(out, acc)
		return nil
	}
	return roundOf(k, r).request(c)
}

// Iscan starts a Scan (inclusive prefix reduction in rank order) and
// returns its request.
func Iscan[T Elem](c *comm.Comm, in, out []T, op Op) *comm.Request {
	return iscan(c, coll.Scan|coll.Nonblocking, in, out, op, false)
}

// Iexscan starts an Exscan (exclusive prefix reduction; rank 0's out is
// left unchanged) and returns its request.
func Iexscan[T Elem](c *comm.Comm, in, out []T, op Op) *comm.Request {
	return iscan(c, coll.Exscan|coll.Nonblocking, in, out, op, true)
}

// iscan is the blocking scan's recursive doubling as rounds (see scan).
func iscan[T Elem](c *comm.Comm, kind coll.Kind, in, out []T, op Op, exclusive bool) *comm.Request {
	if err := checkOp[T](op); err != nil {
		return failedRequest(opError(kind, err))
	}
	var kv call
	k := &kv
	if err := start[T](k, c, kind, 0, op.name, len(in)); err != nil {
		return failedRequest(err)
	}
	if len(out) != len(in) {
		return k.failedRequest(k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in)))
	}
	n := len(in)
	partial, tmp := make([]T, n), make([]T, n)
	copyElems(partial, in)
	if !exclusive && !sameVector(in, out) {
		copyElems(out, in)
	}
	haveOut := !exclusive
	s := &schedule{k: k}
	for mask := 1; mask < k.size; mask <<= 1 {
		dst := k.rank ^ mask
		if dst >= k.size {
			continue
		}
		// The round sends partial and its step then changes it: a step runs
		// only once the round's sends are complete.
		s.rounds = append(s.rounds, round{
			sends: []xfer{{asBytes(partial), dst}},
			recvs: []xfer{{asBytes(tmp), dst}},
			then: func() error {
				if dst > k.rank {
					return apply(op, partial, tmp)
				}
				if haveOut {
					lower := make([]T, n)
					copyElems(lower, tmp)
					if err := apply(op, lower, out); err != nil {
						return err
					}
					copyElems(out, lower)
				} else {
					copyElems(out, tmp)
					haveOut = true
				}
				if err := apply(op, tmp, partial); err != nil {
					return err
				}
				copyElems(partial, tmp)
				return nil
			},
		})
	}
	return s.request(c)
}
