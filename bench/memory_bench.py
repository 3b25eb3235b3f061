#!/usr/bin/env python3
"""Peak memory of nixfleet-log-exporter on hostile input (issue 14), with default flags.

    python3 bench/memory_bench.py --binary build/cmd/nixfleet-log-exporter [--quick] [--case NAME]

Each case feeds one adversarial input to `replay` and to `follow`, and reports the peak RSS
(ru_maxrss of the exited process: every page it ever touched, allocator slack included).
The goal is 64 MiB whatever the log holds.

  pairs       1 M ComplianceFailure lines, every one a new (host, control_id) pair
              (the series cap keeps 10,000; the rest are counted as dropped)
  labels      ComplianceFailure lines whose host is 1 MB (control_id 1 KB), all distinct
              (lines stay under the 1 MiB line cap)
  long_line   1 GiB without a newline, through a pipe (a file would need 1 GiB of disk)
  deep_json   lines holding 100k-deep JSON nesting, in `fields` and in a `details` string
  scrape      follow only: 10,000 series whose labels are as long as --max-label-bytes allows,
              scraped in a loop (text, OpenMetrics, gzip and not) for --scrape-seconds

Inputs are generated into a temporary directory, removed at exit; follow binds 127.0.0.1 on a
port the kernel picks and is stopped with SIGTERM once it has read everything (checked on
/metrics). --quick makes every input 10x smaller.
"""

import argparse
import gzip
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

MIB = 1 << 20


def event_line(host, control_id):
    return ('{"timestamp":"2026-11-20T08:14:03.511203Z","level":"INFO","fields":{"message":"report received",'
            f'"hostname":"{host}","event":"compliance-failure","control_id":"{control_id}"}},"target":"report"}}\n')


def write_pairs(path, n):
    with open(path, "w") as f:
        for i in range(n):
            f.write(event_line(f"host-{i:07d}", f"CIS-{i % 997}.{i}"))
    return n


def write_labels(path, n, host_bytes, control_bytes):
    with open(path, "w") as f:
        for i in range(n):
            tag = f"{i:06d}"
            f.write(event_line(tag + "h" * (host_bytes - len(tag)), tag + "c" * (control_bytes - len(tag))))
    return n


def write_deep_json(path, n, depth):
    opening, closing = "[" * depth, "]" * depth
    nested_objects = '{"a":' * depth + "1" + "}" * depth
    with open(path, "w") as f:
        for i in range(n):
            if i % 2 == 0:  # deep arrays in a field of a counted event
                f.write('{"fields":{"message":"report received","event":"compliance-failure","hostname":"h",'
                        f'"control_id":"c","x":{opening}{closing}}}}}\n')
            else:  # deep objects inside a JSON string field (read by the nested reader)
                escaped = nested_objects.replace('"', '\\"')
                f.write('{"fields":{"message":"report received","event":"compliance-failure",'
                        f'"details":"{escaped}"}}}}\n')
    return n


def pipe_long_line(stream, size):
    """Writes `size` bytes with no newline (a run of JSON-looking text) and closes the stream."""
    block = (b'{"fields":{"message":"report received","hostname":"' + b"x" * 4000) [:4096]
    try:
        written = 0
        while written < size:
            stream.write(block)
            written += len(block)
    except BrokenPipeError:
        pass
    finally:
        try:
            stream.close()
        except BrokenPipeError:
            pass


EXTRA_FLAGS = []


def run_replay(binary, path=None, feed=None):
    args = [binary, "replay", *EXTRA_FLAGS, path or "-"]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    feeder = None
    if feed:
        feeder = threading.Thread(target=feed, args=(proc.stdin,))
        feeder.start()
    out_reader = threading.Thread(target=lambda: proc.stdout.read())
    out_reader.start()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = status
    out_reader.join()
    if feeder:
        feeder.join()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"replay failed: {err.decode(errors='replace')[-500:]}")
    return usage.ru_maxrss * 1024, err.decode(errors="replace").strip().splitlines()[-1]


