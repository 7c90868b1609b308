#!/usr/bin/env bash
# Installs graphrun's dependencies from Debian 12 packages, configures and builds (Release,
# Ninja). Idempotent: packages already present are not fetched again, and the build is
# incremental.
#
#   bash setup.sh          install + build          (then: ./build/graphrun model.vae)
#   bash setup.sh test     install + build + the whole test suite, then .ci/sanitize: the suite
#                          under ASan+UBSan, the [graph],[train] tests under TSan, and each
#                          libFuzzer target for 30 s. This is what CI runs (.ci/run).
#   bash setup.sh sanitize install + build + only the .ci/sanitize half
#   bash setup.sh run      install + build + graphrun model.vae on Fashion-MNIST
#
# SANITIZE_STEPS picks the sanitizer steps of test and sanitize (default "asan tsan fuzz");
# SANITIZE_STEPS="" bash setup.sh test runs the normal suite only, e.g. for a quick local check.
# clang-16 (for the asan and fuzz steps; Debian 12's clang 14 is too old) is installed only when
# one of those runs: build and run never need it. BUILD_DIR (default build) chooses the normal
# build folder; the sanitizer builds go to build-asan and build-tsan.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-graph-dev libboost-program-options-dev libtbb-dev libfmt-dev catch2
  libopenblas-dev libdnnl-dev zlib1g-dev libzip-dev librandom123-dev nlohmann-json3-dev libstb-dev
  libbenchmark-dev graphviz dataset-fashion-mnist libopenmpi-dev openmpi-bin
)
# .ci/sanitize builds the ASan+UBSan suite and the libFuzzer targets with clang (16: clang 14
# lacks source_location).
sanitize_steps=" ${SANITIZE_STEPS-asan tsan fuzz} "
if [[ ${1:-build} == test || ${1:-build} == sanitize ]] &&
  [[ $sanitize_steps == *" asan "* || $sanitize_steps == *" fuzz "* ]]; then
  packages+=(clang-16 libclang-rt-16-dev)
fi
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
printf '== setup: build in %s (%s)\n' "$build" "$(date +%T)"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build"

case "${1:-build}" in
  build) ;;
  test)
    printf '\n== test: whole suite (%s)\n' "$(date +%T)"
    ctest --test-dir "$build" --output-on-failure -j2 --timeout 900
    bash .ci/sanitize
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
