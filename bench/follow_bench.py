#!/usr/bin/env python3
"""Follow-mode benchmark for nixfleet-log-exporter (issue 5).

    python3 bench/follow_bench.py --binary build/cmd/nixfleet-log-exporter [--quick]

Three measurements, each repeated, medians quoted:

1. idle: a follower on a quiet file for --idle-seconds (60 s; 10 s with --quick). CPU time from
   /proc/PID/task/*/schedstat (ns on CPU, exact) and /proc/PID/stat (utime+stime, in ticks);
   wakeups = times any thread was scheduled in (schedstat field 3) and context switches
   (voluntary + involuntary, /proc/PID/task/*/status), per thread. Target: no periodic wakeups.
2. latency: append one event line (one write(2) with O_APPEND) to the followed file, then scrape
   /metrics over a kept-alive connection as fast as possible until the counter has moved; the
   delay is write -> first scrape showing it. --events (500) events, 5-15 ms apart so the
   follower is idle before each one. Target: p99 <= 20 ms.
3. scrape under ingest: a follower with --max-series large, seeded with 10,000 distinct
   (control_id, host) label sets; then a writer process appends nle_gen_logs JSON lines at
   --rate (100k lines/s) while `wrk` hammers /metrics; then (writer still running) the append ->
   scrape latency again with 10k series under ingest; finally every CP counter and
   lines_read_total must equal exactly what was written (no line lost). Also a wrk run before
   the writer starts (10k series, no ingest) to separate rendering cost from lock contention.
   Target: >= 5000 scrapes/s.
4. baselines: nle_static_http_server serving the exporter's own 10k-series body and nothing
   else, `raw` (one writev per response) and `httplib` (cpp-httplib with the exporter's
   settings), scraped by the same wrk before the writer starts and while the exporter ingests;
   the exporter's plain rate is quoted as a ratio of each, within one round.

Peak RSS (VmHWM) of the follower is reported for each phase. Everything runs on 127.0.0.1 with
the port chosen by the kernel (listen on :0, port read from the exporter's log); all processes
are in their own session and killed by pid at exit; temp files live under one temp directory
that is removed at exit. The whole run is bounded by --deadline seconds.
"""

import argparse
import atexit
import http.client
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

PROCS = []
TMPDIRS = []
CLK_TCK = os.sysconf("SC_CLK_TCK")

CF = b"nixfleet_compliance_failure_events_total"
CP_FAMILIES = (b"nixfleet_compliance_failure_events_total", b"nixfleet_gate_block_total",
               b"nixfleet_runtime_gate_error_events_total")
LINES_READ = b"nixfleet_log_exporter_lines_read_total"


# ---------------------------------------------------------------------------------------------
# Processes and cleanup.

def cleanup():
    for p in PROCS:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=5)
            except Exception:
                try:
                    p.kill()
                    p.wait(timeout=5)
                except Exception:
                    pass
    PROCS.clear()
    for d in TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)
    TMPDIRS.clear()


def on_signal(signum, _frame):
    raise SystemExit(f"stopped by signal {signum}")


def stop(p, timeout=5.0):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


class Exporter:
    """One `follow` process on 127.0.0.1:<free port>."""

    def __init__(self, binary, workdir, files, extra=()):
        self.log_path = os.path.join(workdir, f"exporter-{len(os.listdir(workdir))}.stderr")
        self.log = open(self.log_path, "wb")
        args = [binary, "follow", "--web.listen-address", "127.0.0.1:0", *extra, *files]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        PROCS.append(self.proc)
        self.pid = self.proc.pid
        self.port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            self.port = listening_port(self.pid)
            if self.port:
                break
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        if not self.port:
            raise RuntimeError("exporter did not start: " + open(self.log_path, "rb").read().decode(errors="replace"))
        s = Scraper(self.port)
        while time.monotonic() < deadline:
            try:
                if s.get("/-/ready", check=False)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.01)
        s.close()

    def close(self):
        stop(self.proc)
        self.log.close()

    def vm_hwm_kib(self):
        return proc_number(self.pid, "status", "VmHWM:")

    def bytes_read(self):
        """What the process has read so far (/proc/PID/io rchar): files, sockets and all."""
        return proc_number(self.pid, "io", "rchar:")


