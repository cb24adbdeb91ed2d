// Package examples holds small complete parley programs, each in its own
// directory, and an sbatch script for Slurm clusters:
//
//	hello   each rank prints its rank, the world size, its host and pid
//	ring    a token passed around the ranks, checksum verified
//
// Run one with mpirun, which builds a package directory itself:
//
//	go run ./mpirun -np 4 ./examples/hello
package examples
