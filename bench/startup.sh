#!/usr/bin/env bash
# Start-up time of a 2-rank hello that does one exchange: parley's mpirun
# against MPICH's mpiexec.hydra and Open MPI's mpirun on the C hello in
# bench/c/hello.c, measured in one hyperfine run (medians of interleaved
# repetitions). Usage: bench/startup.sh [NP] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
np=${1:-2}
runs=${2:-30}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/mpirun" ./mpirun
go build -o "$out/hello" ./examples/hello
cmds=("$out/mpirun -np $np $out/hello")
names=("parley")
if command -v mpicc.mpich >/dev/null; then
  mpicc.mpich -O2 -o "$out/hello_mpich" bench/c/hello.c
  cmds+=("mpiexec.hydra -np $np $out/hello_mpich"); names+=("mpich")
fi
if command -v mpicc.openmpi >/dev/null; then
  mpicc.openmpi -O2 -o "$out/hello_ompi" bench/c/hello.c
  cmds+=("mpirun.openmpi --allow-run-as-root --oversubscribe -np $np $out/hello_ompi"); names+=("openmpi")
fi
args=()
for i in "${!cmds[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
hyperfine -N -w 3 -r "$runs" --export-json "$out/startup.json" "${args[@]}" >/dev/null
python3 - "$out/startup.json" <<'PY'
import json, sys
res = json.load(open(sys.argv[1]))["results"]
base = {r["command"]: r["median"] for r in res}
print(f"{'launcher':10} {'median s':>9} {'min s':>8} {'ratio to parley':>16}")
p = base.get("parley")
for r in res:
    print(f"{r['command']:10} {r['median']:9.4f} {r['min']:8.4f} {r['median']/p:16.2f}")
PY