def proc_number(pid, name, key):
    """The first number on the line of /proc/PID/<name> that starts with `key`, or 0."""
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def listening_port(pid):
    """The TCP port `pid` listens on (from its socket fds and /proc/net/tcp), or None."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        with open(f"/proc/{pid}/net/tcp") as f:
            next(f)
            for line in f:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                    return int(cols[1].split(":")[1], 16)
    except OSError:
        pass
    return None


class Scraper:
    """A kept-alive HTTP/1.1 connection."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def get(self, path="/metrics", check=True):
        for attempt in range(3):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("GET", path)
                r = self.conn.getresponse()
                body = r.read()
                if check and r.status != 200:
                    raise RuntimeError(f"GET {path}: {r.status}")
                return r.status, body
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def series_value(body, key):
    """The value of the series line `key` (bytes, name{labels}) or 0 when absent."""
    i = body.find(b"\n" + key + b" ")
    if i < 0:
        return 0.0
    j = i + len(key) + 2
    return float(body[j:body.index(b"\n", j)])


def parse_families(body, families):
    out = {}
    for line in body.split(b"\n"):
        if not line or line.startswith(b"#"):
            continue
        name_end = line.find(b"{")
        name = line[:name_end] if name_end >= 0 else line[:line.find(b" ")]
        if name in families:
            key, _, value = line.rpartition(b" ")
            out[key] = float(value)
    return out


def event_line(control_id, host, ts=None):
    ts = ts or time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    return ('{"timestamp":"%s","level":"INFO","fields":{"message":"report received","hostname":"%s",'
            '"event":"compliance-failure","control_id":"%s"},"target":"report"}\n' % (ts, host, control_id)).encode()


def cf_key(control_id, host):
    return CF + b'{control_id="%s",host="%s"}' % (control_id.encode(), host.encode())


# ---------------------------------------------------------------------------------------------
# Per-process CPU and wakeups.

def proc_sample(pid):
    s = {"ticks": 0, "run_ns": 0, "sched_in": 0, "ctxsw": 0, "threads": {}}
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    s["ticks"] = int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, _wait_ns, slices = (int(x) for x in f.read().split())
            ctx = 0
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        ctx += int(line.split()[1])
        except OSError:
            continue
        s["run_ns"] += run_ns
        s["sched_in"] += slices
        s["ctxsw"] += ctx
        s["threads"][tid] = (slices, ctx)
    return s


# ---------------------------------------------------------------------------------------------
# Phases.

def phase_idle(binary, work, seconds):
    path = os.path.join(work, "idle.log")
    with open(path, "wb") as f:
        for i in range(100):
            f.write(event_line("CIS-1.1.1", f"web-{i:02d}"))
    ex = Exporter(binary, work, [path])
    try:
        s = Scraper(ex.port)
        s.get()  # one scrape, as Prometheus would, then the connection is closed
        s.close()
        time.sleep(2.0)  # let the closed keep-alive connection and thread pool settle
        a = proc_sample(ex.pid)
        t0 = time.monotonic()
        time.sleep(seconds)
        b = proc_sample(ex.pid)
        dt = time.monotonic() - t0
        per_thread = {tid: b["threads"][tid][0] - a["threads"].get(tid, (0, 0))[0] for tid in b["threads"]}
        return {
            "seconds": dt,
            "cpu_ms_schedstat": (b["run_ns"] - a["run_ns"]) / 1e6,
            "cpu_ms_stat": (b["ticks"] - a["ticks"]) * 1000.0 / CLK_TCK,
            "wakeups": b["sched_in"] - a["sched_in"],
            "ctxsw": b["ctxsw"] - a["ctxsw"],
            "busy_threads": {t: n for t, n in per_thread.items() if n},
            "threads": len(b["threads"]),
            "rss_kib": ex.vm_hwm_kib(),
        }
    finally:
        ex.close()


