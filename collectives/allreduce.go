package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// allreduceLargeMin is the vector size in bytes from which Allreduce uses
// Rabenseifner's algorithm instead of recursive doubling. Below it the
// single round trip of recursive doubling wins; above it halving the data
// each rank combines does. Chosen from "bench allreduce" with 2 and 4
// ranks on the 2-core machine (BENCHMARKS.md).
var allreduceLargeMin = 32 << 10

// allreducePairMax bounds the vectors (bytes) that Allreduce on 2 ranks
// exchanges whole (allreducePair) rather than halving them
// (Rabenseifner): against the halving, 0.54-0.85 of the time from 32 to
// 512 KiB, the same at 1 MiB, 1.14-1.23x at 2-4 MiB (2 ranks, 5-6
// alternating runs).
var allreducePairMax = 1 << 20

// allreduceFlatMax and allreduceFlatMaxRanks bound the vectors (bytes) and
// rank counts for which Allreduce gathers at rank 0 and sends the result
// back (two hops, each a single round, where recursive doubling makes
// log2(n) rounds that each wait for a partner): 4 ranks on 2 cores,
// BENCHMARKS.md.
var allreduceFlatMax, allreduceFlatMaxRanks = 1024, 4

// Allreduce combines the in vectors of all ranks element by element with
// op and leaves the result in every rank's out, which must have the same
// length as in. Passing the same slice as in and out reduces in place;
// slices that overlap otherwise fail with comm.ErrInvalidArg.
// Every rank gets bit-identical results.
//
// Algorithms (Thakur, Rabenseifner and Gropp, "Optimization of collective
// communication operations in MPICH", 2005; Rabenseifner, "Optimization of
// collective reduction operations", 2004): recursive doubling for short
// vectors, Rabenseifner's reduce-scatter by recursive halving plus
// allgather by recursive doubling for long ones; both fold the ranks above
// the largest power of two into their neighbours first, so any rank count
// works. A non-commutative op uses an ordered Reduce and a Bcast. On 3
// or 4 ranks vectors up to 1 KiB go to rank 0, which combines them in
// rank order and sends the result back (any op). On 2 ranks, with a
// predefined operator and out apart from in, vectors below 1 MiB are
// exchanged whole, each rank receiving the other's straight into out.
func Allreduce[T Elem](c *comm.Comm, in, out []T, op Op) (err error) {
	// Before the call begins: every rank finds the same, and nobody is
	// left waiting (see call.settle).
	if err := checkOp[T](op); err != nil {
		return opError(coll.Allreduce, err)
	}
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Allreduce, 0, op.name, len(in)); err != nil {
		return err
	}
	defer k.settle(&err)
	if len(out) != len(in) {
		return k.errorf("%w: out holds %d elements, in %d", comm.ErrInvalidArg, len(out), len(in))
	}
	if err := checkApart(k, in, out); err != nil {
		return err
	}
	inPlace := sameVector(in, out)
	if k.onBoard(len(asBytes(in))) {
		return allreduceBoard(k, in, out, op)
	}
	if k.size == 2 && op.exactlyCommutative() && len(asBytes(out)) < allreducePairMax && !inPlace {
		return allreducePair(k, in, out, op)
	}
	pof2 := floorPow2(k.size)
	if op.commutative && k.size == pof2 && k.size > 1 && len(asBytes(out)) >= allreduceLargeMin && len(out) >= pof2 {
		// Reads in directly: the first halving step copies only the half
		// it keeps.
		return allreduceRabenseifner(k, in, out, op)
	}
	if !inPlace {
		copyElems(out, in)
	}
	if k.size == 1 {
		return nil
	}
	if k.size > 2 && k.size <= allreduceFlatMaxRanks && len(asBytes(out)) <= allreduceFlatMax {
		// Every rank sends to rank 0, which combines in rank order (any
		// op) and sends the result back to every rank.
		if err := reduceFlat(k, out, out, op, 0); err != nil {
			return err
		}
		return bcastFlat(k, asBytes(out), 0)
	}
	if !op.commutative {
		if err := Reduce(c, out, out, op, 0); err != nil {
			return err
		}
		return Bcast(c, out, 0)
	}
	if len(asBytes(out)) >= allreduceLargeMin && len(out) >= pof2 {
		return allreduceRabenseifner(k, out, out, op)
	}
	return allreduceRecursiveDoubling(k, out, op)
}

// allreducePair is Allreduce on 2 ranks of a vector below
// allreducePairMax, with an operator whose operands may swap (the predefined
// ones) and out apart from in: each rank sends in and receives the other's
// straight into out, which it combines with in. Recursive doubling copies
// in to out, receives into scratch and combines into out: the copy, the
// scratch and the layers cost 0.10-0.12 us of a 0.9 us call (2 ranks,
// 8 B; against a Sendrecv of the same bytes, 5 alternating runs). Both
// ranks compute their value op the other's, the same bits either way.
func allreducePair[T Elem](k *call, in, out []T, op Op) error {
	return swapCombine(k, in, out, in, op)
}

// swapCombine sends send to the other of 2 ranks, receives what it sends
// straight into out, and combines mine into that: out = theirs op mine,
// the same bits as mine op theirs for an operator whose operands may swap
// (op.exactlyCommutative). Neither scratch nor a copy.
func swapCombine[T Elem](k *call, send, out, mine []T, op Op) error {
	peer := 1 - k.rank
	if err := k.exchange(asBytes(send), peer, asBytes(out), peer); err != nil {
		return err
	}
	return k.fail(apply(op, out, mine))
}

