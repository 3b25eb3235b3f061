#!/usr/bin/env bash
# Rebuilds testdata/real/ from scratch: builds cp-sim offline against Debian's Rust crates, logs the
# scenario in each format, and stores the text, ANSI and JSON streams in real journal files with
# systemd-journal-remote, read back with journalctl.
#
# Needs (Debian 12): cargo, rustc,
#   apt-get install -y librust-tracing-subscriber-dev librust-tracing-dev \
#       librust-tracing-serde-dev librust-serde-json-dev systemd-journal-remote
# The journal-derived files carry random cursors/seqnum ids and hash-ordered keys, so they are
# not byte-reproducible; the *.log files and expected.prom are.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="$(cd "$here/.." && pwd)/real"
work="$(mktemp -d "${TMPDIR:-/tmp}/cp-sim.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${TMPDIR:-/tmp}/cp-sim-target}"
export TZ=UTC LC_ALL=C

(cd "$here" && cargo build --release --offline --quiet)
sim="$CARGO_TARGET_DIR/release/cp-sim"
remote=/lib/systemd/systemd-journal-remote
[ -x "$remote" ] || remote=/usr/lib/systemd/systemd-journal-remote

mkdir -p "$out"
for f in json flat text ansi; do
  "$sim" --format "$f" --expected "$work/expected-$f.prom" \
         --journal-export "$work/$f.export" > "$out/$f.log"
done
# The oracle does not depend on the format: one expected file.
for f in json flat ansi; do
  cmp "$work/expected-text.prom" "$work/expected-$f.prom"
done
cp "$work/expected-text.prom" "$out/expected.prom"

journal() {  # journal NAME EXPORT-FILE -> $work/NAME.journal
  "$remote" --output="$work/$1.journal" "$2" 2>/dev/null
}
for f in text ansi json; do
  journal "$f" "$work/$f.export"
  journalctl --file="$work/$f.journal" --no-pager -o json > "$out/journald-$f.json"
done
journalctl --file="$work/text.journal" --no-pager -o json-seq > "$out/journald-text.json-seq"
journalctl --file="$work/text.journal" --no-pager -o short > "$out/journald-text.short"
journalctl --file="$work/text.journal" --no-pager -o cat > "$out/journald-text.cat"
journalctl --file="$work/ansi.journal" --no-pager -o short > "$out/journald-ansi.short"
journalctl --file="$work/ansi.journal" --no-pager -o short --all > "$out/journald-ansi-all.short"

# What StandardOutput=journal really stores: journald's stdout stream makes one entry per line,
# so a multi-line event becomes several entries.
"$sim" --format text --journal-export "$work/text-lines.export" --journal-split line > /dev/null
journal text-lines "$work/text-lines.export"
journalctl --file="$work/text-lines.journal" --no-pager -o json > "$out/journald-text-lines.json"

echo "regenerated $(ls "$out" | wc -l) files in $out"
