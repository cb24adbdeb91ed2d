// Command mpirun starts the ranks of a parley program on this machine, on
// hosts reached over ssh, or inside a Slurm allocation, and supervises them
// until they end:
//
//	mpirun -np 4 ./solver arg...
//	mpirun -H node1:16,node2:16 ./solver
//	mpirun ./solver            # inside sbatch: the allocation's tasks
//
// Flags follow Open MPI's spellings (-np, -H, --hostfile, --map-by,
// --bind-to, --tag-output, -x, ...), single-dash long forms included, so
// users' habits carry over. mpirun exits with the status of the first rank
// that failed (128+N for a signal N), after one line that names it.
//
// The same binary is the node agent on remote hosts (the hidden --agent
// mode), so a shared filesystem or the same install path is all a cluster
// needs.
package main
