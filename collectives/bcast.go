package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// bcastScatterMin is the size from which Bcast switches from the binomial
// tree to scatter + allgather, when there are more than two ranks. Chosen
// from "bench bcast" runs with 4 ranks (BENCHMARKS.md); the tree sends the
// whole vector log2(n) times along its deepest path, scatter + allgather
// about twice, so the switch pays once transfers dominate latency.
var bcastScatterMin = 256 << 10

// Bcast sends root's xs to every rank's xs. Every rank passes a vector of
// the same length.
//
// Algorithms: on up to 8 ranks, while the root's sends come to at most
// 48 KiB in all (16 KiB each on 4 ranks), the root sends to every rank;
// so it does at any size when all ranks share a host whose shared memory
// moves the vector by single copy (every rank reads it straight out of
// the root's memory, at once: 4 ranks on 2 cores, 32 KiB to 1 MiB, 0.32-0.66
// of the time of the tree below, 3 interleaved runs);
// otherwise a binomial tree (as MPICH) for short vectors, and for long
// ones on more than two ranks a binomial scatter of blocks followed by a
// ring allgather (van de Geijn; Thakur, Rabenseifner and Gropp, "Optimization of
// collective communication operations in MPICH", 2005).
func Bcast[T Elem](c *comm.Comm, xs []T, root int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Bcast, root, "", len(xs)); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkRoot(root); err != nil {
		return err
	}
	if k.size == 1 {
		return nil
	}
	b := asBytes(xs)
	if k.size <= rootedFlatMaxRanks && ((k.size-1)*len(b) <= bcastFlatMax || k.readsOnHost(len(b))) {
		return bcastFlat(k, b, root)
	}
	if len(b) >= bcastScatterMin && k.size > 2 && len(xs) >= k.size {
		return bcastScatterAllgather(k, xs, root)
	}
	return bcastBinomial(k, b, root)
}

// bcastFlatMax bounds what the root of a Bcast on a few ranks
// (rootedFlatMaxRanks) sends in all when it sends to every rank itself:
// eager messages that leave at once, where the tree's inner ranks relay.
// 16 KiB to each of 3 ranks was measured (4 ranks on 2 cores); on 8
// ranks the bound keeps the root's serial copies (7 where the tree makes
// 3) to about 7 KiB each.
var bcastFlatMax = 48 << 10

// bcastFlat: the root sends b to every other rank.
func bcastFlat(k *call, b []byte, root int) error {
	if k.rank != root {
		return k.recvExact(b, root)
	}
	if k.size == 2 || len(b) <= sendInTurnMax {
		// One peer, or short messages: blocking sends (sendInTurnMax).
		return k.sendInTurn(root, func(r int) []byte { return b })
	}
	var arr [8]*comm.Request
	reqs := arr[:0]
	for s := 1; s < k.size; s++ {
		reqs = append(reqs, k.isend(b, (root+s)%k.size))
	}
	return k.waitAll(reqs)
}

// bcastBinomial: rank vr (relative to root) receives from vr minus its
// lowest set bit, then sends to vr+2^j for the bits below it.
func bcastBinomial(k *call, b []byte, root int) error {
	n := k.size
	vr := (k.rank - root + n) % n
	mask := 1
	for mask < n {
		if vr&mask != 0 {
			if err := k.recvExact(b, (vr-mask+root)%n); err != nil {
				return err
			}
			break
		}
		mask <<= 1
	}
	// The sends to the children are posted together: a message that the
	// child reads out of this rank's memory (a rendezvous) would otherwise
	// wait for the child before the next child's could start.
	var arr [8]*comm.Request
	reqs := arr[:0]
	for mask >>= 1; mask > 0; mask >>= 1 {
		if vr+mask < n {
			reqs = append(reqs, k.isend(b, (vr+mask+root)%n))
		}
	}
	return k.waitAll(reqs)
}

// blocks splits count elements into n nearly equal blocks: block i is
// [off[i], off[i+1]).
func blocks(count, n int) []int {
	off := make([]int, n+1)
	q, r := count/n, count%n
	for i := 0; i < n; i++ {
		sz := q
		if i < r {
			sz++
		}
		off[i+1] = off[i] + sz
	}
	return off
}

// bcastScatterAllgather scatters blocks of xs down a binomial tree (each
// rank ends up with its own block, relative to root) and then circulates
// the blocks around a ring.
func bcastScatterAllgather[T Elem](k *call, xs []T, root int) error {
	n := k.size
	vr := (k.rank - root + n) % n
	off := blocks(len(xs), n)
	esz := elemSize[T]()
	b := asBytes(xs)
	span := func(lo, hi int) []byte { // blocks [lo, hi) of relative ranks
		hi = min(hi, n)
		if lo >= hi {
			return nil
		}
		return b[off[lo]*esz : off[hi]*esz]
	}
	// Scatter: a rank receives the blocks of its subtree from its parent.
	mask := 1
	for mask < n {
		if vr&mask != 0 {
			if err := k.recvExact(span(vr, vr+mask), (vr-mask+root)%n); err != nil {
				return err
			}
			break
		}
		mask <<= 1
	}
	for mask >>= 1; mask > 0; mask >>= 1 {
		if vr+mask < n {
			if err := k.send(span(vr+mask, vr+2*mask), (vr+mask+root)%n); err != nil {
				return k.fail(err)
			}
		}
	}
	// Ring allgather of the blocks, in relative ranks.
	right, left := (vr+1)%n, (vr-1+n)%n
	for s := 0; s < n-1; s++ {
		sendBlk := (vr - s + n) % n
		recvBlk := (vr - s - 1 + n) % n
		if err := k.exchange(span(sendBlk, sendBlk+1), (right+root)%n, span(recvBlk, recvBlk+1), (left+root)%n); err != nil {
			return err
		}
	}
	return nil
}
