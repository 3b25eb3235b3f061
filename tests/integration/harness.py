"""Shared helpers for the integration tests: they run the real binary that CMake built."""
import gzip
import os
import pathlib
import re
import socket
import subprocess
import time
import urllib.request

BINARY = os.environ.get("NLE_BINARY", "")
GEN_LOGS = os.environ.get("NLE_GEN_LOGS", "")
TESTDATA = pathlib.Path(os.environ.get("NLE_TESTDATA_DIR", pathlib.Path(__file__).resolve().parents[2] / "testdata"))

# The exporter's own build info names the commit it was built from; goldens must not.
_EXPORTER_BUILD_INFO = re.compile(r'^(nixfleet_log_exporter_build_info)\{.*\} 1$', re.M)


def run(*args, stdin=None, timeout=60):
    """Runs the binary; returns CompletedProcess with bytes stdout/stderr."""
    return subprocess.run([BINARY, *map(str, args)], input=stdin, capture_output=True, timeout=timeout)


def normalise(exposition: str) -> str:
    return _EXPORTER_BUILD_INFO.sub(r'\1{revision="REVISION",version="VERSION"} 1', exposition)


def parse_exposition(text: str) -> dict:
    """Sample lines -> {'name{labels}': float}. Labels are kept as written."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples


def cp_families(text: str) -> str:
    """Only the control plane's families (what gen_logs' expected files hold), in order."""
    keep = []
    for line in text.splitlines():
        name = line.split(" ")[2] if line.startswith("# ") else re.split(r"[{ ]", line, 1)[0]
        if name.startswith("nixfleet_") and not name.startswith("nixfleet_log_exporter_"):
            keep.append(line)
    return "\n".join(keep) + "\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, headers=None, method="GET", timeout=5):
    """Returns (status, headers, body bytes); HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_for(predicate, timeout=10.0, interval=0.02, message="condition"):
    """Polls until predicate() is truthy; returns its value. No fixed sleeps in tests."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError) as error:
            last = error
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}; last: {last!r}")


def gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)


def slow(test):
    """Marks a test that generates large inputs: ctest label `slow`, left out of sanitizer runs."""
    return test


def concurrency(test):
    """Marks a test of threads meeting: ctest label `concurrency`, also run under ThreadSanitizer."""
    return test


def packaging(test):
    """Marks a test of what ships as built for release (the .deb installed on this machine, the
    system calls the binary makes): ctest label `packaging`, left out of sanitizer runs, whose
    binaries depend on the sanitizer runtime and make its system calls."""
    return test


# --- `follow` as a running server -------------------------------------------------------------
# Added for the follow/HTTP/Prometheus tests. Everything below only adds; nothing above changes.
import contextlib  # noqa: E402
import json as _json  # noqa: E402
import signal as _signal  # noqa: E402
import tempfile as _tempfile  # noqa: E402


class Exporter:
    """One `nixfleet-log-exporter follow` process on 127.0.0.1:<free port>; made by follow()."""

    def __init__(self, proc, port, stderr_path, telemetry_path="/metrics"):
        self.proc = proc
        self.port = port
        self.stderr_path = stderr_path
        self.telemetry_path = telemetry_path

    def url(self, path=None):
        return f"http://127.0.0.1:{self.port}{self.telemetry_path if path is None else path}"

    def stderr(self) -> str:
        return pathlib.Path(self.stderr_path).read_text(errors="replace")

    def scrape(self, headers=None) -> str:
        """GET the telemetry path; fails unless 200. Returns the body as text."""
        status, _, body = http_get(self.url(), headers=headers)
        if status != 200:
            raise AssertionError(f"scrape answered {status}: {body[:200]!r}")
        return body.decode()

    def samples(self) -> dict:
        return parse_exposition(self.scrape())

    def value(self, key, default=None):
        return self.samples().get(key, default)

    def wait_value(self, key, expected, timeout=10.0):
        """Polls /metrics until sample `key` equals `expected`; returns all samples at that time."""
        def check():
            samples = self.samples()
            return samples if samples.get(key) == expected else None
        try:
            return wait_for(check, timeout=timeout, message=f"{key} == {expected}")
        except AssertionError:
            raise AssertionError(f"timed out waiting for {key} == {expected}; it is {self.value(key)!r}\n"
                                 f"stderr:\n{self.stderr()}") from None

    def wait_samples(self, expected: dict, timeout=10.0):
        """Polls until every key of `expected` has its value; returns all samples at that time."""
        def check():
            samples = self.samples()
            return samples if all(samples.get(k) == v for k, v in expected.items()) else None
        try:
            return wait_for(check, timeout=timeout, message=f"{expected}")
        except AssertionError:
            samples = self.samples()
            got = {k: samples.get(k) for k in expected}
            raise AssertionError(f"timed out waiting for {expected}; got {got}\nstderr:\n{self.stderr()}") from None

    def wait_stderr(self, text, timeout=10.0):
        """Polls the tool's own log (stderr) until it contains `text`."""
        try:
            return wait_for(lambda: text in self.stderr(), timeout=timeout, message=f"stderr to say {text!r}")
        except AssertionError:
            raise AssertionError(f"stderr never said {text!r}:\n{self.stderr()}") from None

    def wait_exit(self, timeout=10.0):
        return self.proc.wait(timeout=timeout)

    def stop(self, sig=_signal.SIGTERM, timeout=5.0):
        """Sends `sig` (if still running) and returns the exit code; SIGKILL after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_follow(*args, stdin=subprocess.DEVNULL, port=None, telemetry_path="/metrics", wait_ready=True,
                 stderr_dir=None):
    """Starts `follow ARGS` on 127.0.0.1:<port or a free one>; waits for /-/ready unless told not to.
    The caller must stop() it; prefer the follow() context manager."""
    port = port or free_port()
    if stderr_dir is None:
        stderr_dir = _tempfile.mkdtemp(prefix="nle-follow-")
    stderr_path = os.path.join(stderr_dir, f"follow-{port}.stderr")
    command = [BINARY, "follow", "--web.listen-address", f"127.0.0.1:{port}", *map(str, args)]
    with open(stderr_path, "wb") as stderr_file:
        proc = subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=stderr_file)
    exporter = Exporter(proc, port, stderr_path, telemetry_path)
    if wait_ready:
        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"follow exited with {proc.returncode} before ready:\n{exporter.stderr()}")
            return http_get(exporter.url("/-/ready"), timeout=1)[0] == 200
        try:
            wait_for(ready, timeout=10, message=f"/-/ready on port {port}")
        except BaseException:
            exporter.stop(_signal.SIGKILL)
            raise
    return exporter


@contextlib.contextmanager
def follow(*args, **kwargs):
    """`with harness.follow(path, "--from-beginning") as exporter:` -- the process is always ended
    (SIGTERM, then SIGKILL after a deadline), even when the test fails."""
    exporter = start_follow(*args, **kwargs)
    try:
        yield exporter
    finally:
        exporter.stop()
        if exporter.proc.stdin:
            exporter.proc.stdin.close()
    # Reached only when the test body passed: a sanitizer build's report fails the test.
    report = sanitizer_report(exporter)
    if report:
        raise AssertionError(f"the sanitizer reported:\n{report}")


def scrape_cp(port, path="/metrics") -> str:
    """The CP families of one scrape of 127.0.0.1:PORT, as gen_logs' expected files hold them."""
    status, _, body = http_get(f"http://127.0.0.1:{port}{path}")
    if status != 200:
        raise AssertionError(f"scrape answered {status}")
    return cp_families(body.decode())


