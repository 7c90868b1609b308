#!/usr/bin/env bash
# Data parallel on one machine (issue 20): `mpirun -np 2 graphrun --threads 1` against one process
# with `--threads 2`, same model (MODEL, by default the VAE, 784-400-20), same global batch (128), Fashion-MNIST.
# Runs each configuration REPS times, interleaved, and prints each run's training rate (the last
# epoch's samples_per_second, so compilation and first-touch are out), their ratio, and rank 0's
# time in the gradient sum and bytes sent per step (the last lines graphrun prints under mpirun).
# Two more columns per rep: the same 2 ranks with the ring sum (GRAPHRUN_ALLREDUCE=ring; the
# default on one host is shared memory), and "no sum": two independent one-thread processes of
# half the batch side by side, the rate data parallelism would reach if summing cost nothing.
#
#   bash bench/mpi_scaling.sh            # BUILD_DIR=build EPOCHS=2 LIMIT=20000 REPS=3 BATCH=128
#   MODEL=models/conv_vae.graph LIMIT=12800 bash bench/mpi_scaling.sh   # another model
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
epochs=${EPOCHS:-2} limit=${LIMIT:-20000} reps=${REPS:-3} batch=${BATCH:-128} model=${MODEL:-model.vae}
graphrun=$build/graphrun
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# --bind-to none: Open MPI pins each of 2 ranks to a core by default, which on a machine shared
# with other work keeps a rank waiting for its core while the other is idle.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=("$model" --epochs "$epochs" --limit "$limit" --batch "$batch")

rate() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["samples_per_second"])' "$1/metrics.jsonl"; }

printf '%s, %s; %s, %s epochs of %s images, batch %s; load average %s\n' \
  "$(lscpu | sed -n 's/^Model name: *//p')" "$(nproc) cores" "$model" "$epochs" "$limit" "$batch" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %10s %10s %7s %10s %10s  %s\n' rep "1x2 img/s" "2x1 img/s" ratio "2x1 ring" "no sum" \
  "rank 0's gradient sum (shared memory)"
half=$((batch / 2))
for ((r = 1; r <= reps; r++)); do
  "$graphrun" "${common[@]}" --threads 2 --out "$tmp/one" >"$tmp/one.log"
  mpirun --oversubscribe --bind-to none -np 2 "$graphrun" "${common[@]}" --threads 1 --out "$tmp/two" >"$tmp/two.log"
  GRAPHRUN_ALLREDUCE=ring mpirun --oversubscribe --bind-to none -np 2 "$graphrun" "${common[@]}" \
    --threads 1 --out "$tmp/ring" >"$tmp/ring.log"
  for k in a b; do
    "$graphrun" "$model" --epochs "$epochs" --limit "$limit" --batch "$half" --threads 1 \
      --out "$tmp/lone-$k" >"$tmp/lone-$k.log" &
  done
  wait
  one=$(rate "$tmp/one") two=$(rate "$tmp/two") ring=$(rate "$tmp/ring")
  lone=$(python3 -c "print($(rate "$tmp/lone-a") + $(rate "$tmp/lone-b"))")
  sum=$(sed -n 's/^gradient sum on rank 0: //p' "$tmp/two.log")
  printf '%-4s %10.0f %10.0f %7.3f %10.0f %10.0f  %s\n' "$r" "$one" "$two" \
    "$(python3 -c "print($two / $one)")" "$ring" "$lone" "$sum"
done
