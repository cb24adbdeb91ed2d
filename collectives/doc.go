// Package collectives implements MPI's collective operations as generic
// functions over a communicator: Barrier, Bcast, Reduce, Allreduce,
// Gather, Scatter, Allgather, Alltoall (and their v-variants),
// ReduceScatter, ReduceScatterBlock, Scan, Exscan, and NeighborAllgather
// and NeighborAlltoall on a comm.Cart. The Allreduce and UserOp examples
// show the calls.
//
// Every collective also has a nonblocking form (Ibarrier, Ibcast, Ireduce,
// Iallreduce, Igather, Igatherv, Iscatter, Iscatterv, Iallgather,
// Iallgatherv, Ialltoall, Ialltoallv, IreduceScatter, Iscan, Iexscan) that
// returns a *comm.Request; its buffers belong to the request until it
// completes, and it advances when the program waits for or tests it.
//
// Element types: any fixed-size type without pointers (numbers, bool, and
// arrays and structs of them), checked once per type before anything is
// sent. The predefined operators apply to numbers; UserOp makes one for
// any type, and is called on whole elements only.
//
// Every rank of the communicator must call the same collectives in the
// same order, with matching arguments. What happens when they do not:
//
//   - Every message of a collective carries a check word: the kind of
//     collective, and a hash of the root, the operator, the element size
//     and (where every rank passes the same one) the count, and
//     ReduceScatter's counts, which every rank passes alike. A rank that
//     receives a message from a rank whose call differs fails with
//     comm.ErrMismatch, naming both calls; so does a rank that receives
//     more or fewer bytes than its call expects, and one that waits in a
//     call when a message of that call arrives with another check word,
//     from whichever rank (ranks whose counts differ can take different
//     algorithms, and each wait for a message the others never send).
//   - On the shared-memory board (below), each rank posts the check word
//     of every collective call on the world as it begins, and a rank
//     waiting there for a part fails with comm.ErrMismatch when a rank
//     posted another call, or went past this one without posting.
//   - A rank whose collective fails, for that or any reason, tells the
//     other ranks of the communicator: their pending collective operations
//     on it fail at once, naming that rank (comm.ErrRevoked, and
//     comm.ErrMismatch when a mismatch was the cause), and so do their
//     later collectives on it. Nobody waits forever for a rank that gave
//     up, and the communicator's collectives stay unusable (its
//     point-to-point operations still work).
//   - Not caught at once: a rank that only sends (the root of Bcast or
//     Scatter; every rank of a Bcast whose ranks each name themselves
//     root) returns without error. The messages no rank took are found by
//     the next collective on the communicator (the one after, if they are
//     still in flight), or by Finalize, which fail with comm.ErrMismatch.
//   - Not caught at all: ranks whose wrong views make them all wait for
//     one another (a Reduce where each of two ranks believes it is the
//     root) wait. mpirun --timeout then reports them as a cycle of ranks
//     blocked in that collective. Two different user operators are not
//     told apart.
//
// Collectives are built on comm's point-to-point operations, on a context
// of their own (the communicator's collective context), so their messages
// never match the program's; package comm gives them their tags, check
// words and recycled requests through an internal bridge (internal/coll).
// The exception is the board: on the world communicator, when every rank
// is on one host with shared memory, Barrier, and Allreduce, Allgather,
// Alltoall and ReduceScatter whose ranks contribute at most 1 KiB each,
// post each rank's part in its shared-memory segment and read the others'
// in place, with no message (board.go).
// Each algorithm names the paper it comes from; the size thresholds
// between algorithms cite the bench run that chose them.
//
// Reductions give bit-identical results on every rank: each rank combines
// the same values in the same order (floating-point sums are not
// associative, so this is a property of the algorithms, not of the
// arithmetic). Non-commutative operators are applied in rank order.
//
// Collectives never log and never start goroutines.
package collectives
