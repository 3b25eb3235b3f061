#!/usr/bin/env python3
"""Replay speed over realistic mixes (issue 13): for each mix, nle_gen_logs writes a log with that
mix's knobs, then every round runs `wc -l`, `LC_ALL=C grep -c 'report received'`, replay with 2
threads and with 1, replay's stages one by one (reference path: every line parsed; scan only:
every candidate parsed; scan + screen: the default) and `follow --from-beginning` catching up on
the whole file; mtail --one_shot runs once per mix in the same run. Rounds are interleaved, the
page cache is warm, every replay and follow result is checked against the generator's expected
counters. Prints a Markdown table of medians and same-run ratios, worst mix first in the summary.

Usage: python3 bench/mix_bench.py --build BUILD_DIR [--size 1G] [--rounds 3] [--mixes a,b] [--no-mtail]
Generated files live in a temporary directory under --dir (default /tmp), deleted at exit."""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import follow_bench  # noqa: E402  (Exporter, Scraper, series_value, cleanup)
import replay_bench  # noqa: E402  (timed, cp_families, totals)

# name -> (format, generator knobs). Rates are fractions of all entries (see bench/README.md):
# counted events, non-counting reports, tower-http request records (spans saying `version`),
# entries with a 4-64 KiB value; spans on/off/some.
MIXES = {
    "json default": ("json", []),
    "json busy CP": ("json", ["--event-rate", "0.02", "--quiet-rate", "0.10", "--version-rate", "0.60", "--spans", "on"]),
    "json worst": ("json", ["--event-rate", "0.20", "--quiet-rate", "0.30", "--version-rate", "0.45", "--spans", "on",
                            "--long-rate", "0.002"]),
    "json rare events": ("json", ["--event-rate", "0.001", "--quiet-rate", "0.30", "--version-rate", "0.69",
                                  "--spans", "on"]),
    "flat busy CP": ("flat", ["--event-rate", "0.05", "--quiet-rate", "0.20", "--version-rate", "0.50", "--spans", "on",
                              "--long-rate", "0.001"]),
    "json no spans": ("json", ["--event-rate", "0.20", "--quiet-rate", "0.30", "--spans", "off", "--long-rate", "0.01"]),
    "text busy CP": ("text", ["--event-rate", "0.02", "--quiet-rate", "0.10", "--version-rate", "0.60", "--spans", "on"]),
    "ansi busy CP": ("ansi", ["--event-rate", "0.05", "--quiet-rate", "0.20", "--version-rate", "0.50", "--spans", "on"]),
    "text no spans": ("text", ["--event-rate", "0.20", "--quiet-rate", "0.30", "--spans", "off"]),
    "journald busy CP": ("journald", ["--event-rate", "0.05", "--quiet-rate", "0.20", "--version-rate", "0.50",
                                      "--spans", "on"]),
}


def self_value(body, name):
    m = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.M)
    return float(m.group(1)) if m else 0.0


