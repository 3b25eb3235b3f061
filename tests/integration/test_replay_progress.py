"""Replay for people: progress on stderr when it is a terminal (a pty here), nothing on a pipe
unless --progress, and --quiet for neither progress nor the summary line."""
import gzip
import os
import pathlib
import pty
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

GOLDEN = harness.TESTDATA / "golden"
# One redraw on a terminal: carriage return, the line, erase to the end of the line.
REDRAW = re.compile(r"\rreplay: +(\d+\.\d)% ([\d.]+) MB of ([\d.]+) MB, file (\d+)/(\d+), [\d.]+ MB/s, ETA (?:\d+:\d\d|\?)\x1b\[K")
PROGRESS_LINE = re.compile(r"^replay: +(\d+\.\d)% ([\d.]+) MB of ([\d.]+) MB, file (\d+)/(\d+), [\d.]+ MB/s, ETA (\d+:\d\d|\?)$")


def run_on_terminal(*args):
    """Runs the binary with stderr on a pseudo-terminal; returns (exit code, stdout bytes, what the
    terminal received as text)."""
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.Popen([harness.BINARY, *map(str, args)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=terminal)
    finally:
        os.close(terminal)
    received = bytearray()
    try:
        while True:
            try:
                piece = os.read(controller, 65536)
            except OSError:  # EIO: the last holder of the terminal side closed it
                break
            if not piece:
                break
            received += piece
    finally:
        os.close(controller)
    stdout = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=60), stdout, received.decode(errors="replace").replace("\r\n", "\n")


class ReplayProgressTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-progress-"))
        self.plain = GOLDEN / "json.log"
        self.compressed = self.tmp / "text.log.1.gz"
        self.compressed.write_bytes(gzip.compress((GOLDEN / "text.log").read_bytes()))
        self.total = self.plain.stat().st_size + self.compressed.stat().st_size

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_on_a_terminal_progress_is_redrawn_in_place_then_cleared_before_the_summary(self):
        code, stdout, screen = run_on_terminal("replay", self.compressed, self.plain)
        self.assertEqual(code, 0, screen)
        self.assertEqual(stdout, harness.run("replay", self.compressed, self.plain).stdout)
        redraws = REDRAW.findall(screen)
        self.assertTrue(redraws, repr(screen))
        for percent, done, total, file, files in redraws:
            self.assertEqual(files, "2")
            self.assertIn(file, ("1", "2"))
            self.assertEqual(float(total), round(self.total / 1e6, 1))
            self.assertLessEqual(float(percent), 100.0)
        # Cleared at the end: the summary line starts on a clean line, and nothing follows it.
        cleared, _, summary = screen.rpartition("\r\x1b[K")
        self.assertTrue(cleared, repr(screen))
        self.assertRegex(summary, r"^replayed 2 inputs: .*\n$")

    def test_nothing_but_the_summary_when_stderr_is_not_a_terminal(self):
        result = harness.run("replay", self.compressed, self.plain)
        self.assertEqual(result.returncode, 0)
        self.assertRegex(result.stderr.decode(), r"^replayed 2 inputs: [^\n]*\n$")

    def test_progress_flag_writes_whole_lines_to_a_pipe_ending_at_all_bytes(self):
        result = harness.run("replay", "--progress", self.compressed, self.plain)
        self.assertEqual(result.returncode, 0)
        lines = result.stderr.decode().splitlines()
        self.assertNotIn("\x1b", result.stderr.decode())
        self.assertRegex(lines[-1], r"^replayed 2 inputs: ")
        progress = [PROGRESS_LINE.match(line) for line in lines[:-1]]
        self.assertTrue(progress and all(progress), lines)
        # The first says where it starts, the last that every byte (compressed ones as stored) is read.
        self.assertEqual(progress[0].group(1, 4), ("0.0", "1"))
        percent, done, total, file, files, _ = progress[-1].groups()
        self.assertEqual((percent, file, files), ("100.0", "2", "2"))
        self.assertEqual(done, total)
        self.assertEqual(float(total), round(self.total / 1e6, 1))

    def test_progress_of_stdin_has_no_total_percent_or_eta(self):
        result = harness.run("replay", "--progress", "-", stdin=self.plain.read_bytes())
        self.assertEqual(result.returncode, 0)
        lines = result.stderr.decode().splitlines()
        for line in lines[:-1]:
            self.assertRegex(line, r"^replay: [\d.]+ MB, file 1/1, [\d.]+ MB/s$")
        self.assertGreaterEqual(len(lines), 3)

    def test_quiet_drops_progress_and_summary_even_on_a_terminal(self):
        code, stdout, screen = run_on_terminal("replay", "--quiet", self.compressed, self.plain)
        self.assertEqual(code, 0)
        self.assertEqual(screen, "")
        self.assertIn(b"nixfleet_gate_block_total", stdout)
        self.assertEqual(harness.run("replay", "--quiet", self.plain).stderr, b"")

    def test_quiet_still_names_an_input_it_cannot_read(self):
        result = harness.run("replay", "--quiet", self.tmp / "missing.log", self.plain)
        self.assertEqual(result.returncode, 1)
        self.assertRegex(result.stderr.decode(), r"^nixfleet-log-exporter: cannot read .*missing\.log: No such file or directory\n$")

    def test_quiet_and_progress_together_are_a_usage_error(self):
        result = harness.run("replay", "--quiet", "--progress", self.plain)
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()
