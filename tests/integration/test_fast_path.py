"""replay's fast path (a candidate scan over blocks of lines, cmd/replay.cpp + parsers/candidate_scan)
prints exactly what the reference path prints (every line split by the LineSplitter and given to
the parser; NLE_REPLAY_REFERENCE=1): the whole exposition, self-metrics included, on every test
log, with reads so small that lines straddle them, CRLF, oversize lines, a missing final newline,
and files cut into parallel ranges."""
import os
import pathlib
import random
import shutil
import subprocess
import tempfile
import unittest

import harness

FORMATS = ("json", "flat", "text", "ansi", "journald", "mixed")
# Read sizes: 1 byte, sizes that cut every line somewhere, one SIMD chunk, and the default.
READ_SIZES = (None, "1", "7", "64", "333", "4096")


def replay(path, *flags, reference=False, read_bytes=None, parallel_min=None):
    env = dict(os.environ)
    env.pop("NLE_REPLAY_REFERENCE", None)
    if reference:
        env["NLE_REPLAY_REFERENCE"] = "1"
    if read_bytes:
        env["NLE_REPLAY_READ_BYTES"] = read_bytes
    if parallel_min:
        env["NLE_REPLAY_PARALLEL_MIN_BYTES"] = parallel_min
    result = subprocess.run([harness.BINARY, "replay", *map(str, flags), str(path)], env=env, capture_output=True,
                            timeout=300)
    return result.returncode, result.stdout.decode("utf-8")


def generate(directory, fmt, seed, lines, *extra):
    log, expected = directory / f"{fmt}-{seed}.log", directory / f"{fmt}-{seed}.prom"
    subprocess.run([harness.GEN_LOGS, "--format", fmt, "--lines", str(lines), "--seed", str(seed), "--restarts", "2",
                    "--out", log, "--expected", expected, *extra], check=True, capture_output=True)
    return log, expected.read_text(encoding="utf-8")


def with_oversize_lines(log, seed, count=20, sizes=(64, 65, 100, 300, 5000)):
    """Inserts long lines (some holding needles, some CRLF-ended) at random places."""
    rng = random.Random(seed)
    lines = log.read_bytes().split(b"\n")
    for _ in range(count):
        size = rng.choice(sizes)
        body = bytearray(rng.choice(b"abc xyz=") for _ in range(size))
        if rng.random() < 0.5:
            needle = rng.choice([b"report received", b"version=1", b"held by fleet-level gate"])
            at = rng.randrange(0, max(1, size - len(needle)))
            body[at:at + len(needle)] = needle
        if rng.random() < 0.3:
            body += b"\r"
        lines.insert(rng.randrange(0, len(lines)), bytes(body))
    log.write_bytes(b"\n".join(lines))


class FastPathTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-fast-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assert_same_as_reference(self, path, *flags, read_sizes=READ_SIZES, parallel_min=None):
        code, expected = replay(path, *flags, reference=True)
        self.assertEqual(code, 0, path)
        for size in read_sizes:
            with self.subTest(file=path.name, flags=flags, read_bytes=size):
                code, got = replay(path, *flags, read_bytes=size, parallel_min=parallel_min)
                self.assertEqual(code, 0)
                self.assertEqual(got, expected)
        return expected

    def test_golden_logs_read_the_same_on_the_fast_path(self):
        for path in sorted((harness.TESTDATA / "golden").glob("*.log")):
            self.assert_same_as_reference(path)

    def test_real_samples_read_the_same_on_the_fast_path(self):
        for path in sorted((harness.TESTDATA / "real").iterdir()):
            if path.suffix != ".prom":
                self.assert_same_as_reference(path)

    def test_a_tiny_line_cap_reads_the_same_on_the_fast_path(self):
        for path in sorted((harness.TESTDATA / "golden").glob("*.log")):
            for cap in ("64", "65", "100", "200"):  # the CLI accepts 64 and up
                self.assert_same_as_reference(path, "--max-line-bytes", cap, read_sizes=(None, "7", "100"))

    def test_generated_logs_of_every_format_read_the_same_on_the_fast_path(self):
        for fmt in FORMATS:
            for crlf in ((), ("--crlf",)):
                log, expected = generate(self.tmp, fmt, 11, 3000, *crlf)
                got = self.assert_same_as_reference(log, read_sizes=(None, "7", "333", "4096"))
                self.assertEqual(harness.cp_families(got), expected)

    def test_benchmark_mixes_read_the_same_on_the_fast_path(self):
        """The candidate screen's differential test end to end: tower-http request spans, many
        non-counting reports, spans on or off, long lines, in every shape; then the same logs with
        JSON lines cut short or joined to the next, as a crash leaves them."""
        mixes = (("--quiet-rate", "0.3", "--version-rate", "0.5", "--spans", "on", "--long-rate", "0.01"),
                 ("--event-rate", "0.2", "--quiet-rate", "0.3", "--spans", "off"),
                 ("--event-rate", "0.001", "--quiet-rate", "0.1", "--version-rate", "0.7", "--spans", "on"))
        for fmt in FORMATS:
            for i, knobs in enumerate(mixes):
                log, expected = generate(self.tmp, fmt, 17 + i, 3000, *knobs)
                got = self.assert_same_as_reference(log, read_sizes=(None, "333"))
                self.assertEqual(harness.cp_families(got), expected)
                rng = random.Random(i)
                lines = log.read_bytes().split(b"\n")
                for _ in range(40):
                    at = rng.randrange(len(lines))
                    lines[at] = lines[at][:rng.randrange(len(lines[at]) + 1)]
                    if rng.random() < 0.5 and at + 1 < len(lines):
                        lines[at] += lines.pop(at + 1)
                log.write_bytes(b"\n".join(lines))
                self.assert_same_as_reference(log, read_sizes=(None, "333"))

    def test_oversize_lines_and_a_missing_final_newline_read_the_same_on_the_fast_path(self):
        for fmt in ("json", "ansi", "journald", "mixed"):
            log, _ = generate(self.tmp, fmt, 5, 2000, *(("--crlf",) if fmt == "ansi" else ()))
            with_oversize_lines(log, seed=len(fmt))
            data = log.read_bytes().rstrip(b"\n")
            log.write_bytes(data)  # no final newline
            for cap in ("64", "100", "1000"):
                self.assert_same_as_reference(log, "--max-line-bytes", cap, read_sizes=(None, "7", "333"))

    def test_parallel_ranges_read_the_same_as_one_reference_stream(self):
        """Exemplars included: ranges merged in input order name the same latest events."""
        for fmt in ("text", "journald", "mixed"):
            log, expected = generate(self.tmp, fmt, 3, 4000)
            for output in ((), ("--output-format", "openmetrics")):
                code, reference = replay(log, "--threads", "1", *output, reference=True)
                self.assertEqual(code, 0)
                if output:
                    self.assertRegex(reference, r'\} [0-9]+ # \{event_id="[^"]+"\} 1 [0-9.]+\n')
                for threads in ("2", "3"):
                    with self.subTest(format=fmt, threads=threads, output=output):
                        code, got = replay(log, "--threads", threads, *output, parallel_min="1", read_bytes="4096")
                        self.assertEqual(code, 0)
                        self.assertEqual(got, reference)
                if not output:
                    self.assertEqual(harness.cp_families(reference), expected)

    @harness.slow
    def test_random_generated_logs_read_the_same_on_the_fast_path(self):
        rng = random.Random(2026)
        for round_ in range(12):
            fmt = rng.choice(FORMATS)
            extra = ["--crlf"] if rng.random() < 0.3 else []
            event_rate = rng.choice((0.001, 0.02, 0.2, 0.3, 0.9))
            extra += ["--event-rate", str(event_rate)]
            if event_rate <= 0.3 and rng.random() < 0.6:  # a mix of the benchmark's kind, at random
                quiet = rng.choice((0.0, 0.1, 0.3))
                extra += ["--quiet-rate", str(quiet), "--version-rate", str(rng.choice((0.0, 0.3, 0.69 - quiet))),
                          "--spans", rng.choice(("on", "off", "some")), "--long-rate", rng.choice(("0", "0.002"))]
            log, expected = generate(self.tmp, fmt, rng.randrange(1, 1 << 30), rng.randrange(1, 20000), *extra)
            if rng.random() < 0.3:
                with_oversize_lines(log, seed=round_)
            if rng.random() < 0.3:
                log.write_bytes(log.read_bytes().rstrip(b"\n"))
            size = str(rng.choice((1, 5, 63, 64, 65, 1000, 65536)))
            cap = rng.choice((None, "64", "300", "4096"))
            flags = ("--max-line-bytes", cap) if cap else ()
            with self.subTest(round=round_, format=fmt, extra=extra, read_bytes=size, cap=cap):
                self.assert_same_as_reference(log, *flags, read_sizes=(None, size))
            log.unlink()


if __name__ == "__main__":
    unittest.main()
