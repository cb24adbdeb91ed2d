package collectives

import (
	"slices"

	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// allgatherRingMin is the size of one rank's block (bytes) from which
// Allgather uses the ring: n-1 steps that each move one block per rank,
// the least data any algorithm moves. Below it, Bruck's algorithm needs
// only ceil(log2 n) steps.
var allgatherRingMin = 32 << 10

// Allgather collects every rank's send vector at every rank: recv holds
// Size()*len(send) elements in rank order. send may be the rank's own
// block of recv (in place).
//
// Algorithms: on a power of two ranks, while half of recv is at most
// 16 KiB, recursive doubling (as Open MPI's and MPICH's); otherwise Bruck
// et al., "Efficient algorithms for all-to-all communications in
// multiport message-passing systems" (1997), for short blocks, any rank
// count (on 3 and 4 ranks every block goes straight to every rank
// instead); a ring for long ones.
func Allgather[T Elem](c *comm.Comm, send, recv []T) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Allgather, 0, "", len(send)); err != nil {
		return err
	}
	defer k.settle(&err)
	blk := len(send)
	if len(recv) != blk*k.size {
		return k.errorf("%w: recv holds %d elements, %d ranks of %d need %d", comm.ErrInvalidArg, len(recv), k.size, blk, blk*k.size)
	}
	copyElems(recv[k.rank*blk:(k.rank+1)*blk], send)
	if k.size == 1 || blk == 0 {
		return nil
	}
	if k.onBoard(blk * elemSize[T]()) {
		return allgatherBoard(k, send, recv)
	}
	// On 2 ranks both algorithms are one exchange; the ring's receives
	// straight into recv, where Bruck's copies through scratch (8 B: 0.48
	// against 0.70 us, 4 interleaved runs of 20,000 calls).
	direct := k.size <= allgatherDirectMaxRanks && blk*elemSize[T]() <= allgatherDirectMax
	if !direct && blk*elemSize[T]() >= allgatherRingMin || k.size == 2 {
		return allgatherRing(k, send, recv, blk)
	}
	if k.size&(k.size-1) == 0 && k.size/2*blk*elemSize[T]() <= allgatherDoublingMax {
		return allgatherDoubling(k, send, recv, func(r int) int { return r * blk })
	}
	if direct {
		return allgatherDirect(k, send, recv, blk)
	}
	return allgatherBruck(k, recv, blk)
}

// allgatherDoublingMax bounds the last and largest message (half of recv,
// bytes) of recursive doubling, which Allgather takes on a power of two
// ranks below it.
var allgatherDoublingMax = 16 << 10

// allgatherDoubling is recursive doubling: in step s each rank exchanges
// the blocks its group of 2^s ranks holds with the partner group's (rank
// XOR 2^s), straight into recv; log2(n) exchanges. Rank r's block starts
// at off(r) and ends at off(r+1): blocks packed in rank order, so that a
// group's blocks are one stretch of recv.
func allgatherDoubling[T Elem](k *call, send, recv []T, off func(r int) int) error {
	for mask := 1; mask < k.size; mask <<= 1 {
		partner := k.rank ^ mask
		mine, theirs := k.rank&^(mask-1), partner&^(mask-1)
		out := recv[off(mine):off(mine+mask)]
		if mask == 1 {
			out = send
		}
		if err := k.exchange(asBytes(out), partner, asBytes(recv[off(theirs):off(theirs+mask)]), partner); err != nil {
			return err
		}
	}
	return nil
}

// allgatherDirectMaxRanks bounds the rank counts at which Allgather sends
// every block straight to every rank (short blocks): one round instead of
// Bruck's two on 3 and 4 ranks, so no rank waits for a partner to pass on
// a block. 4 ranks on 2 cores, 9 interleaved runs against Bruck's: 8 B
// 9.8 against 10.9 us, 2 KiB 10.9 against 13.1, 16 KiB 25.9 against 41.9.
//
// Long blocks up to allgatherDirectMax go direct too, rather than round
// the ring's n-1 steps, each of which waits on one neighbour (a switch to
// it, oversubscribed). 5 interleaved runs against the ring: 4 ranks
// 0.62-0.72 of its time at 32-256 KiB, 0.78-0.94 at 512 KiB-4 MiB; 3 ranks
// 0.57-0.97 at 16-512 KiB, but 1.10-1.13 at 1-2 MiB (7 runs), hence the bound.
var allgatherDirectMaxRanks, allgatherDirectMax = 4, 512 << 10