def probe_latency(port, path, n, key_control, key_host, gap_ms=(5, 15), timeout_s=2.0, rng=None):
    """Appends n events; returns (latencies in ms, timeouts, scrapes per probe, last count)."""
    rng = rng or random.Random(1)
    s = Scraper(port)
    key = cf_key(key_control, key_host)
    _, body = s.get()
    base = series_value(body, key)
    lat, timeouts, scrapes, durations = [], 0, [], []
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for i in range(n):
            time.sleep(rng.uniform(*gap_ms) / 1000.0)
            line = event_line(key_control, key_host)
            want = base + i + 1
            t0 = time.perf_counter()
            os.write(fd, line)
            k = 0
            while True:
                ts = time.perf_counter()
                _, body = s.get()
                k += 1
                t1 = time.perf_counter()
                durations.append((t1 - ts) * 1000.0)
                if series_value(body, key) >= want:
                    lat.append((t1 - t0) * 1000.0)
                    break
                if t1 - t0 > timeout_s:
                    timeouts += 1
                    break
            scrapes.append(k)
    finally:
        os.close(fd)
        s.close()
    return lat, timeouts, scrapes, durations


def phase_latency(binary, work, n, rng, state_file=False):
    """With state_file, every probe's scrape finds new counts and writes the state file first
    (follow serves only counts a restart restores): the cost of the restart guarantee."""
    path = os.path.join(work, "latency.log")
    open(path, "wb").close()
    extra = []
    if state_file:
        state = os.path.join(work, "latency-state.json")
        for leftover in (state, state + ".lock"):
            if os.path.exists(leftover):
                os.remove(leftover)
        extra = ["--state-file", state]
    ex = Exporter(binary, work, [path], extra)
    try:
        s = Scraper(ex.port)
        t = []
        for _ in range(50):  # resolution: how long one small scrape takes
            t0 = time.perf_counter()
            s.get()
            t.append((time.perf_counter() - t0) * 1000)
        s.close()
        lat, timeouts, scrapes, _ = probe_latency(ex.port, path, n, "CIS-LAT", "lat-host", rng=rng)
        return {"lat": lat, "timeouts": timeouts, "scrapes_per_probe": statistics.median(scrapes),
                "scrape_ms": statistics.median(t), "rss_kib": ex.vm_hwm_kib()}
    finally:
        ex.close()


def run_wrk(port, seconds, threads, conns, gzip=False):
    header = ["-H", "Accept-Encoding: gzip"] if gzip else []
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "--latency",
                          *header, f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True,
                         timeout=seconds + 30)
    text = out.stdout
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"Transfer/sec:\s*([\d.]+)(\w+)", text)
    mult = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}
    mbps = float(m.group(1)) * mult.get(m.group(2), 1) / 2 ** 20 if m else 0.0
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
    p99 = None
    if m:
        p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    return {"rps": rps, "mib_s": mbps, "errors": errors, "p99_ms": p99, "raw": text}


class Baseline:
    """nle_static_http_server (raw or httplib) serving a fixed body on 127.0.0.1:<free port>."""

    def __init__(self, tool, mode, body_path):
        self.proc = subprocess.Popen([tool, mode, body_path], stdout=subprocess.PIPE, text=True,
                                     start_new_session=True)
        PROCS.append(self.proc)
        self.port = int(self.proc.stdout.readline())

    def close(self):
        stop(self.proc)


