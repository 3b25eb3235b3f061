#!/usr/bin/env bash
# Coverage-guided fuzzing: builds every libFuzzer target of tests/fuzz/ with clang and
# -fsanitize=fuzzer,address,undefined (its own build tree, build-fuzz/; the g++ trees are not
# touched), then runs each for SECONDS (default 60) on a seed corpus made from testdata/, with its
# dictionary, up to one target per core at a time. Exits non-zero when any target finds a crash, a
# sanitizer report, a leak, a timeout or an out-of-memory; the input that did it is copied to
# build-fuzz/findings/<target>/ to be fixed and then kept under testdata/fuzz-regressions/<target>/.
# Usage: bash tests/fuzz.sh [SECONDS]   (packages: clang, libclang-rt-14-dev; tests/packages.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=build-fuzz
jobs=$(nproc)

cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNLE_WERROR=ON -DNLE_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j "$jobs" --target nle_fuzz

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 tests/fuzz/make_seeds.py testdata "$work/seeds"

dictionary_of() {  # target -> its dictionary, if it has one
  case $1 in
    line_parser_* | journald_message | candidate_scan) echo tests/fuzz/dicts/line_parser.dict ;;
    state_file | accept_header | web_config) echo "tests/fuzz/dicts/$1.dict" ;;
  esac
}

run_target() {  # target: fuzz it for $seconds; its status goes to $work/<target>.status
  local target=$1 dict
  dict=$(dictionary_of "$target")
  mkdir -p "$work/$target/corpus" "$work/$target/artifacts" "$work/seeds/$target"
  local status=0
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: far above what any input needs.
  "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" ${dict:+-dict="$dict"} \
    "$work/$target/corpus" "$work/seeds/$target" >"$work/$target/log" 2>&1 || status=$?
  echo "$status" >"$work/$target.status"
}

targets=$(find "$build/tests/fuzz" -maxdepth 1 -name 'fuzz_*' -type f -executable -printf '%f\n' | sed 's/^fuzz_//' | sort)
for target in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$target" &
done
wait

failed=0
for target in $targets; do
  status=$(cat "$work/$target.status")
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/$target/log" | grep -o '[0-9]*$' || echo "?")
  if [ "$status" -eq 0 ]; then
    echo "fuzz_$target: ok, $runs runs in ${seconds}s"
    continue
  fi
  failed=1
  echo "fuzz_$target: FAILED (exit $status) after $runs runs; its log ends:"
  tail -n 40 "$work/$target/log" | sed 's/^/    /'
  mkdir -p "$build/findings/$target"
  cp "$work/$target/artifacts/"* "$build/findings/$target/" 2>/dev/null || true
  echo "    input kept in $build/findings/$target/"
done
exit "$failed"
