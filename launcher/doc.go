// Package launcher starts and supervises the ranks of a job: it reads the
// allocation (hosts and slots from flags, a hostfile or Slurm), plans where
// each rank runs and which cpus it is bound to, starts one node agent per
// host, serves the bootstrap exchange, forwards standard I/O and ends the
// job at the first failure.
//
// The same agent code runs in mpirun's process for the local host and as
// "mpirun --agent" on remote hosts (started over ssh or srun); both speak
// internal/bootstrap to mpirun. An agent starts its ranks bound to their
// cpus, gives them the PARLEY_ environment, forwards their output line by
// line, reports each exit, and kills its ranks when told to or when it
// loses mpirun. Ranks are started with a parent-death signal and in their
// own process groups, so none outlives its agent.
//
// launcher never imports comm or any transport: ranks and launcher meet
// only through internal/bootstrap and the environment.
package launcher
