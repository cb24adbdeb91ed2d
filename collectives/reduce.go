package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Reduce combines the in vectors of all ranks element by element with op
// and leaves the result in root's out (out is ignored elsewhere and may
// be nil). At the root, passing the same slice as in and out reduces in
// place; slices that overlap otherwise fail with comm.ErrInvalidArg.
//
// Algorithm: on 3 or 4 ranks, short vectors (see reduceFlatMax) go
// straight to the root, which combines them in rank order. Otherwise, for
// short vectors, a binomial tree (as MPICH's): rank vr
// (relative to the root) receives the partial results of its subtrees,
// lowest first, and passes its own up; every partial result is lower
// ranks op higher ranks. A non-commutative op is reduced with root 0 (so
// relative and absolute ranks agree) and sent to the root after. On two
// ranks (see reduceRabenseifnerMaxRanks), long vectors of a commutative
// op use Rabenseifner's reduce-scatter by
// recursive halving and a binomial gather of the reduced blocks: each rank
// reduces 1/p of the vector instead of the root reducing all of it p-1
// times (two ranks: each reduces half, and half the vector travels to
// the root).
func Reduce[T Elem](c *comm.Comm, in, out []T, op Op, root int) (err error) {
	// Before the call begins: every rank finds the same, and nobody is
	// left waiting (see call.settle).
	if err := checkOp[T](op); err != nil {
		return opError(coll.Reduce, err)
	}
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Reduce, root, op.name, len(in)); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	if k.rank == root && len(out) < len(in) {
		return k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in))
	}
	if k.rank == root {
		if err := checkApart(k, in, out[:len(in)]); err != nil {
			return err
		}
	}
	if pof2 := floorPow2(k.size); op.commutative && k.size > 1 && k.size <= reduceRabenseifnerMaxRanks &&
		len(asBytes(in)) >= reduceLargeMin && len(in) >= pof2 {
		return reduceRabenseifner(k, in, out, op, root)
	}
	if reducesFlat(k, len(asBytes(in))) {
		return reduceFlat(k, in, out, op, root)
	}
	if reducePairs && k.size == 2 && op.exactlyCommutative() && (k.rank != root || !sameVector(in, out[:len(in)])) {
		return reducePair(k, in, out, op, root)
	}
	treeRoot := root
	if !op.commutative {
		treeRoot = 0
	}
	// acc gathers the partial results: a rank that only sends (a leaf of
	// the tree) sends in itself; the root combines in out when it can;
	// others use scratch.
	n := len(in)
	vr := (k.rank - treeRoot + k.size) % k.size
	receives := vr&1 == 0 && vr+1 < k.size
	isRoot := k.rank == root
	var acc, fresh []T
	switch {
	case !receives && !(isRoot && treeRoot != root):
		acc = in // only read
	case isRoot && !sameVector(in, out[:n]):
		acc = out[:n]
	default:
		var buf scratchBuf
		acc, buf = scratch[T](n)
		defer buf.release()
	}
	if !sameVector(acc, in) {
		// A rank that receives starts from its own values. With an op
		// whose operands may swap, the first child's vector is received
		// straight into acc and in is combined into it, which saves a
		// copy of in as long as the vector (at the root, the copy wrote
		// out, whose lines the peer's single-copy write then had to take
		// back: 64 KiB on 2 ranks 15.1 -> 10.5 us).
		if receives && op.exactlyCommutative() {
			fresh = in
		} else {
			copyElems(acc, in)
		}
	}
	if err := reduceBinomial(k, acc, fresh, op, treeRoot); err != nil {
		return err
	}
	if treeRoot != root {
		switch k.rank {
		case treeRoot:
			if err := k.send(asBytes(acc), root); err != nil {
				return k.fail(err)
			}
		case root:
			if err := k.recvExact(asBytes(acc), treeRoot); err != nil {
				return err
			}
		}
	}
	if isRoot && !sameVector(acc, out[:n]) {
		copyElems(out, acc)
	}
	return nil
}

// reducePairs turns on reducePair (the tests force the tree).
var reducePairs = true

