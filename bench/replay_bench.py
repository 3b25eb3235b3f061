#!/usr/bin/env python3
"""Times `replay` against `wc -l`, `LC_ALL=C grep -c 'report received'` and (optionally) mtail
one-shot on the same files, rounds interleaved, page cache warm. Every run is timed by timed()
(wall, CPU, peak RSS, see there); every replay output is checked against the generator's
expected file. Prints medians and ratios as a Markdown table. Driven by run_replay_bench.sh."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout bytes, wall s, cpu s, peak RSS KiB). Wall
    time from a monotonic clock and CPU time from the rusage wait4 returns (the child's and its
    waited-for child's): microseconds, where /usr/bin/time's own figures come in 10 ms ticks, as
    large as the changes being measured on a 0.2 s run. Peak RSS from /usr/bin/time (the rusage
    of a process forked from Python counts Python's pages too)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", t.name, *cmd], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"failed: {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
        text = t.read()
        out.seek(0)
        stdout = out.read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return stdout, wall, usage.ru_utime + usage.ru_stime, rss


def cp_families(text):
    keep = []
    for line in text.splitlines():
        name = line.split(" ")[2] if line.startswith("# ") else re.split(r"[{ ]", line, maxsplit=1)[0]
        if name.startswith("nixfleet_") and not name.startswith("nixfleet_log_exporter_"):
            keep.append(line)
    return "\n".join(keep) + "\n"


def totals(prom):
    """Sum per family of an exposition (for comparing mtail, whose label sets differ)."""
    sums = {}
    for line in prom.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            family = re.split(r"[{ ]", key, maxsplit=1)[0]
            if family != "nixfleet_cp_build_info":
                sums[family] = sums.get(family, 0) + float(value)
    return sums


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mtail-progs", default="")
    ap.add_argument("--mtail-rounds", type=int, default=1)
    ap.add_argument("inputs", nargs="+", help="NAME=LOG:EXPECTED:LINES")
    args = ap.parse_args()

    env_ref = dict(os.environ, NLE_REPLAY_REFERENCE="1")
    rows = {}  # (input, tool) -> list of (wall, cpu, rss)
    checks = []
    inputs = []
    for spec in args.inputs:
        name, rest = spec.split("=", 1)
        log, expected, lines = rest.split(":")
        inputs.append((name, log, open(expected, encoding="utf-8").read(), int(lines), os.path.getsize(log)))

    tools = [
        ("wc -l", lambda log: ["wc", "-l", log], None),
        ("grep -c", lambda log: ["env", "LC_ALL=C", "grep", "-c", "report received", log], None),
        ("replay (2 threads)", lambda log: [args.binary, "replay", "--threads", "2", log], None),
        ("replay --threads 1", lambda log: [args.binary, "replay", "--threads", "1", log], None),
        ("before: reference path, 2 threads", lambda log: [args.binary, "replay", "--threads", "2", log], env_ref),
        ("before: reference path, --threads 1", lambda log: [args.binary, "replay", "--threads", "1", log], env_ref),
    ]
    for name, log, expected, lines, size in inputs:
        subprocess.run(["cat", log], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    for round_ in range(args.rounds):
        for name, log, expected, lines, size in inputs:
            for tool, cmd, env in tools:
                out, wall, cpu, rss = timed(cmd(log), env)
                rows.setdefault((name, tool), []).append((wall, cpu, rss))
                if tool == "wc -l" and round_ == 0:
                    checks.append((name, tool, int(out.split()[0]) == lines))
                if tool.startswith(("replay", "before")) and round_ == 0:
                    checks.append((name, tool, cp_families(out.decode()) == expected))
    if args.mtail_progs:
        for name, log, expected, lines, size in inputs:
            if name != "json":
                continue
            for _ in range(args.mtail_rounds):
                out, wall, cpu, rss = timed(["mtail", "--one_shot", "--one_shot_format", "prometheus", "--progs",
                                             args.mtail_progs, "--logs", log, "--logtostderr"])
                rows.setdefault((name, "mtail --one_shot"), []).append((wall, cpu, rss))
            want, got = totals(expected), totals(out.decode(errors="replace"))
            ok = all(abs(got.get(k, 0) - v) < 0.5 for k, v in want.items())
            checks.append((name, "mtail --one_shot (totals per family)", ok))

    print("| input | tool | median wall s | MB/s | Mlines/s | median CPU s | peak RSS MiB | vs grep -c | vs wc -l |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, log, expected, lines, size in inputs:
        grep = statistics.median(w for w, _, _ in rows[(name, "grep -c")])
        wc = statistics.median(w for w, _, _ in rows[(name, "wc -l")])
        for (input_name, tool), samples in rows.items():
            if input_name != name:
                continue
            wall = statistics.median(w for w, _, _ in samples)
            cpu = statistics.median(c for _, c, _ in samples)
            rss = max(r for _, _, r in samples) / 1024
            print(f"| {name} ({size / 1e9:.2f} GB) | {tool} | {wall:.3f} | {size / 1e6 / wall:.0f} | "
                  f"{lines / 1e6 / wall:.2f} | {cpu:.3f} | {rss:.1f} | {grep / wall:.2f}x | {wc / wall:.2f}x |")
    print()
    for name, tool, ok in checks:
        print(f"check {name} / {tool}: {'counts exact' if ok else 'MISMATCH'}")
    return 0 if all(ok for name, tool, ok in checks if not tool.startswith("mtail")) else 1


if __name__ == "__main__":
    sys.exit(main())