# CP lines for hand-written tests, in the JSON shape (a) of LOG-FORMAT.md.
def cp_json_line(message, target="report", level="INFO", **fields) -> bytes:
    record = {"timestamp": "2026-11-20T08:14:03.511203Z", "level": level,
              "fields": {"message": message, **fields}, "target": target}
    return (_json.dumps(record, ensure_ascii=False) + "\n").encode()


def compliance_failure_line(host="web-07", control_id="CIS-5.2.1") -> bytes:
    return cp_json_line("report received", hostname=host, event="compliance-failure", control_id=control_id)


def runtime_gate_error_line(host="web-09") -> bytes:
    return cp_json_line("report received", hostname=host, event="runtime-gate-error")


def gate_block_line(gate) -> bytes:
    return cp_json_line("dispatch: held by fleet-level gate", target="dispatch", gate=gate)


def cf_key(host="web-07", control_id="CIS-5.2.1") -> str:
    return f'nixfleet_compliance_failure_events_total{{control_id="{control_id}",host="{host}"}}'


def gate_key(gate) -> str:
    return f'nixfleet_gate_block_total{{gate="{gate}"}}'


def append(path, data: bytes):
    """One write(2) of `data` at the end of `path` (created if absent), flushed to the kernel."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class Barrier:
    """Appends a counting marker line (a gate block with a unique gate name) and waits until it is
    counted: lines are read in order per file, so everything written before it has been counted."""

    def __init__(self, exporter):
        self.exporter = exporter
        self.n = 0

    def __call__(self, path, timeout=15.0):
        self.n += 1
        gate = f"barrier-{self.n}"
        append(path, gate_block_line(gate))
        return self.exporter.wait_value(gate_key(gate), 1, timeout=timeout)


_RECORD_START = re.compile(rb"^(\{|(\x1b\[[0-9;]*m)*\d{4}-\d\d-\d\dT)")


def record_boundaries(data: bytes):
    """Byte offsets in a generated log where a new CP record starts (a line that is not the
    continuation of a multi-line text record), and the (start, end) of every single-line record.
    Splitting a write inside a single-line record, or rotating at a boundary, keeps records whole."""
    starts, singles = [], []
    offset, lines = 0, data.split(b"\n")
    spans = []
    for line in lines[:-1] if data.endswith(b"\n") else lines:
        spans.append((offset, offset + len(line) + 1, bool(_RECORD_START.match(line))))
        offset += len(line) + 1
    for i, (begin, end, is_start) in enumerate(spans):
        if is_start:
            starts.append(begin)
            next_is_start = i + 1 == len(spans) or spans[i + 1][2]
            if next_is_start:
                singles.append((begin, end))
    return starts, singles


def holds_open(exporter, path) -> bool:
    """Whether the exporter process has a file descriptor on the file `path` names now (same
    device and inode): a sync point for "the follower has opened it" without sleeping."""
    target = os.stat(path)
    fd_dir = f"/proc/{exporter.proc.pid}/fd"
    for name in os.listdir(fd_dir):
        try:
            st = os.stat(os.path.join(fd_dir, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


_SANITIZER = re.compile(r"WARNING: ThreadSanitizer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: ")


def sanitizer_report(exporter) -> str:
    """The tool's stderr from the first ThreadSanitizer/ASan/UBSan report on, or "" if none."""
    text = exporter.stderr()
    match = _SANITIZER.search(text)
    return text[match.start():match.start() + 4000] if match else ""


