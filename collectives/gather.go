package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// gatherBinomialMax is the total size (all ranks' blocks, in bytes) up to
// which Gather and Scatter use a binomial tree; above it the root talks
// to every rank directly, which moves each block once instead of
// log2(n) times.
var gatherBinomialMax = 64 << 10

// rootedFlatMaxRanks bounds the rank counts at which Gather, Scatter and
// short Bcasts talk between the root and every rank directly at any size:
// no rank waits for another to pass its block on, which on 4 ranks on 2
// cores cost a switch to that rank (BENCHMARKS.md).
var rootedFlatMaxRanks = 8

// Gather collects every rank's send vector at root, in rank order: root's
// recv holds Size()*len(send) elements (recv is ignored elsewhere). At
// the root, send may be root's own block of recv (in place).
//
// Algorithm: direct sends to the root on up to 8 ranks and for long
// blocks; otherwise a binomial tree (each rank forwards its subtree's
// blocks to its parent; Barnett et al., "Interprocessor collective
// communication library (InterCom)", 1994).
func Gather[T Elem](c *comm.Comm, send, recv []T, root int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Gather, root, "", len(send)); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	blk := len(send)
	if k.rank == root && len(recv) < blk*k.size {
		return k.errorf("%w: recv holds %d elements, %d ranks of %d need %d", comm.ErrInvalidArg, len(recv), k.size, blk, blk*k.size)
	}
	if k.size == 1 {
		copyElems(recv, send)
		return nil
	}
	if k.size == 2 {
		// One message, straight into recv: no scratch block (the binomial
		// tree copied through both). A message the root reads out of the
		// sender's memory is read before the root copies its own block,
		// which frees the sender a copy earlier (2 ranks, 7 interleaved
		// runs: 0.79-0.88 of the time from 128 KiB to 4 MiB); another
		// arrives while the root copies.
		if k.rank != root {
			return k.fail(k.send(asBytes(send), root))
		}
		other := 1 - root
		theirs := asBytes(recv[other*blk : (other+1)*blk])
		if k.readsOnHost(len(theirs)) {
			if err := k.recvExact(theirs, other); err != nil {
				return err
			}
			copyElems(recv[root*blk:(root+1)*blk], send)
			return nil
		}
		copyElems(recv[root*blk:(root+1)*blk], send)
		return k.recvExact(theirs, other)
	}
	if k.size <= rootedFlatMaxRanks || blk*elemSize[T]()*k.size > gatherBinomialMax {
		return gatherLinear(k, send, recv, root)
	}
	return gatherBinomial(k, send, recv, root)
}

func gatherLinear[T Elem](k *call, send, recv []T, root int) error {
	blk := len(send)
	if k.rank != root {
		return k.fail(k.send(asBytes(send), root))
	}
	var few [8]*comm.Request // no allocation on a few ranks (reduceFlat)
	var fewSizes [8]int
	reqs, sizes := few[:0], fewSizes[:0]
	for r := 0; r < k.size; r++ {
		if r == root {
			continue
		}
		buf := asBytes(recv[r*blk : (r+1)*blk])
		reqs = append(reqs, k.irecv(buf, r))
		sizes = append(sizes, len(buf))
	}
	copyElems(recv[root*blk:(root+1)*blk], send)
	return k.waitRecvs(reqs, sizes)
}

func gatherBinomial[T Elem](k *call, send, recv []T, root int) error {
	n, blk := k.size, len(send)
	vr := (k.rank - root + n) % n
	// The blocks of relative ranks [vr, vr+sub) collect in tmp.
	sub := 1
	for sub < n && vr&sub == 0 {
		sub <<= 1
	}
	sub = min(sub, n-vr)
	tmp, release := scratch[T](sub * blk)
	defer release.release()
	copyElems(tmp, send)
	have := 1
	for mask := 1; mask < n; mask <<= 1 {
		if vr&mask != 0 {
			return k.fail(k.send(asBytes(tmp[:have*blk]), (vr-mask+root)%n))
		}
		child := vr + mask
		if child >= n {
			continue
		}
		cnt := min(mask, n-child)
		if err := k.recvExact(asBytes(tmp[have*blk:(have+cnt)*blk]), (child+root)%n); err != nil {
			return err
		}
		have += cnt
	}
	// The root holds every block in relative order.
	for j := 0; j < n; j++ {
		r := (j + root) % n
		copyElems(recv[r*blk:(r+1)*blk], tmp[j*blk:(j+1)*blk])
	}
	return nil
}

