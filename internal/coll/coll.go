// Package coll is what packages comm and collectives share about
// collective operations: their kinds and names, the check word every
// collective message carries, and the bridge through which collectives
// reaches comm's internals.
//
// The check word. Every message of a collective call carries, in its
// frame header, a signature of the call: the kind of collective in the
// top 8 bits and a hash of the arguments every rank must give alike (the
// root, the operator, the element size, the count) in the low 24. The
// receiving rank compares it with its own call's when the message
// matches, so ranks that disagree on the collective or its arguments get
// an error naming both sides instead of a wrong answer, for the price of
// one comparison.
//
// The bridge. Package collectives must send on a communicator's
// collective context with a tag and a check word, and recycle its own
// requests, none of which programs should see in comm's documentation.
// comm therefore sets the functions in Bridge when it is initialized (the
// way grpc's internal package connects its packages), and collectives
// calls them. Values cross as any: a *comm.Comm or a *comm.Request.
package coll

import "fmt"

// Kind is a kind of collective operation.
type Kind uint8

// The kinds. A nonblocking collective's kind is its blocking form's with
// the Nonblocking bit: as MPI says, an Iallreduce does not match an
// Allreduce (their algorithms differ), and a program that mixes them gets
// a mismatch error.
const (
	Barrier Kind = 1 + iota
	Bcast
	Reduce
	Allreduce
	Gather
	Gatherv
	Scatter
	Scatterv
	Allgather
	Allgatherv
	Alltoall
	Alltoallv
	ReduceScatter
	ReduceScatterBlock
	Scan
	Exscan
	NeighborAllgather
	NeighborAlltoall
	kindEnd

	// Nonblocking marks the nonblocking form of a kind.
	Nonblocking Kind = 0x80
)

var names = [...]string{Barrier: "barrier", Bcast: "bcast", Reduce: "reduce", Allreduce: "allreduce",
	Gather: "gather", Gatherv: "gatherv", Scatter: "scatter", Scatterv: "scatterv", Allgather: "allgather",
	Allgatherv: "allgatherv", Alltoall: "alltoall", Alltoallv: "alltoallv", ReduceScatter: "reduce_scatter",
	ReduceScatterBlock: "reduce_scatter_block", Scan: "scan", Exscan: "exscan",
	NeighborAllgather: "neighbor_allgather", NeighborAlltoall: "neighbor_alltoall"}

func (k Kind) String() string {
	prefix := ""
	if k&Nonblocking != 0 {
		prefix, k = "i", k&^Nonblocking
	}
	if k > 0 && k < kindEnd {
		return prefix + names[k]
	}
	return fmt.Sprintf("collective kind %d", uint8(k))
}

// Args are the arguments of a collective call that every rank must give
// alike. A field that does not apply is zero.
type Args struct {
	Root     int    // the root, for rooted collectives
	Op       string // the reduction operator's name
	ElemSize int    // bytes per element
	Count    int    // elements, for collectives whose ranks all pass the same count
	Counts   uint64 // CountsDigest of the blocks' counts, for ReduceScatter, whose ranks all pass the same ones
}

// CountsDigest mixes counts into one word for Args.Counts. A slice in
// Args would escape through Bridge.Begin, and with it a caller's counts
// made on the stack (ReduceScatterBlock's, each call).
func CountsDigest(counts []int) uint64 {
	const m = 0x9e3779b97f4a7c15
	h := (uint64(len(counts)) ^ 0xbb67ae8584caa73b) * m
	for _, c := range counts {
		h = (h ^ uint64(c)) * m
	}
	return h
}

// Check returns the check word of a call of kind k with args: the kind,
// and 24 bits of a hash of the arguments. It runs for every collective
// call, so it mixes whole words (a multiply each) rather than bytes: the
// byte-wise FNV hash it replaced was half of a call's setup at 2 ranks.
func Check(k Kind, a Args) uint32 {
	const m = 0x9e3779b97f4a7c15 // 2^64 / golden ratio, odd
	h := (uint64(a.Root) ^ 0x6a09e667f3bcc908) * m
	h = (h ^ uint64(a.ElemSize)) * m
	h = (h ^ uint64(a.Count)) * m
	for i := 0; i < len(a.Op); i++ {
		h = (h ^ uint64(a.Op[i])) * m
	}
	h = (h ^ a.Counts) * m
	h ^= h >> 32
	return uint32(k)<<24 | uint32(h)&0xffffff
}

