// Package pmix is a thin cgo client of OpenPMIx, the process management
// interface of Open MPI's mpirun (PRRTE) and of srun --mpi=pmix: init,
// put, commit, fence, get, abort and finalize, strings only. It exists
// only in builds with -tags pmix and cgo enabled (Debian: libpmix-dev);
// the default build stays pure Go, and package comm tells a user started
// by a PMIx launcher to rebuild (see comm's foreignLauncher).
package pmix