def follow_catch_up(binary, workdir, log, lines, timeout=600):
    """Seconds from starting `follow --from-beginning` until it has read every line, and the
    CP families it then exposes. Scrapes only once the process has read the file's size: a
    scrape every few ms while it catches up takes the registry lock hundreds of times a second
    (Prometheus scrapes every 15 s or so) and would time the polling, not the exporter."""
    started = time.monotonic()
    size = os.path.getsize(log)
    ex = follow_bench.Exporter(binary, workdir, [log], ["--from-beginning"])
    try:
        while ex.bytes_read() < size and time.monotonic() - started < timeout:
            time.sleep(0.002)
        s = follow_bench.Scraper(ex.port)
        while time.monotonic() - started < timeout:
            _, body = s.get()
            if self_value(body, "nixfleet_log_exporter_lines_read_total") >= lines:
                took = time.monotonic() - started
                return took, replay_bench.cp_families(body.decode("utf-8", errors="replace")), ex.vm_hwm_kib()
            time.sleep(0.002)
        raise RuntimeError(f"follow did not catch up on {log} in {timeout} s")
    finally:
        ex.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--mixes", default=",".join(MIXES))
    ap.add_argument("--no-mtail", action="store_true")
    ap.add_argument("--dir", default="/tmp")
    args = ap.parse_args()

    binary = os.path.join(args.build, "cmd", "nixfleet-log-exporter")
    gen = os.path.join(args.build, "bench", "nle_gen_logs")
    here = os.path.dirname(os.path.abspath(__file__))
    mtail = None if args.no_mtail else shutil.which("mtail")
    work = tempfile.mkdtemp(prefix="nle-mix-", dir=args.dir)
    try:
        return run(args, binary, gen, here, mtail, work)
    finally:
        follow_bench.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def run(args, binary, gen, here, mtail, work):
    print("## machine")
    print(open("/proc/cpuinfo").read().split("model name")[1].split("\n")[0].strip(": \t"))
    print(f"nproc: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}, seed {args.seed}, "
          f"size {args.size}, rounds {args.rounds}")
    mixes = []
    for i, name in enumerate(args.mixes.split(",")):
        fmt, knobs = MIXES[name]
        log, prom = os.path.join(work, f"mix{i}.log"), os.path.join(work, f"mix{i}.prom")
        r = subprocess.run([gen, "--format", fmt, "--bytes", args.size, "--seed", str(args.seed + i), "--out", log,
                            "--expected", prom, *knobs], capture_output=True, check=True)
        summary = r.stderr.decode()
        lines = int(re.search(r"lines=(\d+)", summary).group(1))
        counted = sum(int(re.search(rf"{k}=(\d+)", summary).group(1))
                      for k in ("compliance_failure", "runtime_gate_error", "gate_block"))
        mixes.append((name, fmt, knobs, log, open(prom, encoding="utf-8").read(), lines, os.path.getsize(log), counted))
        print(f"- {name}: `nle_gen_logs --format {fmt} {' '.join(knobs)}`: {lines} lines, "
              f"{counted / lines:.1%} counted")
    if mtail:
        progs = os.path.join(work, "progs")
        os.mkdir(progs)
        shutil.copy(os.path.join(here, "nixfleet.mtail"), progs)

    env = dict(os.environ)
    for k in ("NLE_REPLAY_REFERENCE", "NLE_REPLAY_SCREEN", "NLE_REPLAY_STAGE_COUNTS"):
        env.pop(k, None)
    ref_env = dict(env, NLE_REPLAY_REFERENCE="1")
    scan_env = dict(env, NLE_REPLAY_SCREEN="0")
    tools = [
        ("wc -l", lambda log: ["wc", "-l", log], None),
        ("grep -c", lambda log: ["env", "LC_ALL=C", "grep", "-c", "report received", log], None),
        ("replay", lambda log: [binary, "replay", "--threads", "2", log], env),
        ("replay --threads 1", lambda log: [binary, "replay", "--threads", "1", log], env),
        ("stages, 1 thread: reference (parse every line)", lambda log: [binary, "replay", "--threads", "1", log], ref_env),
        ("stages, 1 thread: scan, parse every candidate", lambda log: [binary, "replay", "--threads", "1", log], scan_env),
    ]
    rows, checks, stage_counts = {}, [], {}
    for m in mixes:
        subprocess.run(["cat", m[3]], stdout=subprocess.DEVNULL, check=True)
        r = subprocess.run([binary, "replay", "--threads", "1", m[3]], env=dict(env, NLE_REPLAY_STAGE_COUNTS="1"),
                           capture_output=True, check=True)
        stage_counts[m[0]] = re.search(rb"stages: (\d+) candidates, (\d+) screened out", r.stderr).groups()
    for round_ in range(args.rounds):
        for name, fmt, knobs, log, expected, lines, size, counted in mixes:
            for tool, cmd, tool_env in tools:
                out, wall, cpu, rss = replay_bench.timed(cmd(log), tool_env)
                rows.setdefault((name, tool), []).append((wall, cpu, rss))
                if round_ == 0 and tool == "wc -l":
                    checks.append((name, tool, int(out.split()[0]) == lines))
                if round_ == 0 and tool_env is not None:
                    checks.append((name, tool, replay_bench.cp_families(out.decode()) == expected))
            took, families, hwm = follow_catch_up(binary, work, log, lines)
            rows.setdefault((name, "follow --from-beginning (catch-up)"), []).append((took, 0.0, hwm))
            if round_ == 0:
                checks.append((name, "follow", families == expected))
    if mtail:
        for name, fmt, knobs, log, expected, lines, size, counted in mixes:
            out, wall, cpu, rss = replay_bench.timed(["mtail", "--one_shot", "--one_shot_format", "prometheus", "--progs",
                                                      os.path.join(work, "progs"), "--logs", log, "--logtostderr"])
            rows[(name, "mtail --one_shot")] = [(wall, cpu, rss)]

    med = lambda name, tool, i=0: statistics.median(s[i] for s in rows[(name, tool)])
    print()
    print("| mix | tool | median wall s | MB/s | median CPU s | peak RSS MiB | vs grep -c | vs wc -l |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    summary = []
    for name, fmt, knobs, log, expected, lines, size, counted in mixes:
        grep, wc = med(name, "grep -c"), med(name, "wc -l")
        for (mix, tool), samples in rows.items():
            if mix != name:
                continue
            wall = med(name, tool)
            cpu = "" if tool.startswith("follow") else f"{med(name, tool, 1):.3f}"
            rss = max(s[2] for s in samples) / 1024
            print(f"| {name} | {tool} | {wall:.3f} | {size / 1e6 / wall:.0f} | {cpu} | {rss:.1f} | "
                  f"{grep / wall:.2f}x | {wc / wall:.2f}x |")
        replay, one = med(name, "replay"), med(name, "replay --threads 1")
        follow = med(name, "follow --from-beginning (catch-up)")
        mtail_x = (med(name, "mtail --one_shot") / replay) if mtail else float("nan")
        cand, screened = (int(x) for x in stage_counts[name])
        # On a shared box wall time counts the waits for a core; CPU time does not.
        cpu_one = med(name, "grep -c", 1) / max(med(name, "replay --threads 1", 1), 1e-9)
        summary.append((grep / replay, name, grep / one, cpu_one, mtail_x, one / follow, cand / lines,
                        screened / max(cand, 1), max(s[2] for s in rows[(name, "replay")]) / 1024))
    print()
    print("| mix | replay vs grep -c (>= 1.0x) | 1 thread vs grep -c (>= 0.5x) | 1 thread vs grep -c, CPU time | "
          "mtail / replay (>= 50x) | follow catch-up vs replay --threads 1 (>= 0.8x) | candidates / lines | "
          "screened out / candidates | replay peak RSS MiB (<= 16) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in sorted(summary):
        ratio, name, one, cpu_one, mtail_x, follow, cand, screened, rss = row
        print(f"| {name} | {ratio:.2f}x | {one:.2f}x | {cpu_one:.2f}x | {mtail_x:.0f}x | {follow:.2f}x | {cand:.0%} | "
              f"{screened:.0%} | {rss:.1f} |")
    print()
    for name, tool, ok in checks:
        print(f"check {name} / {tool}: {'counts exact' if ok else 'MISMATCH'}")
    return 0 if all(ok for _, _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
