#!/usr/bin/env bash
# Runs on a many-core machine the measurements a 2-core machine cannot make:
# parley against Open MPI at 2..16 ranks, binding on and off, and start-up
# of 16 ranks. Everything comes from the directory bench/device/pack.sh
# made; nothing is installed. Prints one short table per measurement.
#
#   DIR/run.sh            # all of it
#   PARTS="p2p collectives" NPS="2 4" DIR/run.sh   # some parts, some rank counts
# Parts: p2p collectives binding hybrid overlap startup.
set -uo pipefail
d=$(cd "$(dirname "$0")" && pwd)
export OPAL_PREFIX=$d/ompi
export PMIX_INSTALL_PREFIX=$d/ompi/lib/x86_64-linux-gnu/pmix2
# PMIx ignores its prefix for components; without them it warns on every run.
export PMIX_MCA_mca_base_component_path=$d/ompi/lib/x86_64-linux-gnu/pmix2/lib/pmix
export PATH=$d/ompi/bin:$PATH
export LD_LIBRARY_PATH=$d/ompi/deps:$d/ompi/lib/x86_64-linux-gnu:$d/ompi/lib/x86_64-linux-gnu/openmpi/lib:$d/ompi/lib/x86_64-linux-gnu/pmix2/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Open MPI's components load from the relocated pkglibdir.
export OMPI_MCA_mca_component_path=$d/ompi/lib/x86_64-linux-gnu/openmpi/lib/openmpi3
# On-node Open MPI as Debian's build picks it on a machine without a fabric
# (ob1 over vader); relocated, it would otherwise find libfabric's socket
# provider and measure that (4 us latency instead of 0.35).
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader
cores=$(nproc)
nps=${NPS:-2 4 8 16}
maxnp=${nps##* }
rows='^(# |0 |8 |1024 |65536 |1048576 |4194304 )'
parts=" ${PARTS:-p2p collectives binding hybrid overlap startup} "
want() { [[ $parts == *" $1 "* ]]; }
echo "# device: $cores cores, $(uname -r), $(date -u +%FT%TZ)"

compare() { # NP REPS BENCH [bench options]
  local np=$1 reps=$2
  shift 2
  timeout 180 "$d/bin/bench" compare -np "$np" -reps "$reps" -impl parley,openmpi \
    -ref "$d/bin" -mpirun "$d/bin/mpirun" "$@" 2>/dev/null | grep -E "$rows" ||
    echo "# $* at $np ranks: failed or timed out"
}

if want p2p; then
  echo; echo "## point to point, 2 ranks"
  for b in latency bw bibw mbw_mr; do
    compare 2 3 "$b" -m 8:4M
  done
fi
# Every collective at every rank count: the whole table in one run.
# The v-variants stop at 1 MiB a block: at 16 ranks a 4 MiB alltoallv
# moves 64 MiB per rank and would take most of a lent machine's time.
colls="allreduce reduce reduce_scatter bcast gather scatter allgather alltoall"
vcolls="allgatherv alltoallv"
want collectives && for np in $nps; do
  echo; echo "## collectives, $np ranks"
  for c in $colls; do
    compare "$np" 3 "$c" -m 8:4M
  done
  for c in $vcolls; do
    compare "$np" 3 "$c" -m 8:1M
  done
  compare "$np" 3 barrier
done

want binding && echo && echo "## binding, parley allreduce at $maxnp ranks (us)" &&
for bind in core none; do
  echo "# --bind-to $bind"
  timeout 120 "$d/bin/mpirun" -np "$maxnp" --bind-to "$bind" "$d/bin/bench" allreduce -m 8:1M |
    grep -E "$rows" || echo "# failed"
done

want hybrid && echo && echo "## hybrid: 8-byte and 1 MiB latency (us), 2 ranks, by cores per rank" &&
for how in "--bind-to core" "--bind-to none" "--cpus-per-rank 2" "--cpus-per-rank 4"; do
  for tr in shm tcp; do
    for busy in "" -busy; do
      printf '%s %s %s: ' "$how" "$tr" "${busy:-idle}"
      # shellcheck disable=SC2086
      timeout 60 "$d/bin/mpirun" -np 2 $how --transport "$tr" "$d/bin/bench" latency -m 8:1M $busy |
        awk '$1==8{a=$2} $1==1048576{b=$2} END {print a, b}'
    done
  done
done

want overlap && echo && echo "## overlap (%), 2 ranks with 4 cores each (async progress on), and with it off" &&
for prog in on off; do
  for b in iallreduce ibcast isend_overlap; do
    for tr in shm tcp; do
      printf '%s %s %s: ' "$b" "$tr" "$prog"
      timeout 120 "$d/bin/mpirun" -np 2 --cpus-per-rank 4 --transport "$tr" -x PARLEY_PROGRESS=$prog \
        "$d/bin/bench" "$b" -m 64K:1M | awk '$1==65536{a=$5} $1==1048576{b=$5} END {print "64K", a, "1M", b}'
    done
  done
done

want startup || exit 0
echo; echo "## start-up of $maxnp ranks, median of 15 (ms)"
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
startup() { # NAME COMMAND...
  local name=$1 t0 t1
  shift
  for _ in $(seq 15); do
    t0=$(date +%s%N)
    timeout 60 "$@" >/dev/null 2>&1 || { echo "$name failed" >&2; }
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
  done | median | sed "s/^/$name /"
}
startup parley "$d/bin/mpirun" -np "$maxnp" "$d/bin/hello"
startup openmpi mpirun.openmpi -np "$maxnp" --oversubscribe "$d/bin/hello_openmpi"