def writer_main(argv):
    """Hidden mode: append SRC's lines to PATH, `reps` whole copies, at RATE lines/s."""
    path, src, rate, reps, batch_ms = argv[0], argv[1], float(argv[2]), int(argv[3]), float(argv[4])
    data = open(src, "rb").read()
    ends = [m.end() for m in re.finditer(b"\n", data)]
    starts = [0] + ends[:-1]
    n = len(ends)
    total = n * reps
    per_batch = max(1, int(rate * batch_ms / 1000.0))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    t0 = time.perf_counter()
    written = 0
    nbytes = 0
    max_behind = 0.0
    k = 0
    while written < total:
        due = t0 + k * batch_ms / 1000.0
        now = time.perf_counter()
        if now < due:
            time.sleep(due - now)
        else:
            max_behind = max(max_behind, now - due)
        count = min(per_batch, total - written)
        a = written % n
        b = a + count
        if b <= n:
            chunk = data[starts[a]:ends[b - 1]]
        else:
            chunk = data[starts[a]:] + data[:ends[b - n - 1]]
        view = memoryview(chunk)
        while view:
            w = os.write(fd, view)
            view = view[w:]
        nbytes += len(chunk)
        written += count
        k += 1
    el = time.perf_counter() - t0
    os.close(fd)
    print(json.dumps({"lines": written, "bytes": nbytes, "seconds": el, "rate": written / el,
                      "max_behind_ms": max_behind * 1000}))


