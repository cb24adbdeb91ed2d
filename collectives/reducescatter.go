package collectives

import (
	"math"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// ReduceScatter combines the in vectors of all ranks with op and leaves
// block r of the result (counts[r] elements, blocks in rank order) in rank
// r's out. in holds sum(counts) elements on every rank.
//
// Algorithms: for a commutative op, a ring (Patarasuk and Yuan,
// "Bandwidth optimal all-reduce algorithms for clusters of workstations",
// 2009): in n-1 steps each block travels around the ring once and picks
// up every rank's contribution, so each rank sends and combines about one
// vector in all. A non-commutative op uses an ordered Reduce and Scatterv.
// Short vectors (up to 32 KiB) with empty blocks, commutative op: a
// Reduce to rank 0, which sends the blocks that are not empty (as Open
// MPI). Short vectors on a power of two ranks, commutative op:
// recursive halving (as Open MPI's and MPICH's), log2(n) exchanges.
// Otherwise on 3 to 8 ranks, any op: every rank sends each block
// straight to its owner, which combines the n pieces in rank order (one
// round where the ring takes n-1, each waiting for the left neighbour; on
// 2 ranks both take one).
func ReduceScatter[T Elem](c *comm.Comm, in, out []T, counts []int, op Op) (err error) {
	// Before the call begins: every rank finds the same, and nobody is
	// left waiting (see call.settle).
	if err := checkOp[T](op); err != nil {
		return opError(coll.ReduceScatter, err)
	}
	var kv call
	k := &kv
	if err := startReduceScatter[T](k, c, coll.ReduceScatter, in, counts, op); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkV("reduce_scatter", counts, nil, len(in)); err != nil {
		return err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != len(in) {
		return k.errorf("%w: counts add up to %d, in holds %d", comm.ErrInvalidArg, total, len(in))
	}
	if len(out) < counts[k.rank] {
		return k.errorf("%w: out holds %d elements, counts[%d] = %d", comm.ErrInvalidArg, len(out), k.rank, counts[k.rank])
	}
	n := k.size
	off := func(i int) int { return vOffset(counts, nil, i) }
	if n == 1 {
		copyElems(out, in)
		return nil
	}
	if n > 2 && op.commutative && len(asBytes(in)) <= reduceScatterThroughRootMax && hasEmpty(counts) {
		// Before the board: the ranks whose blocks are empty only send,
		// and return (4 ranks, 4 B: 2.61 against 4.20 us on the board,
		// 5 interleaved runs).
		return reduceScatterThroughRoot(k, in, out[:counts[k.rank]], counts, op)
	}
	if k.onBoard(len(asBytes(in))) {
		return reduceScatterBoard(k, in, out[:counts[k.rank]], counts, op)
	}
	if n > 2 && n&(n-1) == 0 && op.commutative && len(asBytes(in)) <= reduceScatterHalvingMax {
		return reduceScatterByHalving(k, in, out[:counts[k.rank]], counts, op)
	}
	if n > 2 && n <= reduceScatterDirectMaxRanks && len(asBytes(in)) <= reduceScatterDirectMax {
		return reduceScatterDirect(k, in, out[:counts[k.rank]], counts, op)
	}
	if n == 2 && op.commutative {
		return reduceScatterPair(k, in, out[:counts[k.rank]], counts, op)
	}
	if !op.commutative {
		acc, release := scratch[T](len(in))
		defer release.release()
		if err := Reduce(c, in, acc, op, 0); err != nil {
			return err
		}
		return Scatterv(c, acc, counts, nil, out[:counts[k.rank]], 0)
	}
	acc, release := scratch[T](len(in))
	defer release.release()
	copyElems(acc, in)
	tmp, releaseTmp := scratch[T](maxInt(counts))
	defer releaseTmp.release()
	right, left := (k.rank+1)%n, (k.rank-1+n)%n
	// Step s: send the partial block (rank-s-1) to the right, receive block
	// (rank-s-2) from the left and add this rank's values to it. After n-1
	// steps block rank is complete here.
	for s := 0; s < n-1; s++ {
		sb := (k.rank - s - 1 + 2*n) % n
		rb := (k.rank - s - 2 + 2*n) % n
		got := tmp[:counts[rb]]
		// The first step sends from in, which this rank never writes: a
		// peer's single-copy read of acc left its lines in the peer's
		// cache, and the next call's copy into acc waited on each.
		src := acc
		if s == 0 {
			src = in
		}
		if err := k.exchange(asBytes(src[off(sb):off(sb)+counts[sb]]), right, asBytes(got), left); err != nil {
			return err
		}
		mine := acc[off(rb) : off(rb)+counts[rb]]
		if err := apply(op, mine, got); err != nil {
			return k.fail(err)
		}
	}
	copyElems(out, acc[off(k.rank):off(k.rank)+counts[k.rank]])
	return nil
}

// ReduceScatter vectors (bytes of the whole vector, at most) and rank
// counts that take the direct algorithm. Each rank sends and receives as
// many bytes as in the ring, but all at once: the ring's n-1 steps each
// wait on one neighbour, which oversubscribed costs a switch per step. On
// 2 cores, 5 interleaved runs against the ring (which took vectors above
// 4 KiB before): 4 ranks 0.49-0.74 of its time from 8 KiB to 4 MiB, 0.71-0.86
// at 8-16 MiB; 3 ranks 0.64-0.80 from 4 KiB to 4 MiB. No size was found
// where the ring wins, so none bounds it here.
var reduceScatterDirectMax, reduceScatterDirectMaxRanks = math.MaxInt, 8

// reduceScatterDirect sends block r of in to rank r, receives this rank's
// block from every other rank, and combines them in rank order, which
// makes it right for non-commutative ops too.
func reduceScatterDirect[T Elem](k *call, in, out []T, counts []int, op Op) error {
	mine := counts[k.rank]
	tmp, release := scratch[T](k.size * mine)
	defer release.release()
	block := func(r int) []T { off := vOffset(counts, nil, r); return in[off : off+counts[r]] }
	err := k.exchangeAll(
		func(from int) []byte { return asBytes(tmp[from*mine : (from+1)*mine]) },
		func(to int) []byte { return asBytes(block(to)) })
	if err != nil {
		return err
	}
	// This rank's own block joins the others in tmp: out may overlap in.
	copyElems(tmp[k.rank*mine:(k.rank+1)*mine], block(k.rank))
	copyElems(out, tmp[:mine])
	for r := 1; r < k.size; r++ {
		if err := apply(op, out, tmp[r*mine:(r+1)*mine]); err != nil {
			return k.fail(err)
		}
	}
	return nil
}

// reduceScatterHalvingMax bounds the vectors (bytes) that a commutative
// op on a power-of-two number of ranks reduces by recursive halving
// (reduceScatterHalving, as Rabenseifner's Allreduce begins): log2(n)
// exchanges, where the direct algorithm makes n-1 sends and n-1 receives.
// On 2 cores, 5 interleaved runs against the direct one: 8 ranks 0.61-0.72
// of its time from 8 B to 8 KiB, 0.65-0.69 at 16-32 KiB, 0.87-1.17 from
// 64 KiB; 4 ranks 0.73-0.94 at 16-32 KiB (2 runs), 1.23-1.33x from 64 KiB.
var reduceScatterHalvingMax = 32 << 10

// reduceScatterByHalving reduces by recursive halving into a scratch
// accumulator and copies this rank's block out.
func reduceScatterByHalving[T Elem](k *call, in, out []T, counts []int, op Op) error {
	var offArr [17]int
	off := packedOffsets(counts, &offArr)
	acc, releaseAcc := scratch[T](len(in))
	defer releaseAcc.release()
	tmp, releaseTmp := scratch[T](len(in))
	defer releaseTmp.release()
	if err := reduceScatterHalving(k, op, in, acc, tmp, off, k.rank, k.size); err != nil {
		return err
	}
	copyElems(out, acc[off[k.rank]:off[k.rank+1]])
	return nil
}

// reduceScatterPair is the ring's one step on 2 ranks, without its
// accumulator: each rank sends the other its block of in, and combines
// what it receives with its own block straight in out (a commutative op:
// the order of the two operands is this rank's first). With a predefined
// operator and out apart from in, the other's values land in out itself
// and this rank's are combined into them: against receiving into scratch
// and copying this rank's block to out, 0.67-0.94 of the time from 8 B to
// 64 KiB (8 alternating runs), 0.63-0.85 from 64 KiB to 1 MiB (5 runs).
func reduceScatterPair[T Elem](k *call, in, out []T, counts []int, op Op) error {
	other := 1 - k.rank
	otherOff, myOff := vOffset(counts, nil, other), vOffset(counts, nil, k.rank)
	if op.exactlyCommutative() && apart(in, out) {
		return swapCombine(k, in[otherOff:otherOff+counts[other]], out, in[myOff:myOff+len(out)], op)
	}
	got, release := scratch[T](len(out))
	defer release.release()
	if err := k.exchange(asBytes(in[otherOff:otherOff+counts[other]]), other, asBytes(got), other); err != nil {
		return err
	}
	copyElems(out, in[myOff:myOff+len(out)])
	if err := apply(op, out, got); err != nil {
		return k.fail(err)
	}
	return nil
}

// ReduceScatterBlock is ReduceScatter with every block len(out) elements:
// in holds Size()*len(out).
func ReduceScatterBlock[T Elem](c *comm.Comm, in, out []T, op Op) error {
	n := c.Size()
	counts := make([]int, n)
	for i := range counts {
		counts[i] = len(out)
	}
	return ReduceScatter(c, in, out, counts, op)
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// startReduceScatter begins a ReduceScatter of kind (blocking or not)
// whose check word covers counts, which every rank must pass alike: when
// some blocks are empty, no message carries them (reduceScatterThroughRoot),
// and a rank whose counts differ from the others' would otherwise wait for
// a block nobody sends, or leave one unreceived.
func startReduceScatter[T Elem](k *call, c *comm.Comm, kind coll.Kind, in []T, counts []int, op Op) error {
	if err := checkType[T](); err != nil {
		return opError(kind, err)
	}
	a := args[T](0, op.name, len(in))
	a.Counts = coll.CountsDigest(counts)
	return begin(k, c, kind, a)
}

// reduceScatterThroughRootMax bounds the vectors (bytes) with empty blocks
// that a commutative op reduces at rank 0, which then sends the blocks
// that are not empty (Open MPI 4.1 does so whenever a count is 0).
// Recursive halving and the direct algorithm send a message for every
// block, empty or not, and each costs a message's latency. On 2 cores,
// OSU's counts at 4-16 B (1,0,0,0 and on), 7 interleaved runs: 4 ranks
// 0.31-0.50 of the time at 4-8 B (Open MPI: 3.25 and 4.65 us, parley
// 2.46 and 4.12), 3 ranks 0.20-0.73, 8 ranks 0.48-0.77 at 4-16 B.
var reduceScatterThroughRootMax = 32 << 10

// hasEmpty reports whether some block has no elements.
func hasEmpty(counts []int) bool {
	for _, c := range counts {
		if c == 0 {
			return true
		}
	}
	return false
}

// reduceScatterThroughRoot reduces in at rank 0 (Reduce's flat gather on
// a few ranks, its binomial tree on more), and rank 0 sends each rank
// whose block is not empty its block; the others are done once their
// vector has left. Every rank's check word (and so its counts) reaches
// rank 0, directly or through the tree's inner ranks, which compare it.
func reduceScatterThroughRoot[T Elem](k *call, in, out []T, counts []int, op Op) error {
	const root = 0
	flat := reducesFlat(k, len(asBytes(in)))
	if k.rank != root {
		var err error
		if flat {
			err = gatherLinear(k, in, nil, root)
		} else {
			acc := in // a leaf of the tree only sends it
			if k.rank&1 == 0 && k.rank+1 < k.size {
				var release scratchBuf
				acc, release = scratch[T](len(in))
				defer release.release()
				copyElems(acc, in)
			}
			err = reduceBinomial(k, acc, nil, op, root)
		}
		if err != nil || len(out) == 0 {
			return err
		}
		return k.recvExact(asBytes(out), root)
	}
	acc, release := scratch[T](len(in))
	defer release.release()
	if flat {
		if err := reduceFlat(k, in, acc, op, root); err != nil {
			return err
		}
	} else {
		copyElems(acc, in)
		if err := reduceBinomial(k, acc, nil, op, root); err != nil {
			return err
		}
	}
	var arr [8]*comm.Request
	reqs := arr[:0]
	off := 0
	for r, c := range counts {
		if r != root && c > 0 {
			reqs = append(reqs, k.isend(asBytes(acc[off:off+c]), r))
		}
		off += c
	}
	copyElems(out, acc[:counts[root]])
	return k.waitAll(reqs)
}