// combine sets mine = lower op higher, where theirs came from the peer
// (peerLower says whether the peer's rank is the lower one); tmp holds
// theirs and may be overwritten.
func combine[T Elem](op Op, mine, theirs []T, peerLower bool) error {
	if !peerLower || op.exactlyCommutative() {
		return apply(op, mine, theirs)
	}
	if err := apply(op, theirs, mine); err != nil {
		return err
	}
	copyElems(mine, theirs)
	return nil
}

// reduceScatterHalving is the first half of Rabenseifner's algorithms:
// among the pof2 ranks that go on, each keeps half of the current window
// of blocks (off), sends the other half to its partner and combines what
// it receives, until it holds block newrank of the result in acc. The
// first step reads in (it may be acc), later ones acc; tmp is scratch of
// acc's length.
func reduceScatterHalving[T Elem](k *call, op Op, in, acc, tmp []T, off []int, newrank, pof2 int) error {
	rem := k.size - pof2
	lo, hi := 0, pof2
	src := in
	for d := pof2 / 2; d >= 1; d /= 2 {
		dst := realRank(newrank^d, rem)
		mid := (lo + hi) / 2
		keepLo, keepHi, sendLo, sendHi := lo, mid, mid, hi
		if newrank&d != 0 {
			keepLo, keepHi, sendLo, sendHi = mid, hi, lo, mid
		}
		kept := acc[off[keepLo]:off[keepHi]]
		mine := src[off[keepLo]:off[keepHi]]
		// First step, src apart from acc: with an op whose operands may
		// swap, the partner's half lands straight in acc and this rank's
		// half is added to it, where copying it into acc first cost a
		// memmove as long as the message (pprof: a fifth of a 64 KiB
		// Reduce on 2 ranks).
		apart := !sameVector(src, acc)
		direct := apart && op.exactlyCommutative()
		got := tmp[off[keepLo]:off[keepHi]]
		if direct {
			got = kept
		}
		if err := k.exchange(asBytes(src[off[sendLo]:off[sendHi]]), dst, asBytes(got), dst); err != nil {
			return err
		}
		var err error
		if direct {
			err = apply(op, kept, mine)
		} else {
			if apart {
				copyElems(kept, mine)
			}
			err = combine(op, kept, got, dst < k.rank)
		}
		if err != nil {
			return k.fail(err)
		}
		src = acc
		lo, hi = keepLo, keepHi
	}
	return nil
}

// foldIn folds ranks beyond the largest power of two into their
// neighbours: among the first 2*rem ranks, each even rank sends its vector
// to the odd rank above it and sits out. It returns the rank's number among
// the pof2 that go on, or -1.
func foldIn[T Elem](k *call, acc, tmp []T, op Op, pof2 int) (int, error) {
	rem := k.size - pof2
	if k.rank >= 2*rem {
		return k.rank - rem, nil
	}
	if k.rank%2 == 0 {
		return -1, k.fail(k.send(asBytes(acc), k.rank+1))
	}
	if err := k.recvExact(asBytes(tmp), k.rank-1); err != nil {
		return -1, err
	}
	// The lower rank's values on the left: acc = tmp op acc.
	if err := combine(op, acc, tmp, true); err != nil {
		return -1, k.fail(err)
	}
	return k.rank / 2, nil
}

// foldOut gives the folded-in even ranks the result.
func foldOut[T Elem](k *call, acc []T, pof2 int) error {
	rem := k.size - pof2
	if k.rank >= 2*rem {
		return nil
	}
	if k.rank%2 == 1 {
		return k.fail(k.send(asBytes(acc), k.rank-1))
	}
	return k.recvExact(asBytes(acc), k.rank+1)
}

// realRank maps a rank among the pof2 back to the communicator's rank.
func realRank(newrank, rem int) int {
	if newrank < rem {
		return newrank*2 + 1
	}
	return newrank + rem
}

func allreduceRecursiveDoubling[T Elem](k *call, acc []T, op Op) error {
	pof2 := floorPow2(k.size)
	rem := k.size - pof2
	tmp, release := scratch[T](len(acc))
	defer release.release()
	newrank, err := foldIn(k, acc, tmp, op, pof2)
	if err != nil {
		return err
	}
	if newrank >= 0 {
		for mask := 1; mask < pof2; mask <<= 1 {
			dst := realRank(newrank^mask, rem)
			if err := k.exchange(asBytes(acc), dst, asBytes(tmp), dst); err != nil {
				return err
			}
			// Both partners compute lower op higher, so both get the same bits.
			if err := combine(op, acc, tmp, dst < k.rank); err != nil {
				return k.fail(err)
			}
		}
	}
	return foldOut(k, acc, pof2)
}

// allreduceRabenseifner reduces in into acc (they may be the same; when
// they differ the ranks are a power of two and nothing was copied yet).
func allreduceRabenseifner[T Elem](k *call, in, acc []T, op Op) error {
	pof2 := floorPow2(k.size)
	rem := k.size - pof2
	tmp, release := scratch[T](len(acc))
	defer release.release()
	newrank, err := foldIn(k, acc, tmp, op, pof2)
	if err != nil {
		return err
	}
	if newrank >= 0 {
		off := blocks(len(acc), pof2)
		if err := reduceScatterHalving(k, op, in, acc, tmp, off, newrank, pof2); err != nil {
			return err
		}
		// Allgather by recursive doubling: windows grow back.
		for d := 1; d < pof2; d *= 2 {
			partner := newrank ^ d
			dst := realRank(partner, rem)
			myLo := newrank &^ (d - 1)
			pLo := partner &^ (d - 1)
			if err := k.exchange(asBytes(acc[off[myLo]:off[myLo+d]]), dst, asBytes(acc[off[pLo]:off[pLo+d]]), dst); err != nil {
				return err
			}
		}
	}
	return foldOut(k, acc, pof2)
}