def phase_ingest(binary, gen, work, args, rng):
    # The noise/event source: nle_gen_logs JSON and its expected counters.
    src = os.path.join(work, "gen.log")
    expected_path = os.path.join(work, "gen.prom")
    subprocess.run([gen, "--format", "json", "--lines", str(args.gen_lines), "--seed", "11", "--out", src,
                    "--expected", expected_path], check=True, capture_output=True, timeout=120)
    gen_expected = parse_families(open(expected_path, "rb").read(), CP_FAMILIES)

    path = os.path.join(work, "ingest.log")
    seed = {}
    with open(path, "wb") as f:
        for i in range(args.series):
            c, h = f"SEED-C{i % 100:03d}", f"seed-h{i // 100:04d}"
            f.write(event_line(c, h))
            seed[cf_key(c, h)] = 1.0
    ex = Exporter(binary, work, [path], ["--from-beginning", "--max-series", str(args.series * 10)])
    try:
        s = Scraper(ex.port)
        deadline = time.monotonic() + 60
        while True:
            _, body = s.get()
            if series_value(body, LINES_READ) >= args.series or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        n_series = body.count(b"\n" + CF + b"{")
        body_kib = len(body) / 1024
        s.close()

        # wrk with 10k series and no ingestion: rendering cost alone. Then the baselines: servers
        # that only write this same body, the most the machine allows (see static_http_server.cpp).
        quiet = run_wrk(ex.port, args.wrk_quiet_seconds, args.wrk_threads, args.wrk_conns)
        quiet_gz = run_wrk(ex.port, args.wrk_quiet_seconds, args.wrk_threads, args.wrk_conns, gzip=True)
        body_path = os.path.join(work, "body.prom")
        with open(body_path, "wb") as f:
            f.write(body)
        baselines = [Baseline(args.baseline, mode, body_path) for mode in ("raw", "httplib")]
        quiet_raw, quiet_httplib = (run_wrk(b.port, args.wrk_quiet_seconds, args.wrk_threads, args.wrk_conns)
                                    for b in baselines)

        # Writer: whole copies of the generated file at --rate for long enough to cover wrk and
        # the latency probe.
        want_lines = args.rate * (args.lead_seconds + 4 * args.wrk_seconds + 2 + args.probe_seconds)
        reps = max(1, -(-int(want_lines) // args.gen_lines))
        writer = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--_writer", path, src,
                                   str(args.rate), str(reps), "5"], stdout=subprocess.PIPE, text=True,
                                  start_new_session=True)
        PROCS.append(writer)
        t_start = time.monotonic()
        time.sleep(args.lead_seconds)
        busy = run_wrk(ex.port, args.wrk_seconds, args.wrk_threads, args.wrk_conns)
        time.sleep(0.5)
        busy_gz = run_wrk(ex.port, args.wrk_seconds, args.wrk_threads, args.wrk_conns, gzip=True)
        # The baselines under the same ingestion: the writer and the follower take their share of
        # the cores while wrk scrapes a server that only writes the body.
        busy_raw, busy_httplib = (run_wrk(b.port, args.wrk_seconds, args.wrk_threads, args.wrk_conns)
                                  for b in baselines)
        for b in baselines:
            b.close()
        # Append -> scrape latency with 10k series while the writer is still going.
        probe_n = 0
        lat, timeouts, scrape_ms = [], 0, []
        if writer.poll() is None:
            probe_n = args.probe_events
            lat, timeouts, _, scrape_ms = probe_latency(ex.port, path, probe_n, "CIS-LOADLAT", "loadlat-host",
                                             gap_ms=(5, 15), timeout_s=5.0, rng=rng)
        writer_alive_after_probe = writer.poll() is None
        out, _ = writer.communicate(timeout=600)
        PROCS.remove(writer)
        wstats = json.loads(out)
        t_writer_done = time.monotonic()

        # No line lost: wait until everything written was read, then compare every CP series.
        total_lines = args.series + wstats["lines"] + probe_n
        s = Scraper(ex.port)
        deadline = time.monotonic() + 120
        while True:
            _, body = s.get()
            got_lines = series_value(body, LINES_READ)
            if got_lines >= total_lines or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        catch_up = time.monotonic() - t_writer_done
        time.sleep(0.2)
        _, body = s.get()
        s.close()
        got = parse_families(body, CP_FAMILIES)
        want = dict(seed)
        for k, v in gen_expected.items():
            want[k] = want.get(k, 0.0) + v * reps
        if probe_n:
            want[cf_key("CIS-LOADLAT", "loadlat-host")] = float(probe_n)
        # The five known gates are present from the start at 0 in both.
        mism = [(k, want.get(k, 0.0), got.get(k, 0.0)) for k in set(want) | set(got)
                if want.get(k, 0.0) != got.get(k, 0.0)]
        got_lines = series_value(body, LINES_READ)
        return {
            "series": n_series, "body_kib": body_kib, "quiet": quiet, "quiet_gz": quiet_gz, "busy": busy, "busy_gz": busy_gz, "writer": wstats,
            "quiet_raw": quiet_raw, "quiet_httplib": quiet_httplib, "busy_raw": busy_raw, "busy_httplib": busy_httplib,
            "probe_scrape_ms": med(scrape_ms),
            "reps": reps, "lines_expected": total_lines, "lines_read": got_lines, "mismatches": mism,
            "catch_up_s": catch_up, "lat": lat, "timeouts": timeouts, "probe_under_ingest": writer_alive_after_probe,
            "rss_kib": ex.vm_hwm_kib(), "elapsed": time.monotonic() - t_start,
        }
    finally:
        ex.close()


# ---------------------------------------------------------------------------------------------
# Report.

WRK_RUNS = ("quiet", "quiet_gz", "quiet_raw", "quiet_httplib", "busy", "busy_gz", "busy_raw", "busy_httplib")


