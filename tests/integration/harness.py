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