// KindOf returns the kind a check word names.
func KindOf(check uint32) Kind { return Kind(check >> 24) }

// Mismatch explains a message whose check word differs from the call's:
// got is the sender's, want this rank's.
func Mismatch(peer int, got, want uint32) string {
	gk, wk := KindOf(got), KindOf(want)
	if gk != wk {
		return fmt.Sprintf("rank %d called %v where this rank called %v: ranks must call the same collectives in the same order", peer, gk, wk)
	}
	return fmt.Sprintf("rank %d called %v with other arguments than this rank (the root, the operator, the element type, the count or the counts differ)", peer, gk)
}

// A Call is one collective operation in progress: the collective view of
// its communicator, and the tag and check word of its messages.
type Call struct {
	View  any // comm's *Comm: the communicator's collective view
	Tag   int
	Check uint32
}

// Bridge holds the functions package comm provides to package collectives.
// comm sets them in its init; nothing else may.
var Bridge struct {
	// Begin starts a collective call of kind k on communicator c (a
	// *comm.Comm): it takes the next sequence number of c's collectives,
	// and returns the fields of the call's Call, and this rank's rank and
	// the view's size. Not a Call: the results travel in registers, where
	// a struct returned through a function value is built in memory and
	// copied, frame to frame.
	Begin func(c any, k Kind, a Args) (view any, rank, size, tag int, check uint32, err error)
	// Send, Recv and Sendrecv are the blocking point-to-point operations
	// of a call; Recv and Sendrecv return the bytes received.
	Send func(k Call, buf []byte, dest int) error
	// SendRead is Send of a message that the receiver reads out of buf
	// where the transport lets it (ReadsAbove), whatever its size, and
	// returns once the receiver has the data. Above the eager limit Send
	// does the same; at or below it Send would copy through the ring.
	SendRead func(k Call, buf []byte, dest int) error
	Recv     func(k Call, buf []byte, src int) (int, error)
	Sendrecv func(k Call, sbuf []byte, dest int, rbuf []byte, src int) (int, error)
	// Isend and Irecv start a call's nonblocking operations; they return a
	// *comm.Request that the call must give back with Free once complete.
	Isend func(k Call, buf []byte, dest int) any
	Irecv func(k Call, buf []byte, src int) any
	Free  func(r any)
	// Generic returns the *comm.Request a program holds for a nonblocking
	// collective, which completes when poll reports done. poll is called
	// by whichever goroutine waits or tests, one call at a time.
	Generic func(k *Call, poll func() (bool, error)) any
	// Failed returns a *comm.Request that has completed with err.
	Failed func(err error) any
	// Abandon reports that the call failed on this rank with err: comm
	// tells the other members, whose operations of the call then fail too
	// instead of waiting for this rank forever, and the communicator's
	// collectives become unusable.
	Abandon func(k Call, err error)
	// ReadsAbove returns the size above which messages between the
	// call's ranks move by single copy (the receiver reads them out of the
	// sender's memory: transport.Caps.ReadFirst), all of them on this
	// rank's host: the eager limit of its shared memory, below which a
	// message is copied through a ring and its send completes at once. It
	// returns -1 where some rank is elsewhere or never reads. Every member
	// gets the same answer, so algorithms may be chosen by it.
	ReadsAbove func(k Call) int
	// Board reports whether call k may take the shared-memory board: its
	// communicator is the world, all of whose ranks share one host's
	// memory. Every member gets the same answer.
	Board func(k Call) bool
	// BoardExchange posts data (at most BoardMax bytes) as this rank's
	// part of call k on the board, and waits until every rank has posted
	// its part; a rank that called another collective, or this one with
	// other arguments, makes it fail with ErrMismatch.
	BoardExchange func(k Call, data []byte) error
	// BoardBarrier is a barrier on the board: an exchange of nothing
	// where ranks have cores of their own, a release by rank 0, which
	// leaves first, where they share them.
	BoardBarrier func(k Call) error
	// BoardPart returns rank r's part of the call that made the last
	// BoardExchange on this rank (BoardMax bytes, of which r's data is
	// the first), to read in place until this rank's next collective
	// call.
	BoardPart func(k Call, r int) []byte
}

// BoardMax is the most bytes a rank posts on the board in one call.
const BoardMax = 1024
