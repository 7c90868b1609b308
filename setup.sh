#!/usr/bin/env bash
# Installs graphrun's dependencies from Debian 12 packages, configures and builds (Release,
# Ninja). Idempotent: packages already present are not fetched again, and the build is
# incremental.
#
#   bash setup.sh          install + build          (then: ./build/graphrun model.vae)
#   bash setup.sh test     install + build + the whole test suite
#   bash setup.sh sanitize install + build + the suite under ASan+UBSan and TSan, and each fuzz
#                          target for 30 s (.ci/sanitize; not yet part of CI: see README)
#   bash setup.sh run      install + build + graphrun model.vae on Fashion-MNIST
#
# BUILD_DIR (default build) chooses the build folder.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-graph-dev libboost-program-options-dev libtbb-dev libfmt-dev catch2
  libopenblas-dev zlib1g-dev librandom123-dev nlohmann-json3-dev libstb-dev
  libbenchmark-dev graphviz dataset-fashion-mnist
)
# .ci/sanitize builds the libFuzzer targets with clang (16: clang 14 lacks source_location).
if [[ ${1:-build} == sanitize ]]; then packages+=(clang-16 libclang-rt-16-dev); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build=${BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build"

case "${1:-build}" in
  build) ;;
  test)
    ctest --test-dir "$build" --output-on-failure -j2 --timeout 900
    ;;
  sanitize)
    bash .ci/sanitize
    ;;
  run)
    "./$build/graphrun" model.vae
    ;;
  *)
    echo "usage: bash setup.sh [build|test|sanitize|run]" >&2
    exit 2
    ;;
esac
