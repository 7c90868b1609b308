#!/usr/bin/env bash
# Quality against PyTorch: trains graphrun and bench/torch_ref.py with the same model,
# hyperparameters and IDX files (10 epochs, Adam 1e-3, batch 128) and draws both loss curves.
#
#   bash bench/quality.sh [MODEL...]        default: vae ae; figures and logs in bench/results/
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
out=bench/results
mkdir -p "$out"
models=("$@")
((${#models[@]})) || models=(vae ae)
for m in "${models[@]}"; do
  /usr/bin/python3 bench/torch_ref.py --model "$m" --epochs 10 --threads 1 \
    --jsonl "$out/torch_$m.jsonl" > "$out/torch_$m.log"
  "./$build/graphrun" "models/model.$m" --epochs 10 --out "$out/graphrun_$m" > "$out/graphrun_$m.log"
  "./$build/bench/plot_curves" "$m: test and train loss, graphrun vs PyTorch" \
    "$out/graphrun_$m/metrics.jsonl" "$out/torch_$m.jsonl" "$out/quality_$m.png"
done
