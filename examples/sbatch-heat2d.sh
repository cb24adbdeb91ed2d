#!/bin/bash
# heat2d on two nodes of a Slurm allocation: mpirun takes the allocation's
# nodes and tasks by itself (2 nodes, 4 ranks: a 2 x 2 grid, halo
# exchanges through shared memory within a node and TCP between them),
# and exits with the status of the first rank that fails; heat2d exits
# non-zero if its answer differs from a serial run.
#
#   make build && go build -o bin/heat2d ./examples/heat2d
#   sbatch examples/sbatch-heat2d.sh
#
#SBATCH --job-name=parley-heat2d
#SBATCH --nodes=2
#SBATCH --ntasks=4
#SBATCH --time=00:05:00
#SBATCH --output=parley-heat2d-%j.out

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"
bin/mpirun --report-bindings bin/heat2d -n 128 -pgm plate.pgm
