"""`follow` reading stdin, as in `journalctl -u nixfleet-control-plane -o json -f | nixfleet-log-exporter
follow`: lines counted as they arrive, exit 0 at end of input (or linger), signals."""
import pathlib
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
from harness import cf_key, compliance_failure_line

REAL = harness.TESTDATA / "real"
LINES = "nixfleet_log_exporter_lines_read_total"
BYTES = "nixfleet_log_exporter_bytes_read_total"


class FollowStdinTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-follow-stdin-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def follow(self, *args):
        return harness.follow(*args, stdin=subprocess.PIPE, stderr_dir=self.tmp)

    def send(self, exporter, data: bytes):
        exporter.proc.stdin.write(data)
        exporter.proc.stdin.flush()

    def test_journalctl_json_piped_in_ends_with_the_expected_counts(self):
        expected = (REAL / "expected.prom").read_text()
        for name in ("journald-json.json", "journald-text.json", "journald-ansi.json", "journald-text-lines.json"):
            with self.subTest(input=name), self.follow("--linger") as exporter:
                data = (REAL / name).read_bytes()
                self.send(exporter, data)
                exporter.proc.stdin.close()
                exporter.wait_stderr("end of input")
                self.assertEqual(harness.cp_families(exporter.scrape()), expected)
                samples = exporter.samples()
                self.assertEqual(samples[BYTES], len(data))
                self.assertEqual(samples[LINES], data.count(b"\n"))
                self.assertEqual(samples['nixfleet_log_exporter_lines_skipped_total{reason="invalid_json"}'], 0)

    @harness.slow
    def test_a_large_generated_journald_stream_in_random_pieces_ends_with_the_expected_counts(self):
        generated, expected_path = self.tmp / "gen.json", self.tmp / "gen.prom"
        result = subprocess.run([harness.GEN_LOGS, "--format", "journald", "--bytes", "16M", "--seed", "4711",
                                 "--restarts", "2", "--out", generated, "--expected", expected_path],
                                capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        data = generated.read_bytes()
        rng = random.Random(4711)
        with self.follow("--linger") as exporter:
            position = 0
            while position < len(data):  # journald records are one line each: any cut is fair
                step = rng.choice([1, 13, 700, 4096, 65536, 1 << 20])
                self.send(exporter, data[position:position + step])
                position += step
            exporter.proc.stdin.close()
            exporter.wait_stderr("end of input", timeout=60)
            self.assertEqual(harness.cp_families(exporter.scrape()), expected_path.read_text())
            samples = exporter.samples()
            self.assertEqual(samples[LINES], data.count(b"\n"))
            self.assertEqual(samples[BYTES], len(data))

    def test_journalctl_json_written_record_by_record_is_counted_the_same(self):
        expected = (REAL / "expected.prom").read_text()
        with self.follow() as exporter:
            records = (REAL / "journald-ansi.json").read_bytes().splitlines(keepends=True)
            for record in records:
                self.send(exporter, record)
            harness.wait_for(lambda: harness.cp_families(exporter.scrape()) == expected, timeout=10,
                             message="the journald oracle's counts")
            # The last record ("agent checked in") moves no CP family: the counts above can be
            # complete while it is still unread (a slow build reads it a moment later), so wait
            # for the line count instead of reading it once.
            exporter.wait_value(LINES, len(records))

    def test_lines_arriving_slowly_are_counted_as_they_arrive(self):
        with self.follow() as exporter:
            for n in range(1, 4):
                began = time.monotonic()
                self.send(exporter, compliance_failure_line())
                samples = exporter.wait_value(cf_key(), n, timeout=2)
                self.assertLess(time.monotonic() - began, 1.0, "no buffering delay")
                self.assertEqual(samples[LINES], n)
            # A line in pieces counts once, after its newline.
            line = compliance_failure_line(host="web-08")
            self.send(exporter, line[:25])
            samples = exporter.wait_value(BYTES, 3 * len(compliance_failure_line()) + 25, timeout=2)
            self.assertNotIn(cf_key(host="web-08"), samples)
            self.assertEqual(samples[LINES], 3)
            self.send(exporter, line[25:])
            samples = exporter.wait_value(cf_key(host="web-08"), 1, timeout=2)
            self.assertEqual(samples[LINES], 4)
            self.assertIsNone(exporter.proc.poll())

    def test_a_multi_line_text_record_arriving_in_one_write_counts_with_fields_from_its_continuation_lines(self):
        lines = (REAL / "journald-text.cat").read_bytes().splitlines(keepends=True)
        first = next(i for i, line in enumerate(lines) if b"hostname=web-16" in line)
        with self.follow() as exporter:
            self.send(exporter, b"".join(lines[first:first + 3]))
            samples = exporter.wait_value(cf_key(host="web-16", control_id="CIS-4.1"), 1, timeout=5)
            self.assertEqual(samples[LINES], 3)

    def test_at_end_of_input_the_tool_exits_0_by_itself(self):
        with self.follow() as exporter:
            self.send(exporter, compliance_failure_line() * 2)
            exporter.wait_value(cf_key(), 2)
            exporter.proc.stdin.close()
            self.assertEqual(exporter.wait_exit(timeout=5), 0, exporter.stderr())
            self.assertIn("end of input", exporter.stderr())

    def test_linger_keeps_serving_the_final_counters_after_end_of_input_until_sigterm(self):
        with self.follow("--linger") as exporter:
            line = compliance_failure_line()
            self.send(exporter, line * 2 + line.rstrip(b"\n"))  # the last line has no newline
            exporter.proc.stdin.close()
            exporter.wait_stderr("end of input")
            samples = exporter.wait_value(cf_key(), 3)
            self.assertEqual(samples[LINES], 3, "an unterminated last line counts at end of input")
            self.assertEqual(samples[BYTES], 3 * len(line) - 1)
            for _ in range(3):
                self.assertIsNone(exporter.proc.poll())
                self.assertEqual(exporter.samples()[cf_key()], 3)
            began = time.monotonic()
            self.assertEqual(exporter.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - began, 1.0)

    def test_sigterm_while_waiting_for_stdin_exits_0_within_a_second(self):
        with self.follow() as exporter:
            self.send(exporter, compliance_failure_line())
            exporter.wait_value(cf_key(), 1)
            began = time.monotonic()
            exporter.proc.send_signal(signal.SIGTERM)
            self.assertEqual(exporter.wait_exit(timeout=5), 0, exporter.stderr())
            self.assertLess(time.monotonic() - began, 1.0)

    def test_sigint_while_waiting_for_stdin_exits_0_within_a_second(self):
        with self.follow() as exporter:
            began = time.monotonic()
            exporter.proc.send_signal(signal.SIGINT)
            self.assertEqual(exporter.wait_exit(timeout=5), 0, exporter.stderr())
            self.assertLess(time.monotonic() - began, 1.0)

    def test_sighup_on_stdin_keeps_counting_without_counting_twice(self):
        with self.follow() as exporter:
            self.send(exporter, compliance_failure_line())
            exporter.wait_value(cf_key(), 1)
            exporter.proc.send_signal(signal.SIGHUP)
            exporter.wait_stderr("SIGHUP")
            self.send(exporter, compliance_failure_line())
            samples = exporter.wait_value(cf_key(), 2)
            self.assertEqual(samples[LINES], 2)
            self.assertIsNone(exporter.proc.poll())

    def test_a_dash_reads_stdin_too(self):
        with self.follow("-") as exporter:
            self.send(exporter, compliance_failure_line())
            exporter.wait_value(cf_key(), 1)


if __name__ == "__main__":
    unittest.main()
