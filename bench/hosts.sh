#!/usr/bin/env bash
# TCP between two emulated hosts (test/cluster/hosts-up.sh: network
# namespaces joined by veth pairs and a bridge): parley against Open MPI
# on the same hosts, measured both ways: with one cpu per host (each rank
# alone on its core, GOMAXPROCS=1), and with both hosts sharing both
# cores (ranks unbound, GOMAXPROCS=2, where the runtime's scheduling
# shows); then mpirun --compress on a link shaped to RATE, on data that
# compresses and on data that does not.
# Prints Markdown tables; needs root, takes about 5 minutes.
#
#   bench/hosts.sh [RATE]     # RATE for the shaped link, default 1gbit
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-1gbit}
reps=${REPS:-3}
mkdir -p bin
go build -o bin/mpirun ./mpirun
go build -o bin/bench ./bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
trap 'test/cluster/hosts-down.sh >/dev/null 2>&1 || true' EXIT

compare() { # title, then compare flags and the benchmark
  local title=$1
  shift
  echo "#### $title"
  echo
  bin/bench compare -md -reps "$reps" -np 2 -hosts host1,host2 "$@"
  echo
}

eval "$(test/cluster/hosts-up.sh 2 --cpus-per-host 1)"
echo "### Two emulated hosts, unshaped veth"
echo
compare "latency" -impl parley,openmpi latency -m 0:4M
compare "bw" -impl parley,openmpi bw -m 1:4M
compare "bw, parley with --compress (payload compresses)" -impl parley,openmpi -parley-flags --compress bw -m 64K:4M -i 10 -x 2

eval "$(test/cluster/hosts-up.sh 2)"
echo "### Two emulated hosts sharing both cores (ranks unbound, GOMAXPROCS=2)"
echo
compare "latency" -impl parley,openmpi latency -m 0:64K
compare "bw" -impl parley,openmpi bw -m 1K:4M

eval "$(test/cluster/hosts-up.sh 2 --cpus-per-host 1 --rate "$rate")"
echo "### Two emulated hosts, links shaped to $rate"
echo
# Fewer iterations: a window of 64 MiB messages takes half a second at 1 Gbit/s.
few=(-m 64K:1M -i 5 -x 1)
compare "bw" -impl parley,openmpi bw "${few[@]}"
compare "bw, parley with --compress (payload compresses)" -impl parley,openmpi -parley-flags --compress bw "${few[@]}"
compare "bw, parley with --compress (random payload)" -impl parley,openmpi -parley-flags --compress bw "${few[@]}" --random
