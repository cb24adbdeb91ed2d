// Command bench measures parley the way HPC people measure MPI: with the
// method of the OSU micro-benchmarks.
//
//	mpirun -np 2 bench latency             # ping-pong, latency = RTT/2
//	mpirun -np 2 bench bw                  # window of 64 persistent sends (Startall), then an ack
//	mpirun -np 2 bench bibw                # both directions at once
//	mpirun -np 4 bench mbw_mr              # pairs i <-> i+n/2: bandwidth and message rate
//	mpirun -np 4 bench multi_lat           # latency of all pairs at once
//	mpirun -np 8 bench allreduce           # and reduce, bcast, barrier, gather, scatter,
//	                                       # allgather, alltoall, reduce_scatter,
//	                                       # allgatherv, alltoallv (equal counts)
//	bench compare -np 2 latency            # ours against Open MPI and MPICH, interleaved
//
// Options as OSU's: -m MIN:MAX sizes, -i iterations, -x warm-up
// iterations, -W window, -c to validate received data; --transport shm|tcp
// to force a transport; --json FILE and --svg FILE to save results. The
// table goes to stdout; a progress line to stderr when a run is long.
//
// Collectives are timed call by call with a barrier between calls, and the
// latency reported is the mean over ranks (with min and max). Allreduce,
// reduce and reduce_scatter reduce float32 with Sum.
//
// The C reference in bench/c/osu.c implements the same method over the MPI
// C API and writes the same JSON, so that compare sets like against like.
package main
