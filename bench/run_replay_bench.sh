#!/bin/sh
# The replay benchmark of issue 5: generates CP logs (tracing JSON, text with ANSI, journald JSON)
# with nle_gen_logs, then times replay, `wc -l`, `LC_ALL=C grep -c 'report received'` and mtail's
# one-shot mode (if installed) on the same files, rounds interleaved, cache warm; checks every
# output against the generator's expected counters; prints a Markdown table. Deletes what it
# generated on exit.
#
# Usage: bench/run_replay_bench.sh BUILD_DIR [SIZE (default 1G)] [ROUNDS (default 5)]
#   BENCH_DIR=/path (default: a fresh directory under /tmp) BENCH_FORMATS="json ansi journald"
#   BENCH_MTAIL=0 skips mtail. BENCH_SEED=N (default 7) generates other logs, e.g. to check that
#   the results hold on logs the code was not tuned on.
set -eu

build=${1:?usage: run_replay_bench.sh BUILD_DIR [SIZE] [ROUNDS]}
size=${2:-1G}
rounds=${3:-5}
seed=${BENCH_SEED:-7}
formats=${BENCH_FORMATS:-json ansi journald}
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d "${BENCH_DIR:-/tmp}/nle-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM

cmake --build "$build" --target nixfleet-log-exporter nle_gen_logs >/dev/null

echo "## machine"
grep -m1 'model name' /proc/cpuinfo
echo "nproc: $(nproc)"
free -m | sed -n 2p
echo "generator seed: $seed"
echo "candidate scan kernel: $(grep -qw avx2 /proc/cpuinfo && echo avx2 || echo sse2)"
echo

specs=""
for format in $formats; do
  "$build/bench/nle_gen_logs" --format "$format" --bytes "$size" --seed "$seed" \
    --out "$dir/$format.log" --expected "$dir/$format.prom" 2>"$dir/$format.gen"
  lines=$(sed -n 's/.*lines=\([0-9]*\).*/\1/p' "$dir/$format.gen")
  specs="$specs $format=$dir/$format.log:$dir/$format.prom:$lines"
done

mtail_args=""
if [ "${BENCH_MTAIL:-1}" != 0 ] && command -v mtail >/dev/null 2>&1; then
  mkdir "$dir/progs"
  cp "$here/nixfleet.mtail" "$dir/progs/"
  mtail_args="--mtail-progs $dir/progs"
fi

# shellcheck disable=SC2086  # word splitting of $specs and $mtail_args is wanted
python3 "$here/replay_bench.py" --binary "$build/cmd/nixfleet-log-exporter" --rounds "$rounds" $mtail_args $specs
