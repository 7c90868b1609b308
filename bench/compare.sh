#!/usr/bin/env bash
# Speed and memory against PyTorch, side by side in one run on this machine: for each model and
# thread count, one training epoch of graphrun and of bench/torch_ref.py (same model,
# hyperparameters and IDX files, batch 128, the full 60k training set), repeated; medians of the
# training-pass time, samples/s and peak RSS, and their ratios. Also the GEMM limit of a VAE step,
# measured after each VAE epoch, and the VAE step against its products in one process. When the
# build has oneDNN, the VAE also trains with train.sgemm = onednn, with oneDNN's own GEMM limit.
#
#   bash bench/compare.sh [REPEATS]          default 3; writes bench/results/compare-*.txt
#   MODELS="vae" bash bench/compare.sh 1     a quicker look at one model
#   MODELS="conv_vae" bash bench/compare.sh  the convolutional VAE of issue 22 alone
#
# conv_vae is models/conv_vae.graph against the same network in torch_ref.py; after each of its
# epochs bench/conv_time gives its conv FLOP limit (each convolution kernel and dense product of a
# step at its best measured time), as gemm_limit does for the MLP VAE.
#
# PyTorch gets its best configuration, found in the same run: at N > 1 threads it trains both with
# torch.set_num_threads(1) and OpenBLAS on N threads, and with N torch threads and OpenBLAS on one
# (two pools of N never pay on N cores: bench/TORCH_REF.md), and the faster median counts. Which
# one won depends on the machine: the first on Sapphire Rapids, the second on Zen 5. The whole
# table is made twice: under the environment as it is (it may set OPENBLAS_CORETYPE=Haswell, AVX2
# kernels) and with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (native AVX-512 kernels), both
# sides alike.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
repeats=${1:-3}
out=bench/results
mkdir -p "$out"
read -r -a models <<< "${MODELS:-vae ae dae sae conv_vae}"
if ! /usr/bin/python3 -c 'import torch' 2> /dev/null; then
  echo "compare.sh: the PyTorch side needs Debian's python3-torch: apt-get install python3-torch" >&2
  exit 2
fi
for tool in graphrun bench/gemm_limit bench/step_time bench/conv_time; do
  [[ -x $build/$tool ]] || { echo "compare.sh: no $build/$tool: build first (bash setup.sh)" >&2; exit 2; }
done

onednn=0  # gemm_limit measures oneDNN when it was built against it (libdnnl-dev installed)
ldd "$build/bench/gemm_limit" | grep -q libdnnl && onednn=1

run_graphrun() {  # model threads [sgemm] -> "seconds samples_per_second rss_kib"
  local dir file="models/model.$1"
  [[ -f $file ]] || file="models/$1.graph"
  dir=$(mktemp -d)
  /usr/bin/time -f "%M" -o "$dir/rss" "./$build/graphrun" "$file" --epochs 1 \
    --threads "$2" ${3:+--train.sgemm "$3"} --out "$dir/run" > /dev/null
  python3 -c "import json,sys; d=json.loads(open('$dir/run/metrics.jsonl').readline()); print(d['seconds'], d['samples_per_second'], open('$dir/rss').read().strip())"
  rm -rf "$dir"
}

run_torch() {  # model torch_threads openblas_threads -> "seconds samples_per_second rss_kib"
  local dir
  dir=$(mktemp -d)
  OPENBLAS_NUM_THREADS=$3 /usr/bin/time -f "%M" -o "$dir/rss" /usr/bin/python3 bench/torch_ref.py \
    --model "$1" --epochs 1 --threads "$2" --train-only --jsonl "$dir/m.jsonl" > /dev/null
  python3 -c "import json; d=json.loads(open('$dir/m.jsonl').readline()); print(d['epoch_seconds'], d['samples_per_second'], open('$dir/rss').read().strip())"
  rm -rf "$dir"
}

