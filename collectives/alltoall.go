package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Alltoall sends block r of every rank's send to rank r, which stores it
// as block (sender) of its recv; send and recv hold Size() blocks of equal
// length.
//
// Algorithms: blocks up to 512 B on 8 ranks or more take Bruck's
// algorithm, ceil(log2 n) steps; other blocks up to 256 KiB on 3 to 8
// ranks go straight to every rank at once (all receives posted, then all
// sends: one round, as Open MPI's linear algorithms on 3-7 ranks);
// otherwise pairwise exchange
// (Thakur, Rabenseifner and Gropp, 2005): in step s each rank exchanges
// with one partner (rank XOR s for a power of two, else rank+s and
// rank-s), so no rank is flooded.
func Alltoall[T Elem](c *comm.Comm, send, recv []T) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Alltoall, 0, "", len(send)); err != nil {
		return err
	}
	defer k.settle(&err)
	if len(send) != len(recv) || len(send)%k.size != 0 {
		return k.errorf("%w: send (%d) and recv (%d) must hold %d equal blocks", comm.ErrInvalidArg, len(send), len(recv), k.size)
	}
	if k.onBoard(len(asBytes(send))) {
		return alltoallBoard(k, send, recv) // send is on the board before recv changes
	}
	if sameVector(send, recv) {
		tmp, release := scratch[T](len(send))
		defer release.release()
		copyElems(tmp, send)
		send = tmp
	}
	blk := len(send) / k.size
	n := k.size
	if n >= alltoallBruckMinRanks && len(asBytes(send[:blk])) <= alltoallBruckMax {
		return alltoallBruck(k, send, recv, blk)
	}
	copyElems(recv[k.rank*blk:(k.rank+1)*blk], send[k.rank*blk:(k.rank+1)*blk])
	if n > 2 && n <= alltoallDirectMaxRanks && len(asBytes(send[:blk])) <= alltoallDirectMax {
		return alltoallDirect(k, send, recv, blk)
	}
	pow2 := n&(n-1) == 0
	for s := 1; s < n; s++ {
		to, from := (k.rank+s)%n, (k.rank-s+n)%n
		if pow2 {
			to, from = k.rank^s, k.rank^s
		}
		if err := k.exchange(asBytes(send[to*blk:(to+1)*blk]), to, asBytes(recv[from*blk:(from+1)*blk]), from); err != nil {
			return err
		}
	}
	return nil
}

// Alltoall blocks (bytes, at most) and rank counts that take the direct
// algorithm. Pairwise exchange makes n-1 rounds, each waiting for one
// partner; oversubscribed, each wait costs a switch to that partner (4
// ranks on 2 cores, 8 B blocks, 7 interleaved runs: see BENCHMARKS.md).
// Blocks up to 2 KiB took it before; against pairwise, 5 interleaved
// runs: 4 ranks 0.63-0.95 of its time at 4-256 KiB, 3 ranks 0.82-0.94 at
// 4-64 KiB and even at 128-256 KiB; from 512 KiB neither leads (1.01-1.06).
var alltoallDirectMax, alltoallDirectMaxRanks = 256 << 10, 8

// alltoallBruckMax and alltoallBruckMinRanks bound the blocks (bytes)
// and rank counts for which Alltoall takes Bruck's algorithm (as MPICH
// does from 8 ranks, up to 256 B). Against the direct algorithm, on 2
// cores (5 interleaved runs each): 8 ranks 0.52-0.81 of its time at
// 1-512 B, 0.94-0.97 at 1-2 KiB, 1.27x at 4 KiB; 6 ranks 0.83-1.05 at
// 1-256 B; 4 ranks 1.0-1.3x (7 runs). From 9 ranks on it replaces
// pairwise exchange's n-1 steps with ceil(log2 n).
var alltoallBruckMax, alltoallBruckMinRanks = 512, 8