# --- a real Prometheus server ------------------------------------------------------------------
PROMETHEUS = os.environ.get("NLE_PROMETHEUS", "/usr/bin/prometheus")


def start_prometheus(test, tmp, config_text, *args):
    """Debian's Prometheus on a free loopback port with `config_text` as its configuration and
    `args` added (a --storage.tsdb.path among them); stopped (SIGTERM, then SIGKILL) by the test's
    cleanup. Returns its base URL once /-/ready answers."""
    tmp = pathlib.Path(tmp)
    port = free_port()
    config = tmp / "prometheus.yml"
    config.write_text(config_text)
    log_path = tmp / "prometheus.log"
    log = open(log_path, "wb")
    test.addCleanup(log.close)
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn", *args], stdin=subprocess.DEVNULL, stdout=log, stderr=log)

    def stop():
        if proc.poll() is None:
            proc.send_signal(_signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    test.addCleanup(stop)
    base = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
        return http_get(base + "/-/ready", timeout=1)[0] == 200
    wait_for(ready, timeout=30, message="prometheus /-/ready")
    return base


def prometheus_query(base, promql, at=None):
    """The result vector of an instant query (at Unix time `at`, default now): a list of
    (labels dict, float value)."""
    import urllib.parse
    params = {"query": promql}
    if at is not None:
        params["time"] = str(at)
    status, _, body = http_get(f"{base}/api/v1/query?" + urllib.parse.urlencode(params))
    if status != 200:
        raise AssertionError(f"query {promql!r} answered {status}: {body[:300]!r}")
    answer = _json.loads(body)
    if answer["status"] != "success":
        raise AssertionError(f"query {promql!r}: {answer}")
    return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]


# --- strict readers of the two formats ---------------------------------------------------------
# Debian's python3-prometheus-client is installed for Debian's own interpreter; the test runner's
# `python3` may be another one, so the OpenMetrics check runs under that interpreter.
DEBIAN_PYTHON = os.environ.get("NLE_DEBIAN_PYTHON", "/usr/bin/python3")
PROMTOOL = os.environ.get("NLE_PROMTOOL", "/usr/bin/promtool")


def parse_openmetrics(page: str) -> list:
    """The samples of an OpenMetrics page as the reference parser (prometheus_client's
    openmetrics.parser, strict) reads them: dicts with family, type, name, labels, value and
    exemplar (None, or labels, value, timestamp). Fails the test, quoting the parser, when the
    page is not valid OpenMetrics."""
    result = subprocess.run([DEBIAN_PYTHON, str(pathlib.Path(__file__).with_name("openmetrics_check.py"))],
                            input=page.encode("utf-8"), capture_output=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"not valid OpenMetrics: {result.stderr.decode(errors='replace')}")
    return _json.loads(result.stdout)


def promtool_check_metrics(page: str):
    """Fails the test unless `promtool check metrics` accepts the text 0.0.4 page without a word."""
    result = subprocess.run([PROMTOOL, "check", "metrics"], input=page.encode("utf-8"), capture_output=True, timeout=60)
    output = (result.stdout + result.stderr).decode(errors="replace")
    if result.returncode != 0 or output.strip():
        raise AssertionError(f"promtool check metrics: exit {result.returncode}: {output[:2000]}")


OPENMETRICS_ACCEPT = {"Accept": "application/openmetrics-text;version=1.0.0"}
