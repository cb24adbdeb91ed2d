#!/bin/bash
# An sbatch script for a parley program: mpirun takes the allocation's
# nodes and tasks by itself (here 3 nodes, 6 ranks), starts its node agents
# with srun, and exits with the status of the first rank that fails.
#
#   make build        # bin/mpirun and bin/ring, among others
#   sbatch examples/sbatch-ring.sh
#
# The same program also starts directly under Slurm, without mpirun:
#   srun --mpi=pmi2 -N2 -n4 bin/ring
#
# Reading a failed job: the log (parley-ring-<id>.out) ends with one line
# from mpirun naming the rank that failed first, its node and pid, how it
# ended (its exit status, a signal, or the out-of-memory killer with the
# cgroup's limit) and the file with that rank's output; each rank's stdout
# and stderr are in parley-ring-<id>/1/rank.N/. The job's exit code is
# mpirun's status (README.md, "When a job fails", has the table).
#
#SBATCH --job-name=parley-ring
#SBATCH --nodes=3
#SBATCH --ntasks=6
#SBATCH --time=00:05:00
#SBATCH --output=parley-ring-%j.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
bin/mpirun --report-bindings --output-filename "parley-ring-${SLURM_JOB_ID:-local}" bin/ring -laps 100 -size 65536