// reducePair is the tree's one message on 2 ranks, without its layers,
// for an operator whose operands may swap (the predefined ones): the
// other rank sends in, and the root receives it straight into out and
// combines in into it (out apart from in). Against the tree, 10
// alternating runs: 4 B-1 KiB 0.90-1.00 of the time, the root's and the
// sender's alike.
//
// From the eager limit up, on a host that moves messages by single copy,
// the root reads the sender's in straight into out (SendRead): it waits
// for the data either way, and a copy out of the ring pulls every line
// from the other core, where the single copy reads a buffer both caches
// may hold. 9 interleaved runs, Intel Xeon whose Open MPI figures match
// ANCHORS.md: 16 KiB 1.96 against 2.20 us through the ring (Open MPI
// 2.05), 32 KiB 2.89 against 3.60 in two eager parts (3.19). The parts
// had won on a slower machine of the same kind (32 KiB 6.13 against 7.30).
func reducePair[T Elem](k *call, in, out []T, op Op, root int) error {
	if k.rank != root {
		if above := k.readsAbove(); above > 0 && len(asBytes(in)) >= above {
			return k.fail(coll.Bridge.SendRead(k.k, asBytes(in), root))
		}
		return k.fail(k.send(asBytes(in), root))
	}
	acc := out[:len(in)]
	if err := k.recvExact(asBytes(acc), 1-root); err != nil {
		return err
	}
	return k.fail(apply(op, acc, in))
}

// reduceLargeMin is the vector size in bytes from which Reduce uses
// Rabenseifner's algorithm. On 2 ranks the tree sends one message, which
// the root reads straight into out (single copy) and combines in into;
// recursive halving splits the combining, but the root must then also
// read the half of the results the other rank computed, which sit dirty
// in that rank's cache. On the Intel Xeon machine (2 cores), 7
// interleaved runs, the tree took 0.88-0.94 of halving's time at 1-4 MiB
// (1 MiB 201 against 228 us; Open MPI 201), and halving 0.94-0.97 of the
// tree's at 8-16 MiB. (An AMD machine measured earlier had halving ahead
// from 1 MiB: 129 against 182 us.) A split where the root combined a
// quarter and read the other's results chunk by chunk, and a tree whose
// message came in 32-256 KiB chunks (the root combining each while hot),
// were both slower than the one message (1 MiB: 215-297 and 211-336 us
// against 177-197, 3 runs each).
var reduceLargeMin = 8 << 20

// reduceRabenseifnerMaxRanks limits Rabenseifner's Reduce to rank counts
// where it was measured faster. At 2 ranks it took 1 MiB from 361 to 129
// us; at 4 ranks on 2 cores it doubled the time (every halving step waits
// for a partner that may not be running), and no machine with a core per
// rank was at hand to measure 4 and more (bench/device/run.sh does).
var reduceRabenseifnerMaxRanks = 2

// reduceRabenseifner reduces the ranks' in vectors into root's out:
// reduce-scatter by recursive halving (allreduceRabenseifner's first
// half), then the reduced blocks gathered to the first of the
// power-of-two ranks by a binomial tree, and passed to root if that is
// another rank.
func reduceRabenseifner[T Elem](k *call, in, out []T, op Op, root int) error {
	n := len(in)
	pof2 := floorPow2(k.size)
	rem := k.size - pof2
	target := realRank(0, rem)
	var acc []T
	if k.rank == root && root == target && !sameVector(in, out[:n]) {
		acc = out[:n]
	} else {
		var buf scratchBuf
		acc, buf = scratch[T](n)
		defer buf.release()
	}
	tmp, release := scratch[T](n)
	defer release.release()
	src := in // the first halving step reads the input
	newrank := k.rank
	if rem > 0 {
		copyElems(acc, in)
		src = acc
		var err error
		if newrank, err = foldIn(k, acc, tmp, op, pof2); err != nil {
			return err
		}
	}
	if newrank >= 0 {
		off := blocks(n, pof2)
		if err := reduceScatterHalving(k, op, src, acc, tmp, off, newrank, pof2); err != nil {
			return err
		}
		// Binomial gather to new rank 0: at step d a rank whose low bits
		// are clear holds blocks [newrank, newrank+d) and takes its
		// partner's d blocks above them; the partner is done.
		for d := 1; d < pof2; d *= 2 {
			if newrank&d != 0 {
				dst := realRank(newrank^d, rem)
				if err := k.send(asBytes(acc[off[newrank]:off[newrank+d]]), dst); err != nil {
					return k.fail(err)
				}
				break
			}
			partner := newrank | d
			if err := k.recvExact(asBytes(acc[off[partner]:off[partner+d]]), realRank(partner, rem)); err != nil {
				return err
			}
		}
	}
	if target != root {
		switch k.rank {
		case target:
			if err := k.send(asBytes(acc), root); err != nil {
				return k.fail(err)
			}
		case root:
			if err := k.recvExact(asBytes(out[:n]), target); err != nil {
				return err
			}
			return nil
		}
	}
	if k.rank == root && !sameVector(acc, out[:n]) {
		copyElems(out, acc)
	}
	return nil
}