// Scatter sends block r of root's send (Size()*len(recv) elements) to
// rank r's recv. At the root, recv may be root's own block of send.
//
// Algorithm: direct sends from the root on up to 8 ranks and for long
// blocks, otherwise a binomial tree (the mirror of Gather).
func Scatter[T Elem](c *comm.Comm, send, recv []T, root int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Scatter, root, "", len(recv)); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	blk := len(recv)
	if k.rank == root && len(send) < blk*k.size {
		return k.errorf("%w: send holds %d elements, %d ranks of %d need %d", comm.ErrInvalidArg, len(send), k.size, blk, blk*k.size)
	}
	if k.size == 1 {
		copyElems(recv, send)
		return nil
	}
	if k.size <= rootedFlatMaxRanks || blk*elemSize[T]()*k.size > gatherBinomialMax {
		if k.rank != root {
			return k.recvExact(asBytes(recv), root) // straight into recv
		}
		if k.size == 2 || blk*elemSize[T]() <= sendInTurnMax {
			// One peer, or short blocks: blocking sends (sendInTurnMax).
			if err := k.sendInTurn(root, func(r int) []byte { return asBytes(send[r*blk : (r+1)*blk]) }); err != nil {
				return err
			}
			copyElems(recv, send[root*blk:(root+1)*blk])
			return nil
		}
		var few [8]*comm.Request // no allocation on a few ranks
		reqs := few[:0]
		for r := 0; r < k.size; r++ {
			if r != root {
				reqs = append(reqs, k.isend(asBytes(send[r*blk:(r+1)*blk]), r))
			}
		}
		copyElems(recv, send[root*blk:(root+1)*blk])
		return k.waitAll(reqs)
	}
	n := k.size
	vr := (k.rank - root + n) % n
	sub := 1
	for sub < n && vr&sub == 0 {
		sub <<= 1
	}
	sub = min(sub, n-vr)
	tmp, release := scratch[T](sub * blk)
	defer release.release()
	mask := 1
	if vr == 0 {
		for j := 0; j < n; j++ {
			r := (j + root) % n
			copyElems(tmp[j*blk:(j+1)*blk], send[r*blk:(r+1)*blk])
		}
		for mask < n {
			mask <<= 1
		}
	} else {
		for mask < n {
			if vr&mask != 0 {
				if err := k.recvExact(asBytes(tmp[:sub*blk]), (vr-mask+root)%n); err != nil {
					return err
				}
				break
			}
			mask <<= 1
		}
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		child := vr + mask
		if child < n {
			cnt := min(mask, n-child)
			if err := k.send(asBytes(tmp[mask*blk:(mask+cnt)*blk]), (child+root)%n); err != nil {
				return k.fail(err)
			}
		}
	}
	copyElems(recv, tmp[:blk])
	return nil
}

// checkV validates counts and displacements against a buffer of n elements.
func (k *call) checkV(what string, counts, displs []int, n int) error {
	if len(counts) != k.size || displs != nil && len(displs) != k.size {
		return k.errorf("%w: %s needs %d counts and displacements, got %d and %d", comm.ErrInvalidArg, what, k.size, len(counts), len(displs))
	}
	for i, c := range counts {
		d := vOffset(counts, displs, i)
		if c < 0 || d < 0 || d+c > n {
			return k.errorf("%w: %s block %d (%d elements at %d) is outside the %d-element buffer", comm.ErrInvalidArg, what, i, c, d, n)
		}
	}
	return nil
}

// packedOffsets returns, for blocks of counts packed in rank order, the
// start of each block and, last, their total. It fills arr where that is
// long enough (no allocation up to 16 ranks).
func packedOffsets(counts []int, arr *[17]int) []int {
	off := arr[:0]
	if len(counts)+1 > len(arr) {
		off = make([]int, 0, len(counts)+1)
	}
	off = off[:len(counts)+1]
	off[0] = 0
	for i, c := range counts {
		off[i+1] = off[i] + c
	}
	return off
}

// vOffset is block i's displacement: displs[i], or the blocks packed one
// after another when displs is nil.
func vOffset(counts, displs []int, i int) int {
	if displs != nil {
		return displs[i]
	}
	off := 0
	for _, c := range counts[:i] {
		off += c
	}
	return off
}

// Gatherv collects rank r's send vector into root's recv at displs[r]
// (counts[r] elements). counts and displs matter at the root only; nil
// displs packs the blocks in rank order.
func Gatherv[T Elem](c *comm.Comm, send, recv []T, counts, displs []int, root int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Gatherv, root, "", 0); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	if k.rank != root {
		return k.fail(k.send(asBytes(send), root))
	}
	if err := k.checkV("gatherv", counts, displs, len(recv)); err != nil {
		return err
	}
	if counts[root] != len(send) {
		return k.errorf("%w: the root sends %d elements but counts[%d] = %d", comm.ErrInvalidArg, len(send), root, counts[root])
	}
	reqs := make([]*comm.Request, 0, k.size)
	sizes := make([]int, 0, k.size)
	for r := 0; r < k.size; r++ {
		off := vOffset(counts, displs, r)
		if r == root {
			copyElems(recv[off:off+counts[r]], send)
			continue
		}
		reqs = append(reqs, k.irecv(asBytes(recv[off:off+counts[r]]), r))
		sizes = append(sizes, counts[r]*elemSize[T]())
	}
	return k.waitRecvs(reqs, sizes)
}

// Scatterv sends counts[r] elements at displs[r] of root's send to rank
// r's recv (which must hold them). counts and displs matter at the root.
func Scatterv[T Elem](c *comm.Comm, send []T, counts, displs []int, recv []T, root int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Scatterv, root, "", 0); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	if k.rank != root {
		n, err := coll.Bridge.Recv(k.k, asBytes(recv), root)
		if err != nil {
			return k.mismatch(err, root)
		}
		if n%elemSize[T]() != 0 {
			return k.errorf("%w: the root sent %d bytes, not a whole number of elements", comm.ErrMismatch, n)
		}
		return nil
	}
	if err := k.checkV("scatterv", counts, displs, len(send)); err != nil {
		return err
	}
	if counts[root] > len(recv) {
		return k.errorf("%w: the root's recv holds %d elements, counts[%d] = %d", comm.ErrInvalidArg, len(recv), root, counts[root])
	}
	reqs := make([]*comm.Request, 0, k.size)
	for r := 0; r < k.size; r++ {
		off := vOffset(counts, displs, r)
		if r == root {
			copyElems(recv, send[off:off+counts[r]])
			continue
		}
		reqs = append(reqs, k.isend(asBytes(send[off:off+counts[r]]), r))
	}
	return k.waitAll(reqs)
}