// alltoallBruck is Bruck's algorithm (Bruck et al., 1997): the blocks,
// rotated so that block i is for rank+i, travel in ceil(log2 n) steps;
// in step s a rank sends rank+2^s every block whose index has bit s set,
// packed, and receives as many from rank-2^s into the same places. A
// block reaches its rank after the steps of its index's bits. Each rank
// makes log2(n) exchanges of n/2 blocks where the direct algorithm sends
// and receives n-1 messages.
func alltoallBruck[T Elem](k *call, send, recv []T, blk int) error {
	n := k.size
	tmp, releaseTmp := scratch[T](n * blk)
	defer releaseTmp.release()
	// At most n/2 of the indexes below n have any one bit set.
	pack, releasePack := scratch[T](2 * (n / 2) * blk)
	defer releasePack.release()
	out, in := pack[:(n/2)*blk], pack[(n/2)*blk:]
	for i := 0; i < n; i++ {
		r := (k.rank + i) % n
		copyElems(tmp[i*blk:(i+1)*blk], send[r*blk:(r+1)*blk])
	}
	for step := 1; step < n; step <<= 1 {
		m := 0
		for i := step; i < n; i++ {
			if i&step != 0 {
				copyElems(out[m*blk:(m+1)*blk], tmp[i*blk:(i+1)*blk])
				m++
			}
		}
		to, from := (k.rank+step)%n, (k.rank-step+n)%n
		if err := k.exchange(asBytes(out[:m*blk]), to, asBytes(in[:m*blk]), from); err != nil {
			return err
		}
		m = 0
		for i := step; i < n; i++ {
			if i&step != 0 {
				copyElems(tmp[i*blk:(i+1)*blk], in[m*blk:(m+1)*blk])
				m++
			}
		}
	}
	// Block i now holds what rank-i sent this rank.
	for i := 0; i < n; i++ {
		r := (k.rank - i + n) % n
		copyElems(recv[r*blk:(r+1)*blk], tmp[i*blk:(i+1)*blk])
	}
	return nil
}

// alltoallDirect receives every other rank's block for this rank and
// sends every other rank its block, all at once.
func alltoallDirect[T Elem](k *call, send, recv []T, blk int) error {
	return k.exchangeAll(
		func(from int) []byte { return asBytes(recv[from*blk : (from+1)*blk]) },
		func(to int) []byte { return asBytes(send[to*blk : (to+1)*blk]) })
}

// Alltoallv sends sendCounts[r] elements at sendDispls[r] of send to rank
// r, and receives recvCounts[r] elements from rank r at recvDispls[r] of
// recv. Nil displacements pack the blocks in rank order.
//
// Algorithm: on 3 to 8 ranks every block straight to its rank at once, as
// in Alltoall; otherwise pairwise exchange.
func Alltoallv[T Elem](c *comm.Comm, send []T, sendCounts, sendDispls []int, recv []T, recvCounts, recvDispls []int) (err error) {
	var kv call
	k := &kv
	if err := start[T](k, c, coll.Alltoallv, 0, "", 0); err != nil {
		return err
	}
	defer k.settle(&err)
	if err := k.checkV("alltoallv send", sendCounts, sendDispls, len(send)); err != nil {
		return err
	}
	if err := k.checkV("alltoallv recv", recvCounts, recvDispls, len(recv)); err != nil {
		return err
	}
	n := k.size
	so := func(i int) []T { o := vOffset(sendCounts, sendDispls, i); return send[o : o+sendCounts[i]] }
	ro := func(i int) []T { o := vOffset(recvCounts, recvDispls, i); return recv[o : o+recvCounts[i]] }
	if len(so(k.rank)) != len(ro(k.rank)) {
		return k.errorf("%w: this rank sends itself %d elements but expects %d", comm.ErrInvalidArg, len(so(k.rank)), len(ro(k.rank)))
	}
	copyElems(ro(k.rank), so(k.rank))
	if n > 2 && n <= alltoallDirectMaxRanks {
		// No bound on the sizes, which differ from rank to rank: every
		// rank must choose alike (see Alltoall's bound: above it neither
		// algorithm leads).
		return k.exchangeAll(
			func(from int) []byte { return asBytes(ro(from)) },
			func(to int) []byte { return asBytes(so(to)) })
	}
	for s := 1; s < n; s++ {
		to, from := (k.rank+s)%n, (k.rank-s+n)%n
		if err := k.exchange(asBytes(so(to)), to, asBytes(ro(from)), from); err != nil {
			return err
		}
	}
	return nil
}