table() {  # name label
  local raw="$out/compare-$1.raw"
  : > "$raw"
  for m in "${models[@]}"; do
    for t in 1 2; do
      for ((r = 0; r < repeats; r++)); do
        echo "$m $t graphrun $(run_graphrun "$m" "$t")" >> "$raw"
        # The limit right after the epoch it is compared with, so both see the same minute. The
        # oneDNN epoch is also set against the OpenBLAS limit measured just before it.
        if [[ $m == vae ]]; then
          echo "gemm $t $("./$build/bench/gemm_limit" --threads "$t" | awk '/epoch_limit_seconds/ {l=$2} /sequence_over_limit/ {s=$2} /limit_share_of_peak/ {p=$2} END {print l, s, p}')" >> "$raw"
          if ((onednn)); then
            echo "vae-onednn $t graphrun $(run_graphrun vae "$t" onednn)" >> "$raw"
            echo "gemm-onednn $t $("./$build/bench/gemm_limit" --threads "$t" --sgemm onednn | awk '/epoch_limit_seconds/ {l=$2} /sequence_over_limit/ {s=$2} END {print l, s}')" >> "$raw"
          fi
        fi
        if [[ $m == conv_vae ]]; then
          echo "convlimit $t $("./$build/bench/conv_time" --threads "$t" --reps 5 | awk -v t="$t" '$1 == "epoch_limit_seconds" && $2 == t {l=$3} $1 == "limit_share_of_peak" && $2 == t {p=$3} END {print l, p}')" >> "$raw"
        fi
        echo "$m $t torch $(run_torch "$m" 1 "$t")" >> "$raw"
        if ((t > 1)); then echo "$m $t torch-threads $(run_torch "$m" "$t" 1)" >> "$raw"; fi
      done
    done
  done
  # A VAE step against its own matrix products, alternating in one process (medians, both
  # sides in the same minutes): what the step adds to its GEMMs, free of the machine's drift.
  if [[ " ${models[*]} " == *" vae "* ]]; then
    for t in 1 2; do
      echo "inprocess $t $("./$build/bench/step_time" --compare gemm --threads "$t" | awk '/^step_over_gemm/ {print $2}')" >> "$raw"
      if ((onednn)); then
        echo "sgemm $t $("./$build/bench/step_time" --compare sgemm --threads "$t" | awk '/^speedup/ {print $2}')" >> "$raw"
      fi
    done
  fi
  # 2 threads vs 1 inside one process (whole training steps in alternating blocks): separate
  # processes' medians carry this machine's drift, which can fake or hide a 30% difference.
  for m in "${models[@]}"; do
    [[ -f models/model.$m ]] || continue  # step_time builds the registry's models only
    echo "scaling $m $("./$build/bench/step_time" --model "$m" | awk '/^speedup/ {s=$2} /^machine_speedup/ {c=$2} END {print s, c}')" >> "$raw"
  done
  python3 - "$raw" "$2" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
med = {}
gemm = {}
sequence = {}
share = {}
convlimit = {}
convshare = {}
machine = {}
gemm_dnnl = {}
sequence_dnnl = {}
sgemm = {}
scaling = {}
inprocess = {}
for r in rows:
    if r[0] == 'gemm':
        gemm.setdefault(r[1], []).append(float(r[2]))
        sequence.setdefault(r[1], []).append(float(r[3]))
        if len(r) > 4: share.setdefault(r[1], []).append(float(r[4]))
        continue
    if r[0] == 'convlimit':
        convlimit.setdefault(r[1], []).append(float(r[2]))
        if len(r) > 3: convshare.setdefault(r[1], []).append(float(r[3]))
        continue
    if r[0] == 'gemm-onednn':
        gemm_dnnl.setdefault(r[1], []).append(float(r[2]))
        sequence_dnnl.setdefault(r[1], []).append(float(r[3])); continue
    if r[0] == 'sgemm':
        sgemm[r[1]] = float(r[2]); continue
    if r[0] == 'scaling':
        scaling[r[1]] = float(r[2])
        if len(r) > 3: machine[r[1]] = float(r[3])
        continue
    if r[0] == 'inprocess':
        inprocess[r[1]] = float(r[2]); continue
    m, t, who, sec, sps, rss = r
    med.setdefault((m, t, who), []).append((float(sec), float(sps), float(rss) / 1024))
print(f"environment: {sys.argv[2]}   (medians of {len(next(iter(med.values())))} runs; one epoch, 60k images, batch 128)")
# PyTorch's figure at each (model, threads): the faster median of its configurations.
config_names = {'torch': 'torch.set_num_threads(1), OpenBLAS on N threads',
                'torch-threads': 'torch.set_num_threads(N), OpenBLAS on 1'}
best_torch, chosen = {}, {}
for (m, t, who) in med:
    if who not in config_names:
        continue
    rows_ = med[(m, t, who)]
    seconds = statistics.median(v[0] for v in rows_)
    if (m, t) not in best_torch or seconds < statistics.median(v[0] for v in best_torch[(m, t)]):
        best_torch[(m, t)], chosen[(m, t)] = rows_, who
print(f"{'model':10} {'thr':>3} | {'graphrun s':>10} {'img/s':>7} {'RSS MiB':>7} | {'PyTorch s':>9} {'img/s':>7} {'RSS MiB':>7} | {'speed x':>7} {'memory /':>8}")
for (m, t, who) in sorted(k for k in med if k[2] == 'graphrun'):
    g = [statistics.median(v) for v in zip(*med[(m, t, 'graphrun')])]
    p = [statistics.median(v) for v in zip(*best_torch[(m.removesuffix('-onednn'), t)])]
    print(f"{m:10} {t:>3} | {g[0]:10.2f} {g[1]:7.0f} {g[2]:7.0f} | {p[0]:9.2f} {p[1]:7.0f} {p[2]:7.0f} | {g[1]/p[1]:7.2f} {p[2]/g[2]:8.2f}")
for (m, t), who in sorted(chosen.items()):
    if t == '1':
        continue
    others = [f"{w} {statistics.median(v[0] for v in med[(m, t, w)]):.2f} s" for w in config_names if (m, t, w) in med]
    print(f"PyTorch {m} at {t} threads: {config_names[who]} (medians: {', '.join(others)})")
for m in sorted({k[0] for k in med if not k[0].endswith('-onednn')}):
    one = statistics.median(v[0] for v in med[(m, '1', 'graphrun')])
    two = statistics.median(v[0] for v in med[(m, '2', 'graphrun')])
    inside = f"; in one process (bench/step_time): {scaling[m]:.2f}x" if m in scaling else ""
    if m in machine:
        inside += f", while the machine's FMA rate scaled {machine[m]:.2f}x"
    print(f"graphrun {m}: 2 threads vs 1: {one / two:.2f}x (medians of separate runs){inside}")
for t, lims in sorted(gemm.items()):
    epochs = [v[0] for v in med[('vae', t, 'graphrun')]]
    ratio = statistics.median(e / l for e, l in zip(epochs, lims))
    inside = f"; in one process, step / its products (bench/step_time --compare gemm): {inprocess[t]:.2f}" if t in inprocess else ""
    print(f"VAE GEMM limit at {t} thread(s): {statistics.median(lims):.2f} s/epoch; graphrun epoch / limit = {ratio:.2f} "
          f"(median of {len(lims)} epoch-limit pairs){inside}; OpenBLAS alone, the step's products back to back "
          f"on their own operands / limit (bench/gemm_limit): {statistics.median(sequence[t]):.2f}"
          + (f"; the limit runs at {statistics.median(share[t]):.0%} of the cores' FMA peak" if t in share else ""))
for t, lims in sorted(convlimit.items()):
    epochs = [v[0] for v in med[('conv_vae', t, 'graphrun')]]
    ratio = statistics.median(e / l for e, l in zip(epochs, lims))
    print(f"conv VAE FLOP limit at {t} thread(s) (bench/conv_time): {statistics.median(lims):.2f} s/epoch; "
          f"graphrun epoch / limit = {ratio:.2f} (median of {len(lims)} epoch-limit pairs)"
          + (f"; the limit runs at {statistics.median(convshare[t]):.0%} of the cores' FMA peak" if t in convshare else ""))
for t, lims in sorted(gemm_dnnl.items()):
    epochs = [v[0] for v in med[('vae-onednn', t, 'graphrun')]]
    openblas_lims = gemm[t][:len(epochs)]
    inside = f"; in one process, its step is {sgemm[t]:.2f}x as fast as with OpenBLAS (bench/step_time --compare sgemm)" if t in sgemm else ""
    print(f"VAE with train.sgemm = onednn at {t} thread(s): epoch / OpenBLAS's limit = "
          f"{statistics.median(e / l for e, l in zip(epochs, openblas_lims)):.2f}, / oneDNN's own limit "
          f"({statistics.median(lims):.2f} s/epoch) = {statistics.median(e / l for e, l in zip(epochs, lims)):.2f}; "
          f"oneDNN alone back to back / its limit: {statistics.median(sequence_dnnl[t]):.2f}{inside}")
PY
}

if [[ ${2:-} == --native ]]; then
  table native "native (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)" | tee "$out/compare-native.txt"
elif [[ -z ${OPENBLAS_CORETYPE:-} && -z ${OPENBLAS_L2_SIZE:-} ]]; then
  # Nothing to unset: the second table would measure the same setting again.
  table asis "as-is = native (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)" | tee "$out/compare-asis.txt"
else
  table asis "as-is (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset})" | tee "$out/compare-asis.txt"
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE bash "$0" "$repeats" --native
fi