def scrape(port, accept="", gzip_ok=False, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {}
    if accept:
        headers["Accept"] = accept
    if gzip_ok:
        headers["Accept-Encoding"] = "gzip"
    conn.request("GET", "/metrics", headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    if response.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return body.decode()


def lines_read(page):
    match = re.search(r"^nixfleet_log_exporter_lines_read_total (\d+)$", page, re.M)
    return int(match.group(1)) if match else -1


def run_follow(binary, path=None, feed=None, expect_lines=None, scrape_seconds=0):
    """Follows `path` from its start (or stdin fed by `feed`) until every line is read, optionally
    scrapes in a loop, stops it with SIGTERM and returns its peak RSS."""
    args = [binary, "follow", *EXTRA_FLAGS, "--web.listen-address", "127.0.0.1:0"]
    if path:
        args += ["--from-beginning", path]
    else:
        args += ["--linger"]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        port = None
        deadline = time.time() + 60
        while port is None and time.time() < deadline:
            line = proc.stderr.readline().decode(errors="replace")
            match = re.search(r"url=http://127\.0\.0\.1:(\d+)/", line)
            if match:
                port = int(match.group(1))
        if port is None:
            raise SystemExit("follow did not say where it serves")
        threading.Thread(target=lambda: proc.stderr.read(), daemon=True).start()
        feeder = None
        if feed:
            feeder = threading.Thread(target=feed, args=(proc.stdin,))
            feeder.start()
            feeder.join()
        deadline = time.time() + 600
        while expect_lines is not None and lines_read(scrape(port)) < expect_lines:
            if time.time() > deadline:
                raise SystemExit("follow did not read every line in time")
            time.sleep(0.2)
        scrapes = 0
        end = time.time() + scrape_seconds
        while time.time() < end:
            for accept in ("", "application/openmetrics-text;version=1.0.0"):
                for gzip_ok in (False, True):
                    scrape(port, accept, gzip_ok)
                    scrapes += 1
        page = scrape(port)
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = status
        return usage.ru_maxrss * 1024, lines_read(page), scrapes
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def mib(n):
    return f"{n / MIB:.1f} MiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--case", action="append", help="run only these cases")
    parser.add_argument("--scrape-seconds", type=float, default=30)
    parser.add_argument("--scrape-label-bytes", type=int, default=1024,
                        help="host and control_id length of the scrape case's series (default: the cap)")
    parser.add_argument("--extra-flag", action="append", default=[],
                        help="a flag for every exporter run (e.g. --max-label-bytes=256)")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    EXTRA_FLAGS.extend(args.extra_flag)
    cases = args.case or ["pairs", "labels", "long_line", "deep_json", "scrape"]
    tmp = tempfile.mkdtemp(prefix="nle-memory-bench-")
    results = []
    try:
        for case in cases:
            path = os.path.join(tmp, case + ".log")
            feed = None
            if case == "pairs":
                n = write_pairs(path, 1_000_000 // scale)
            elif case == "labels":
                n = write_labels(path, 200 // scale, 1_000_000, 1_000)  # lines stay under the 1 MiB cap
            elif case == "deep_json":
                n = write_deep_json(path, 200 // scale, 100_000)
            elif case == "long_line":
                path, n = None, 0
                size = (1 << 30) // scale
                feed = lambda stream: pipe_long_line(stream, size)  # noqa: E731
            elif case == "scrape":
                n = write_labels(path, 10_000, args.scrape_label_bytes, args.scrape_label_bytes)
            else:
                raise SystemExit(f"unknown case {case}")
            if case != "scrape":
                rss, summary = run_replay(args.binary, path, feed)
                results.append((case, "replay", rss, summary))
                print(f"{case:10} replay  peak RSS {mib(rss):>11}   {summary}", flush=True)
            rss, lines, scrapes = run_follow(args.binary, path, feed, expect_lines=n if path else 1,
                                             scrape_seconds=args.scrape_seconds if case == "scrape" else 0)
            note = f"{lines} lines read" + (f", {scrapes} scrapes" if scrapes else "")
            results.append((case, "follow", rss, note))
            print(f"{case:10} follow  peak RSS {mib(rss):>11}   {note}", flush=True)
            if path:
                os.unlink(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    worst = max(r[2] for r in results)
    print(f"worst peak RSS: {mib(worst)} (goal: 64 MiB)")
    return 0 if worst <= 64 * MIB else 1


if __name__ == "__main__":
    sys.exit(main())
