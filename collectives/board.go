package collectives

import "github.com/parley-hpc/parley/internal/coll"

// The board: on a world whose ranks all share one host's memory, Barrier,
// and Allreduce, Allgather, Alltoall and ReduceScatter (ReduceScatterBlock)
// whose ranks post up to boardMax bytes each, post each rank's part in
// shared memory and read every other rank's where it lies, once all have
// posted (comm's board.go has the protocol): one step, where messages take
// log2(n) rounds, or two through a root. Every rank waits for every
// other's part, which is what lets comm tell a rank that called another
// collective; the rooted collectives (Bcast, Reduce, Gather, Scatter),
// whose ranks wait only for the root or only for the leaves, and
// Allgatherv, whose counts the check word does not cover, keep their
// messages.
//
// On 2 ranks too, where messages take one exchange: posting and reading
// in place costs less than a message's way through a ring, whose frame
// the receiver copies out and hands to matching (7 interleaved runs, 2
// ranks on 2 cores: Barrier 0.40 against 0.67 us, Allgather of 4-256 B
// 0.57-0.84 against 0.83-1.04, Allreduce of 8-512 B 0.84-1.18 against
// 0.95-1.32).
var boardMax, boardMinRanks = coll.BoardMax, 2

// onBoard reports whether call k takes the board for parts of n bytes.
// Every rank gets the same answer: the sizes are arguments all pass alike
// (their check words say so), and coll.Bridge.Board answers alike.
func (k *call) onBoard(n int) bool {
	return k.size >= boardMinRanks && n <= boardMax && coll.Bridge.Board(k.k)
}

// boardExchange posts data as this rank's part of the call and waits for
// every rank's.
func (k *call) boardExchange(data []byte) error { return coll.Bridge.BoardExchange(k.k, data) }

// boardPart returns rank r's part of the last boardExchange, n elements
// of T, to read in place.
func boardPart[T Elem](k *call, r, n int) []T {
	return elemsOf[T](coll.Bridge.BoardPart(k.k, r), n)
}

// allreduceBoard combines the ranks' parts in rank order, on every rank
// alike: the same bits everywhere, for any operator.
func allreduceBoard[T Elem](k *call, in, out []T, op Op) error {
	if err := k.boardExchange(asBytes(in)); err != nil {
		return err
	}
	n := len(in)
	copyElems(out, boardPart[T](k, 0, n))
	for r := 1; r < k.size; r++ {
		if err := apply(op, out, boardPart[T](k, r, n)); err != nil {
			return k.fail(err)
		}
	}
	return nil
}

// allgatherBoard copies every rank's part into recv.
func allgatherBoard[T Elem](k *call, send, recv []T) error {
	if err := k.boardExchange(asBytes(send)); err != nil {
		return err
	}
	blk := len(send)
	for r := 0; r < k.size; r++ {
		if r != k.rank {
			copyElems(recv[r*blk:(r+1)*blk], boardPart[T](k, r, blk))
		}
	}
	return nil
}

// alltoallBoard posts the whole of send and takes block rank of every
// rank's part.
func alltoallBoard[T Elem](k *call, send, recv []T) error {
	if err := k.boardExchange(asBytes(send)); err != nil {
		return err
	}
	blk := len(send) / k.size
	lo, hi := k.rank*blk, (k.rank+1)*blk
	for r := 0; r < k.size; r++ {
		copyElems(recv[r*blk:(r+1)*blk], boardPart[T](k, r, hi)[lo:hi])
	}
	return nil
}

// reduceScatterBoard posts the whole of in and combines this rank's block
// of every rank's part, in rank order (any operator).
func reduceScatterBoard[T Elem](k *call, in, out []T, counts []int, op Op) error {
	if err := k.boardExchange(asBytes(in)); err != nil {
		return err
	}
	lo := vOffset(counts, nil, k.rank)
	hi := lo + counts[k.rank]
	copyElems(out, boardPart[T](k, 0, hi)[lo:hi])
	for r := 1; r < k.size; r++ {
		if err := apply(op, out, boardPart[T](k, r, hi)[lo:hi]); err != nil {
			return k.fail(err)
		}
	}
	return nil
}
