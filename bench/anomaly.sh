#!/usr/bin/env bash
# One-class anomaly detection on Fashion-MNIST (issue 21), the protocol of Golan & El-Yaniv 2018
# ("Deep Anomaly Detection Using Geometric Transformations", NeurIPS, arXiv 1805.10917): for each
# model (AE, VAE) and each class c = 0..9, train on the 6,000 training images of class c only,
# then score all 10,000 test images by their loss (`graphrun anomaly`); the other nine classes
# are the anomalies. Prints one AUROC and average precision per model and class, and their
# means, as a Markdown table, also written to bench/results/anomaly.md.
#
# 20 trainings of EPOCHS epochs on 6,000 images, then 20 scorings of 10,000: 500 s (8.3 min) at
# the default 10 epochs, 2 threads, nice 10, on 2 Zen 2 cores shared with other jobs (load ~8);
# the wall time of each run is in bench/results/anomaly.md.
#
#   bash bench/anomaly.sh                           EPOCHS=10, models ae vae, classes 0..9
#   EPOCHS=2 MODELS=ae CLASSES="0 6" bash bench/anomaly.sh   a quick look
#   GRAPHRUN=/path/to/graphrun THREADS=2 nice -n 10 bash bench/anomaly.sh
#
# GRAPHRUN is the binary (default: graphrun on PATH, else $BUILD_DIR/graphrun, build/ by
# default); it may carry words before it, e.g. GRAPHRUN="env LD_LIBRARY_PATH=/x /x/graphrun".
# Run folders go to runs/anomaly/<model>_<class>/ (logs: train.log, anomaly.log).
# Note on average precision: the anomalies (9 of 10 classes) are the positives, so a random
# score already has AP 0.90; AUROC is the figure the papers report.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
epochs=${EPOCHS:-10}
threads=${THREADS:-}
read -r -a models <<< "${MODELS:-ae vae}"
read -r -a classes <<< "${CLASSES:-0 1 2 3 4 5 6 7 8 9}"
runs=runs/anomaly
out=bench/results/anomaly.md

if [[ -n ${GRAPHRUN:-} ]]; then
  read -r -a graphrun <<< "$GRAPHRUN"
elif command -v graphrun > /dev/null; then
  graphrun=(graphrun)
elif [[ -x $build/graphrun ]]; then
  graphrun=("./$build/graphrun")
else
  echo "anomaly.sh: no graphrun on PATH nor $build/graphrun: build first (bash setup.sh) or set GRAPHRUN" >&2
  exit 2
fi
python=/usr/bin/python3
[[ -x $python ]] || python=python3

mkdir -p "$runs" bench/results
start=$(date +%s)
for m in "${models[@]}"; do
  for c in "${classes[@]}"; do
    dir=$runs/${m}_$c
    rm -rf "$dir"
    t0=$(date +%s)
    "${graphrun[@]}" "model.$m" --data.classes "$c" --epochs "$epochs" ${threads:+--threads "$threads"} \
      --out "$dir" > "$dir.train.log" 2>&1 || { cat "$dir.train.log" >&2; exit 1; }
    "${graphrun[@]}" anomaly "model.$m" --data.classes "$c" ${threads:+--threads "$threads"} \
      --out "$dir" > "$dir.anomaly.log" 2>&1 || { cat "$dir.anomaly.log" >&2; exit 1; }
    mv "$dir.train.log" "$dir/train.log"
    mv "$dir.anomaly.log" "$dir/anomaly.log"
    echo "$m class $c ($(($(date +%s) - t0)) s): $(grep '^AUROC' "$dir/anomaly.log")" >&2
  done
done
wall=$(($(date +%s) - start))

cpu=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
family=$(sed -n 's/^cpu family[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
cpumodel=$(sed -n 's/^model[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -1)
version=$("${graphrun[@]}" --version 2>&1 | head -1)

"$python" - "$runs" "$epochs" "${threads:-default}" "$wall" "$cpu" "$family" "$cpumodel" \
  "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" "$version" "${models[*]}" "${classes[*]}" << 'EOF' | tee "$out"
import json, os, sys
runs, epochs, threads, wall, cpu, family, cpumodel, date, ncpu, version, models, classes = sys.argv[1:]
models, classes = models.split(), [int(c) for c in classes.split()]
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
res = {}
for m in models:
    for c in classes:
        d = json.load(open(os.path.join(runs, f"{m}_{c}", "anomaly.json")))
        assert d["normal_classes"] == [c] and d["samples"] == 10000 and d["anomalies"] == 9000, d
        res[m, c] = d
print("# One-class anomaly detection, Fashion-MNIST (`bash bench/anomaly.sh`)")
print()
print(f"{date}; {cpu} (family {family} model {cpumodel}), {ncpu} cores; {version}.")
print(f"Each model trained on the 6,000 training images of one class for {epochs} epochs "
      f"(threads: {threads}), then scored on all 10,000 test images by its loss; anomalies = the "
      f"other 9 classes (9,000). AP counts the anomalies as positives (a random score gets 0.90). "
      f"Wall time of the whole script: {wall} s.")
print()
head = "| class |" + "".join(f" {m.upper()} AUROC | {m.upper()} AP |" for m in models)
print(head)
print("|---|" + "---:|---:|" * len(models))
for c in classes:
    print(f"| {c} {names[c]} |" + "".join(
        f" {res[m, c]['auroc']:.3f} | {res[m, c]['average_precision']:.3f} |" for m in models))
mean = lambda m, k: sum(res[m, c][k] for c in classes) / len(classes)
print("| **mean** |" + "".join(
    f" **{mean(m, 'auroc'):.3f}** | {mean(m, 'average_precision'):.3f} |" for m in models))
EOF
