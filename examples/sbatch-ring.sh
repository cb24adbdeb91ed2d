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
#SBATCH --job-name=parley-ring
#SBATCH --nodes=3
#SBATCH --ntasks=6
#SBATCH --time=00:05:00
#SBATCH --output=parley-ring-%j.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
bin/mpirun --report-bindings bin/ring -laps 100 -size 65536
