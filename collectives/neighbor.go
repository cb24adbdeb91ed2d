package collectives

import (
	"github.com/parley-hpc/parley/comm"
	"github.com/parley-hpc/parley/internal/coll"
)

// Neighbourhood collectives on a Cartesian grid (MPI_Neighbor_allgather,
// MPI_Neighbor_alltoall): each rank exchanges with its 2*len(Dims())
// neighbours, in the order of Cart.Neighbors (for each dimension, the rank
// below, then the rank above). Blocks for ProcNull neighbours (past an
// open edge) are neither sent nor received: they are left as they were.
//
// Algorithm: for each dimension, two phases: every rank sends upward and
// receives from below, then sends downward and receives from above. A
// periodic dimension of size 1 or 2 makes both neighbours the same rank;
// the phases keep its two blocks apart (messages between a pair arrive in
// the order sent), which one round of all messages would not.

// NeighborAllgather sends send to every neighbour and receives theirs:
// recv holds one block of len(send) elements per neighbour.
func NeighborAllgather[T Elem](g *comm.Cart, send, recv []T) (err error) {
	if g == nil {
		return opError(coll.NeighborAllgather, comm.ErrCommNull)
	}
	var kv call
	k := &kv
	if err := start[T](k, g.Comm, coll.NeighborAllgather, 0, "", len(send)); err != nil {
		return err
	}
	defer k.settle(&err)
	nb, blk := g.Neighbors(), len(send)
	if len(recv) != len(nb)*blk {
		return k.errorf("%w: recv holds %d elements, %d neighbours of %d need %d", comm.ErrInvalidArg, len(recv), len(nb), blk, len(nb)*blk)
	}
	return k.neighbors(nb, func(i int) []byte { return asBytes(send) }, func(i int) []byte { return asBytes(recv[i*blk : (i+1)*blk]) })
}

// NeighborAlltoall sends block i of send to neighbour i and receives
// neighbour i's block for this rank into block i of recv; send and recv
// hold one block per neighbour, all of the same length.
func NeighborAlltoall[T Elem](g *comm.Cart, send, recv []T) (err error) {
	if g == nil {
		return opError(coll.NeighborAlltoall, comm.ErrCommNull)
	}
	nb := g.Neighbors()
	var kv call
	k := &kv
	if err := start[T](k, g.Comm, coll.NeighborAlltoall, 0, "", len(send)); err != nil {
		return err
	}
	defer k.settle(&err)
	if len(send) != len(recv) || len(send)%len(nb) != 0 {
		return k.errorf("%w: send (%d) and recv (%d) must hold %d equal blocks", comm.ErrInvalidArg, len(send), len(recv), len(nb))
	}
	blk := len(send) / len(nb)
	return k.neighbors(nb, func(i int) []byte { return asBytes(send[i*blk : (i+1)*blk]) }, func(i int) []byte { return asBytes(recv[i*blk : (i+1)*blk]) })
}

// neighbors runs the phases: block sendBlock(i) goes to neighbour i,
// block recvBlock(i) comes from neighbour i.
func (k *call) neighbors(nb []int, sendBlock, recvBlock func(i int) []byte) error {
	for d := 0; 2*d < len(nb); d++ {
		below, above := nb[2*d], nb[2*d+1]
		// Upward: to the rank above, what is meant for it (block 2d+1);
		// from the rank below, into its block (2d).
		if err := k.exchangeNull(sendBlock(2*d+1), above, recvBlock(2*d), below); err != nil {
			return err
		}
		if err := k.exchangeNull(sendBlock(2*d), below, recvBlock(2*d+1), above); err != nil {
			return err
		}
	}
	return nil
}

// exchangeNull is exchange where either side may be ProcNull (skipped).
func (k *call) exchangeNull(send []byte, to int, recv []byte, from int) error {
	switch {
	case to == comm.ProcNull && from == comm.ProcNull:
		return nil
	case to == comm.ProcNull:
		return k.recvExact(recv, from)
	case from == comm.ProcNull:
		return k.fail(k.send(send, to))
	}
	return k.exchange(send, to, recv, from)
}