def ratio(run, baseline):
    return run["rps"] / baseline["rps"] if baseline["rps"] else float("nan")


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    free = subprocess.run(["free", "-h"], capture_output=True, text=True).stdout.strip()
    mem = free.splitlines()[1].split()[1] if free else "?"
    return {"nproc": os.cpu_count(), "model": model, "mem": mem, "free": free, "kernel": os.uname().release}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--_writer":
        writer_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", required=True, help="nixfleet-log-exporter")
    ap.add_argument("--gen", help="nle_gen_logs (default: ../bench/nle_gen_logs next to --binary's cmd/)")
    ap.add_argument("--quick", action="store_true", help="short smoke run (about a minute)")
    ap.add_argument("--repeats", type=int, help="rounds of latency and ingest phases (default 3; quick 1)")
    ap.add_argument("--idle-seconds", type=float, help="idle window (default 60; quick 10)")
    ap.add_argument("--events", type=int, help="latency events per round (default 500; quick 100)")
    ap.add_argument("--series", type=int, default=10000, help="distinct label sets seeded (default 10000)")
    ap.add_argument("--rate", type=float, default=100000, help="writer lines/s (default 100000)")
    ap.add_argument("--wrk-seconds", type=int, help="wrk while ingesting (default 10; quick 4)")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--wrk-conns", type=int, default=4, help="the server has 4 worker threads")
    ap.add_argument("--baseline", help="nle_static_http_server (default: next to --gen)")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--deadline", type=float, help="abort after this many seconds (default 900; quick 240)")
    args = ap.parse_args()
    q = args.quick
    args.repeats = args.repeats or (1 if q else 3)
    args.idle_seconds = args.idle_seconds or (10 if q else 60)
    args.events = args.events or (100 if q else 500)
    args.wrk_seconds = args.wrk_seconds or (4 if q else 10)
    args.wrk_quiet_seconds = 2 if q else 4
    args.lead_seconds = 1.0
    args.probe_events = 50 if q else 100
    args.probe_seconds = args.probe_events * 0.03 + 2
    args.gen_lines = 100000 if q else 200000
    args.deadline = args.deadline or (240 if q else 900)

    binary = os.path.abspath(args.binary)
    gen = args.gen or os.path.join(os.path.dirname(os.path.dirname(binary)), "bench", "nle_gen_logs")
    args.baseline = args.baseline or os.path.join(os.path.dirname(gen), "nle_static_http_server")
    for tool in (binary, gen, args.baseline):
        if not os.access(tool, os.X_OK):
            sys.exit(f"not executable: {tool} (build it, or pass --gen)")
    if shutil.which("wrk") is None:
        sys.exit("wrk not found (Debian: apt-get install wrk)")

    atexit.register(cleanup)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGALRM):
        signal.signal(sig, on_signal)
    signal.alarm(int(args.deadline))
    work = tempfile.mkdtemp(prefix="nle-follow-bench-")
    TMPDIRS.append(work)
    rng = random.Random(5)
    m = machine()
    print(f"machine: {m['nproc']} x {m['model']}, {m['mem']} RAM, Linux {m['kernel']}", flush=True)

    t0 = time.monotonic()
    print(f"[idle] {args.idle_seconds:.0f} s ...", flush=True)
    idle = phase_idle(binary, work, args.idle_seconds)
    print(f"  cpu {idle['cpu_ms_schedstat']:.3f} ms, wakeups {idle['wakeups']}, ctxsw {idle['ctxsw']}", flush=True)

    lats, lat_runs, state_lats, state_lat_runs = [], [], [], []
    for r in range(args.repeats):
        print(f"[latency {r + 1}/{args.repeats}] {args.events} events ...", flush=True)
        res = phase_latency(binary, work, args.events, rng)
        lat_runs.append(res)
        lats += res["lat"]
        print(f"  p50 {pct(res['lat'], 50):.2f} ms  p99 {pct(res['lat'], 99):.2f} ms  timeouts {res['timeouts']}",
              flush=True)
        res = phase_latency(binary, work, args.events, rng, state_file=True)
        state_lat_runs.append(res)
        state_lats += res["lat"]
        print(f"  with --state-file: p50 {pct(res['lat'], 50):.2f} ms  p99 {pct(res['lat'], 99):.2f} ms  "
              f"timeouts {res['timeouts']}", flush=True)

    ing = []
    for r in range(args.repeats):
        print(f"[ingest+wrk {r + 1}/{args.repeats}] ...", flush=True)
        res = phase_ingest(binary, gen, work, args, rng)
        ing.append(res)
        print(f"  quiet {res['quiet']['rps']:.0f}/s (raw {res['quiet_raw']['rps']:.0f}, httplib "
              f"{res['quiet_httplib']['rps']:.0f})  busy {res['busy']['rps']:.0f}/s (raw {res['busy_raw']['rps']:.0f}, "
              f"httplib {res['busy_httplib']['rps']:.0f})", flush=True)
        print(f"  quiet+gzip {res['quiet_gz']['rps']:.0f}/s  "
              f"busy+gzip {res['busy_gz']['rps']:.0f}/s  writer "
              f"{res['writer']['rate']:.0f} lines/s  lost/mismatch {len(res['mismatches'])}  "
              f"lines {res['lines_read']:.0f}/{res['lines_expected']}", flush=True)
        for f in os.listdir(work):  # keep the disk use of one round only
            if f.startswith(("ingest", "gen")):
                os.remove(os.path.join(work, f))

    # ----- table
    all_load_lat = [x for r in ing for x in r["lat"]]
    exact = all(not r["mismatches"] and r["lines_read"] == r["lines_expected"] for r in ing)
    rows = [
        ("idle: CPU over %.0f s (schedstat)" % idle["seconds"], f"{idle['cpu_ms_schedstat']:.3f} ms", "~0"),
        ("idle: CPU (utime+stime)", f"{idle['cpu_ms_stat']:.0f} ms", "~0"),
        ("idle: wakeups (sched-ins, all %d threads)" % idle["threads"], f"{idle['wakeups']}", "0 periodic"),
        ("idle: context switches", f"{idle['ctxsw']}", ""),
        ("latency, idle follower: p50 / p90 / p99 / max (%d events)" % len(lats),
         f"{pct(lats, 50):.2f} / {pct(lats, 90):.2f} / {pct(lats, 99):.2f} / {max(lats):.2f} ms", "p99 <= 20 ms"),
        ("latency: per-round p99 (median of %d)" % len(lat_runs),
         f"{med([pct(r['lat'], 99) for r in lat_runs]):.2f} ms", ""),
        ("latency with --state-file (the scrape writes the state first): p50 / p90 / p99 / max",
         f"{pct(state_lats, 50):.2f} / {pct(state_lats, 90):.2f} / {pct(state_lats, 99):.2f} / {max(state_lats):.2f} ms",
         "p99 <= 20 ms"),
        ("latency: one small scrape (resolution)", f"{med([r['scrape_ms'] for r in lat_runs]):.2f} ms", ""),
        ("latency: timeouts (> 2 s)", f"{sum(r['timeouts'] for r in lat_runs)}", "0"),
        ("10k series: exposition size", f"{med([r['body_kib'] for r in ing]):.0f} KiB ({ing[0]['series']} CF series)", ""),
        ("scrapes/s, 10k series, no ingest (median)", f"{med([r['quiet']['rps'] for r in ing]):.0f}", ""),
        ("  baseline, same body, no ingest: raw writev server / cpp-httplib server",
         f"{med([r['quiet_raw']['rps'] for r in ing]):.0f} / {med([r['quiet_httplib']['rps'] for r in ing]):.0f}", ""),
        ("  exporter / baseline, no ingest: vs raw / vs cpp-httplib",
         f"{med([ratio(r['quiet'], r['quiet_raw']) for r in ing]):.2f}x / "
         f"{med([ratio(r['quiet'], r['quiet_httplib']) for r in ing]):.2f}x", ""),
        ("scrapes/s, 10k series, no ingest, Accept-Encoding: gzip (median)",
         f"{med([r['quiet_gz']['rps'] for r in ing]):.0f}", ""),
        ("scrapes/s, 10k series, while ingesting (median)", f"{med([r['busy']['rps'] for r in ing]):.0f}  "
         f"(runs: {', '.join('%.0f' % r['busy']['rps'] for r in ing)})", ">= 5000"),
        ("  wrk p99 latency while ingesting", f"{med([r['busy']['p99_ms'] or 0 for r in ing]):.1f} ms", ""),
        ("  baseline, same body, while the exporter ingests: raw writev / cpp-httplib",
         f"{med([r['busy_raw']['rps'] for r in ing]):.0f} / {med([r['busy_httplib']['rps'] for r in ing]):.0f}", ""),
        ("  exporter / baseline while ingesting: vs raw / vs cpp-httplib",
         f"{med([ratio(r['busy'], r['busy_raw']) for r in ing]):.2f}x / "
         f"{med([ratio(r['busy'], r['busy_httplib']) for r in ing]):.2f}x", ""),
        ("scrapes/s, 10k series, while ingesting, Accept-Encoding: gzip (as Prometheus asks)",
         f"{med([r['busy_gz']['rps'] for r in ing]):.0f}  (runs: {', '.join('%.0f' % r['busy_gz']['rps'] for r in ing)})",
         ""),
        ("  wrk errors (non-2xx, socket)",
         f"{sum(r[k]['errors'] for r in ing for k in WRK_RUNS)}",
         "0"),
        ("writer rate achieved (median)", f"{med([r['writer']['rate'] for r in ing]):.0f} lines/s, "
         f"{med([r['writer']['bytes'] / r['writer']['seconds'] for r in ing]) / 2**20:.1f} MiB/s", "~100000"),
        ("follower catch-up after writer stopped", f"{med([r['catch_up_s'] for r in ing]):.2f} s", ""),
        ("latency under ingest + 10k series: p50 / p99 (%d events)" % len(all_load_lat),
         (f"{pct(all_load_lat, 50):.2f} / {pct(all_load_lat, 99):.2f} ms (one scrape of the 10k body: "
          f"{med([r['probe_scrape_ms'] for r in ing]):.2f} ms)") if all_load_lat else "n/a", ""),
        ("no line lost (lines_read and every CP series exact)",
         "yes" if exact else "NO: " + "; ".join(f"lines {r['lines_read']:.0f}/{r['lines_expected']}, "
                                               f"{len(r['mismatches'])} series differ" for r in ing), "yes"),
        ("peak RSS (VmHWM): idle / latency / ingest",
         f"{idle['rss_kib'] / 1024:.1f} / {max(r['rss_kib'] for r in lat_runs) / 1024:.1f} / "
         f"{max(r['rss_kib'] for r in ing) / 1024:.1f} MiB", ""),
    ]
    print()
    print(f"Follow mode, {time.strftime('%Y-%m-%d')}: {args.repeats} round(s), "
          f"wrk -t{args.wrk_threads} -c{args.wrk_conns} -d{args.wrk_seconds}s, writer {args.rate:.0f} lines/s "
          f"of nle_gen_logs json ({args.gen_lines} lines x reps), {args.series} seeded series"
          f"{' (--quick)' if q else ''}")
    print(f"Machine: nproc {m['nproc']}, {m['model']}, {m['mem']} RAM, Linux {m['kernel']}")
    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    for a, b, c in rows:
        print(f"| {a} | {b} | {c} |")
    if idle["busy_threads"]:
        print(f"\nidle wakeups per thread (tid: sched-ins): {idle['busy_threads']}")
    for r in ing:
        if r["mismatches"]:
            print("\nfirst mismatches (series, expected, got):")
            for k, w, g in sorted(r["mismatches"])[:10]:
                print(f"  {k.decode(errors='replace')} {w:g} {g:g}")
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "idle": idle, "latency": lat_runs, "latency_state_file": state_lat_runs,
                       "ingest": [{k: (v if k != "mismatches" else [(a.decode(errors='replace'), b, c) for a, b, c in v])
                                   for k, v in r.items()} for r in ing]}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
