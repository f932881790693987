#!/usr/bin/env bash
# The CUDA paths on a machine with a GPU: torch-cuda's contract suite, then torch-cuda on the default grid
# and jax (on its default device, the GPU) on the smoke and edge grids, in every dtype. Needs torch with
# CUDA, jax with a GPU jaxlib and convparity's dependencies; the project need not be installed.
# Writes to $OUT (default ./gpu-check): log.txt (versions, tests, run output), summaries.md, runs.tar.gz.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
py=${PYTHON:-python3}
jobs=${JOBS:-8}
log="$out/log.txt"
{ nvidia-smi -L; $py -m convparity.harness.cli backends; } >> "$log" 2>&1
$py -m pytest -q -p no:cacheprovider tests/backends/test_torch.py -k "Cuda or cuda" 2>&1 | tail -25 >> "$log"
runs=$(mktemp -d)
for job in "torch-cuda default" "jax smoke" "jax edge"; do
    set -- $job
    echo "== convparity run -b $1 -g $2 (all dtypes)" >> "$log"
    $py -m convparity.harness.cli run -b "$1" -g "$2" --dtype float64 --dtype float32 --dtype float16 --dtype bfloat16 \
        -j "$jobs" -o "$runs/$1-$2" 2>&1 | tail -5 >> "$log"
    cat "$runs/$1-$2/summary.md" >> "$out/summaries.md"
done
tar -czf "$out/runs.tar.gz" -C "$runs" .
