package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Alltoall sends block r of every rank's send to rank r, which stores it
// as block (sender) of its recv; send and recv hold Size() blocks of equal
// length.
//
// Algorithms: blocks up to 256 KiB on 3 to 8 ranks go straight to every
// rank at once (all receives posted, then all sends: one round, as Open
// MPI's linear algorithms on 3-7 ranks); otherwise pairwise exchange
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
	if sameVector(send, recv) {
		tmp, release := scratch[T](len(send))
		defer release.release()
		copyElems(tmp, send)
		send = tmp
	}
	blk := len(send) / k.size
	n := k.size
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
