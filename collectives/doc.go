// Package collectives implements MPI's collective operations as generic
// functions over a communicator:
//
//	collectives.Barrier(world)
//	collectives.Bcast(world, xs, root)
//	collectives.Reduce(world, in, out, collectives.Sum, root)
//	collectives.Allreduce(world, in, out, collectives.Sum)
//	collectives.Gather, Scatter, Allgather, Alltoall (and v-variants),
//	ReduceScatter, Scan, Exscan; Iallreduce, Ibcast, Ibarrier
//
// Every rank of the communicator must call the same collectives in the
// same order, with matching arguments; mismatches that can be detected
// (different counts, different roots) are reported as errors, never as
// silent corruption.
//
// Collectives are built on comm's point-to-point operations, on the
// communicator's collective view (comm.Comm.CollectiveView), a context of
// their own, so their messages never match the program's. Each algorithm
// names the paper it comes from; the size thresholds between algorithms
// cite the bench run that chose them.
//
// Reductions give bit-identical results on every rank: each rank combines
// the same values in the same order (floating-point sums are not
// associative, so this is a property of the algorithms, not of the
// arithmetic). Non-commutative operators are applied in rank order.
//
// Collectives never log and never start goroutines.
package collectives