// reduceBinomial reduces acc (this rank's values) toward root; at the root
// acc ends as the result. If fresh is not nil, acc holds nothing yet and
// fresh holds this rank's values: the first vector received goes straight
// into acc and fresh is combined into it (op's operands must commute
// exactly).
func reduceBinomial[T Elem](k *call, acc, fresh []T, op Op, root int) error {
	n := k.size
	vr := (k.rank - root + n) % n
	// Scratch for the vectors that do not go straight into acc, taken at
	// the first one; one defer outside the loop, which costs no allocation.
	var tmp []T
	var buf scratchBuf
	defer func() { buf.release() }()
	for mask := 1; mask < n; mask <<= 1 {
		if vr&mask != 0 {
			if fresh != nil {
				copyElems(acc, fresh) // a rank that had nothing to receive
			}
			return k.fail(k.send(asBytes(acc), (vr&^mask+root)%n))
		}
		src := vr | mask
		if src >= n {
			continue
		}
		if fresh != nil {
			if err := k.recvExact(asBytes(acc), (src+root)%n); err != nil {
				return err
			}
			if err := apply(op, acc, fresh); err != nil {
				return k.fail(err)
			}
			fresh = nil
			continue
		}
		if tmp == nil {
			tmp, buf = scratch[T](len(acc))
		}
		if err := k.recvExact(asBytes(tmp), (src+root)%n); err != nil {
			return err
		}
		if err := apply(op, acc, tmp); err != nil {
			return k.fail(err)
		}
	}
	if fresh != nil {
		copyElems(acc, fresh)
	}
	return nil
}

// reduceFlatMax and reduceFlatMaxRanks bound the vectors (bytes) and the
// ranks for which Reduce sends every rank's vector straight to the root.
// Ranks that share cores wait for each other at every hop of the tree: on
// 4 ranks and 2 cores, 5-7 interleaved runs, 8 B took 2.8 us against the
// tree's 5.5, 1 KiB 2.5 against 6.6, 8 KiB 3.9 against 8.0. With a core
// per rank (not measured here: no machine with 4 cores was at hand) a
// 4-rank tree has only 2 hops either way.
var (
	reduceFlatMax      = 8192
	reduceFlatMaxRanks = 4
)

// reducesFlat reports whether a Reduce of n bytes takes reduceFlat.
func reducesFlat(k *call, n int) bool {
	return k.size > 2 && k.size <= reduceFlatMaxRanks && n <= reduceFlatMax
}

// reduceFlat gathers every rank's vector at the root (gatherLinear), which
// combines them in rank order (any op, commutative or not): one hop
// instead of the tree's log2(n).
func reduceFlat[T Elem](k *call, in, out []T, op Op, root int) error {
	if k.rank != root {
		return gatherLinear(k, in, nil, root)
	}
	n := len(in)
	all, buf := scratch[T](n * k.size)
	defer buf.release()
	if err := gatherLinear(k, in, all, root); err != nil {
		return err
	}
	acc := out[:n]
	copyElems(acc, all[:n])
	for r := 1; r < k.size; r++ {
		if err := apply(op, acc, all[r*n:(r+1)*n]); err != nil {
			return k.fail(err)
		}
	}
	return nil
}
