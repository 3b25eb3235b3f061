#!/usr/bin/env bash
# The whole test suite: a normal build (warnings are errors) and an ASan+UBSan build, each
# running every ctest test; a ThreadSanitizer build running the concurrency tests; and every
# libFuzzer target for 20 s (tests/fuzz.sh, its own clang build).
# Usage: bash tests/run_all.sh   (packages: packaging/build-packages.txt and tests/packages.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

# The test tools are not part of the build's packages: say which are missing before building.
missing=()
for package in $(grep -hv '^#' packaging/build-packages.txt tests/packages.txt); do
  dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "tests/run_all.sh: missing Debian packages: ${missing[*]}" >&2
  echo "install them with: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
jobs=$(nproc)

configure_and_build() {  # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNLE_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
}

# ThreadSanitizer: only what the concurrency tests run, to keep the suite quick.
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNLE_WERROR=ON -DNLE_SANITIZE=thread >/dev/null
cmake --build build-tsan -j "$jobs" --target server_test source_test journal_source_test nixfleet-log-exporter nle_gen_logs
TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp" ctest --test-dir build-tsan --output-on-failure -j "$jobs" -L concurrency

configure_and_build build-asan -DNLE_SANITIZE=address,undefined
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" -LE "slow|packaging"

# Fuzzing before the last ctest run, so that the suite's closing line is ctest's summary.
bash tests/fuzz.sh 20

configure_and_build build
ctest --test-dir build --output-on-failure -j "$jobs"
