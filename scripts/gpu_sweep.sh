#!/usr/bin/env bash
# A parameter sweep on a GPU box: several configs and --set values, one run directory each,
# then one comparison table and plot. Rerunning the script resumes unfinished runs and skips
# finished ones (each `nqs train --out DIR` continues from DIR's newest checkpoint). A run that
# reaches --max-time exits 75 after its checkpoint: the sweep goes on, and the next invocation
# (e.g. a requeued batch job) continues it.
#
#   pip install ".[cuda,plot]"        # the JAX GPU plugin and matplotlib
#   bash scripts/gpu_sweep.sh [OUTDIR]
set -euo pipefail
out=${1:-runs/sweep}
mkdir -p "$out"

# float32 is the fast path on GPUs; every run writes its own directory under $out
for U in 2 3 4 6 8; do
  nqs train configs/bose_hubbard_1d.toml --set dtype=float32 --set hamiltonian.U=$U \
    --out "$out/bh-U$U" --quiet --max-time 2h || [ $? -eq 75 ]
done
for alpha in 1 2 4; do
  nqs train configs/spin1_heisenberg.toml --set dtype=float32 --set model.alpha=$alpha \
    --out "$out/spin1-alpha$alpha" --quiet --max-time 2h || [ $? -eq 75 ]
done
for g in 0.5 1 2 4; do
  nqs train configs/trap_interacting.toml --set hamiltonian.pair.g=$g \
    --out "$out/trap-g$g" --quiet --max-time 2h || [ $? -eq 75 ]
done

nqs report "$out"/*/ --plot "$out/sweep.png"
nqs report "$out"/*/ --json > "$out/sweep.json"
