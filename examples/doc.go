// Package examples holds small complete parley programs, each in its own
// directory, and sbatch scripts for Slurm clusters:
//
//	hello       each rank prints its rank, the world size, its host and pid
//	ring        a token passed around the ranks, checksum verified
//	pi          the classic integral, partial sums added with Reduce
//	pingpong    latency and bandwidth between two ranks
//	workers     master and workers: rows handed out with AnySource and tags
//	heat2d      2-D Jacobi on a Cartesian grid of ranks with halo exchange
//	samplesort  sample sort with Alltoallv
//	sgd         data-parallel gradient descent with Allreduce
//	particles   structs moving between neighbouring ranks, Gatherv
//	hybrid      several goroutines per rank, halo exchange overlapped with computation
//
// Each program checks its parallel answer against a serial run and exits
// non-zero if they differ; TestExamples runs them all at 1 to 4 ranks.
// Run one with mpirun, which builds a package directory itself
// (README.md's first command, run by the doc test in test/cluster):
//
//	go run ./mpirun -np 4 ./examples/hello
package examples