// allgatherDirect: every rank sends its block to every other and receives
// theirs straight into recv.
func allgatherDirect[T Elem](k *call, send, recv []T, blk int) error {
	return k.exchangeAll(
		func(from int) []byte { return asBytes(recv[from*blk : (from+1)*blk]) },
		func(int) []byte { return asBytes(send) })
}

// allgatherRing passes blocks around the ring. Its first step sends this
// rank's block from send, not from its copy in recv: a peer that reads the
// block (single copy) pulls the lines it reads into its cache, and this
// rank's next call, copying into recv again, then waited for each of
// those lines to be taken back (64 KiB blocks on 2 ranks: 20-58 us in
// that copy, against 3 us for the copy alone).
func allgatherRing[T Elem](k *call, send, recv []T, blk int) error {
	n := k.size
	right, left := (k.rank+1)%n, (k.rank-1+n)%n
	for s := 0; s < n-1; s++ {
		sb := (k.rank - s + n) % n
		rb := (k.rank - s - 1 + n) % n
		out := recv[sb*blk : (sb+1)*blk]
		if s == 0 {
			out = send
		}
		if err := k.exchange(asBytes(out), right, asBytes(recv[rb*blk:(rb+1)*blk]), left); err != nil {
			return err
		}
	}
	return nil
}

// allgatherBruck: tmp[i] holds the block of rank (rank+i) mod n. In step
// d = 1, 2, 4, ... a rank sends its first min(d, n-d) blocks to rank-d and
// appends those of rank+d.
func allgatherBruck[T Elem](k *call, recv []T, blk int) error {
	n := k.size
	tmp, release := scratch[T](n * blk)
	defer release.release()
	copyElems(tmp, recv[k.rank*blk:(k.rank+1)*blk])
	for d := 1; d < n; d *= 2 {
		cnt := min(d, n-d)
		to, from := (k.rank-d+n)%n, (k.rank+d)%n
		if err := k.exchange(asBytes(tmp[:cnt*blk]), to, asBytes(tmp[d*blk:(d+cnt)*blk]), from); err != nil {
			return err
		}
	}
	for i := 0; i < n; i++ {
		r := (k.rank + i) % n
		copyElems(recv[r*blk:(r+1)*blk], tmp[i*blk:(i+1)*blk])
	}
	return nil
}

// Allgatherv collects rank r's send vector (counts[r] elements) into every
// rank's recv at displs[r] (nil displs packs them in rank order).
//
// Algorithm: on a power of two ranks whose blocks lie packed in rank
// order, recursive doubling while each half of recv is at most 16 KiB,
// as in Allgather; on 3-4 ranks with blocks up to 512 KiB, every block
// straight to every rank, as in Allgather; else a ring, each step
// forwarding the block received last.
func Allgatherv[T Elem](c *comm.Comm, send, recv []T, counts, displs []int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Allgatherv, 0, "", 0); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkV("allgatherv", counts, displs, len(recv)); err != nil {
		return err
	}
	if counts[k.rank] != len(send) {
		return k.errorf("%w: this rank sends %d elements but counts[%d] = %d", comm.ErrInvalidArg, len(send), k.rank, counts[k.rank])
	}
	off := func(i int) int { return vOffset(counts, displs, i) }
	copyElems(recv[off(k.rank):off(k.rank)+counts[k.rank]], send)
	n := k.size
	if n > 2 && n&(n-1) == 0 {
		var offArr [17]int
		packed := packedOffsets(counts, &offArr)
		if (displs == nil || slices.Equal(displs, packed[:n])) && max(packed[n/2], packed[n]-packed[n/2])*elemSize[T]() <= allgatherDoublingMax {
			return allgatherDoubling(k, send, recv, func(r int) int { return packed[r] })
		}
	}
	if n > 2 && n <= allgatherDirectMaxRanks && slices.Max(counts)*elemSize[T]() <= allgatherDirectMax {
		return k.exchangeAll(
			func(from int) []byte { return asBytes(recv[off(from) : off(from)+counts[from]]) },
			func(int) []byte { return asBytes(send) })
	}
	right, left := (k.rank+1)%n, (k.rank-1+n)%n
	for s := 0; s < n-1; s++ {
		sb := (k.rank - s + n) % n
		rb := (k.rank - s - 1 + n) % n
		if err := k.exchange(asBytes(recv[off(sb):off(sb)+counts[sb]]), right, asBytes(recv[off(rb):off(rb)+counts[rb]]), left); err != nil {
			return err
		}
	}
	return nil
}
