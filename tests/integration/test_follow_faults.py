"""Faults become metrics and exit codes: a state file that cannot be written (a full tmpfs), a
forgotten or unreadable input, and the stall metrics an operator alerts on."""
import os
import pathlib
import pty
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness

FAILURES = "nixfleet_log_exporter_state_save_failures_total"
LAST_SAVE = "nixfleet_log_exporter_state_last_save_timestamp_seconds"
LAST_READ = "nixfleet_log_exporter_last_read_timestamp_seconds"


def unread_key(path) -> str:
    return f'nixfleet_log_exporter_file_unread_bytes{{file="{path}"}}'


class SmallTmpfs:
    """A tmpfs of `size` mounted for one test (the tests run as root, as CI does)."""

    def __init__(self, root, size="256k"):
        self.path = pathlib.Path(root) / "tmpfs"
        self.path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)],
                                capture_output=True)
        if result.returncode != 0:
            raise AssertionError(f"cannot mount a tmpfs (the test needs root): {result.stderr.decode()}")

    def fill(self):
        """Writes a filler file until the file system is full."""
        with open(self.path / "filler", "ab", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass

    def free(self):
        (self.path / "filler").unlink()

    def unmount(self):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


class StateSaveFailureTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-faults-"))
        self.tmpfs = SmallTmpfs(self.tmp)
        self.log = self.tmp / "cp.log"
        self.state = self.tmpfs.path / "state.json"

    def tearDown(self):
        self.tmpfs.unmount()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_full_disk_is_counted_logged_once_retried_and_served_counts_never_run_ahead_of_the_file(self):
        harness.append(self.log, harness.compliance_failure_line() * 3)
        with harness.follow(self.log, "--from-beginning", "--state-file", self.state, "--state-interval", "100ms",
                            stderr_dir=self.tmp) as exporter:
            samples = exporter.wait_value(harness.cf_key(), 3)
            self.assertEqual(samples[FAILURES], 0)
            first_save = harness.wait_for(lambda: exporter.samples()[LAST_SAVE], message="a first save")
            self.assertLess(abs(first_save - time.time()), 60)

            self.tmpfs.fill()
            harness.append(self.log, harness.compliance_failure_line() * 2)
            # Saves fail now: counted, and the page keeps the last saved counts, never counts that a
            # restart could not restore.
            samples = harness.wait_for(lambda: (s := exporter.samples())[FAILURES] >= 3 and s,
                                       message="several failed saves")
            self.assertEqual(samples[harness.cf_key()], 3)
            self.assertEqual(samples[LAST_SAVE], first_save)
            self.assertGreaterEqual(samples[LAST_READ], first_save)  # reading went on
            stderr = exporter.stderr()
            self.assertEqual(stderr.count("cannot write the state file"), 1, stderr)  # once per streak
            self.assertIn("No space left on device", stderr)

            # Space again, and no new line: the next interval retries by itself and the counts catch up.
            self.tmpfs.free()
            samples = exporter.wait_value(harness.cf_key(), 5)
            self.assertGreater(samples[LAST_SAVE], first_save)
            exporter.wait_stderr("the state file is written again")
            failures = samples[FAILURES]
            time.sleep(0.5)
            self.assertEqual(exporter.samples()[FAILURES], failures)  # the streak ended

            # A final save that fails makes the exit code 1, with a message.
            self.tmpfs.fill()
            harness.append(self.log, harness.compliance_failure_line())
            harness.wait_for(lambda: exporter.samples()[FAILURES] > failures, message="a failed save of the new line")
            self.assertEqual(exporter.stop(), 1)
            self.assertIn("the final state could not be saved", exporter.stderr())
        # Nothing counted is lost: with space again, a restart resumes from the last good save and
        # reads the rest once.
        self.tmpfs.free()
        with harness.follow(self.log, "--state-file", self.state, stderr_dir=self.tmp) as exporter:
            exporter.wait_value(harness.cf_key(), 6)
            time.sleep(0.3)
            self.assertEqual(exporter.value(harness.cf_key()), 6)


class StallMetricsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-stall-"))
        self.log = self.tmp / "cp.log"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_unread_bytes_and_last_read_time_show_a_reader_that_has_not_read(self):
        harness.append(self.log, harness.runtime_gate_error_line())
        # Polling once an hour: bytes appended now stay unread, as if the reader were stuck.
        with harness.follow(self.log, "--from-beginning", "--force-polling", "--poll-interval", "3600s",
                            stderr_dir=self.tmp) as exporter:
            samples = exporter.wait_value("nixfleet_runtime_gate_error_events_total", 1)
            self.assertEqual(samples[unread_key(self.log)], 0)
            last_read = samples[LAST_READ]
            self.assertLess(abs(last_read - time.time()), 60)
            data = harness.compliance_failure_line() * 4
            harness.append(self.log, data)
            samples = exporter.wait_value(unread_key(self.log), len(data))
            self.assertEqual(samples[LAST_READ], last_read)
            self.assertNotIn(harness.cf_key(), samples)
            # SIGHUP reopens (and reads) the inputs: the backlog is read and the gauges follow.
            exporter.proc.send_signal(signal.SIGHUP)
            samples = exporter.wait_value(harness.cf_key(), 4)
            self.assertEqual(samples[unread_key(self.log)], 0)
            self.assertGreater(samples[LAST_READ], last_read)

    def test_before_anything_is_read_the_last_read_time_is_0_and_stdin_has_no_unread_bytes(self):
        with harness.follow("-", stdin=subprocess.PIPE, stderr_dir=self.tmp) as exporter:
            samples = exporter.samples()
            self.assertEqual(samples[LAST_READ], 0)
            self.assertFalse(any(k.startswith("nixfleet_log_exporter_file_unread_bytes") for k in samples))
            exporter.proc.stdin.write(harness.runtime_gate_error_line())
            exporter.proc.stdin.flush()
            samples = exporter.wait_value("nixfleet_runtime_gate_error_events_total", 1)
            self.assertGreater(samples[LAST_READ], 0)


class ForgottenInputTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-noinput-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def follow(self, *args, **kwargs):
        return subprocess.run([harness.BINARY, "follow", "--web.listen-address", "127.0.0.1:0", *map(str, args)],
                              capture_output=True, timeout=20, **kwargs)

    def test_stdin_null_or_closed_with_no_file_is_a_usage_error(self):
        # systemd's StandardInput=null with forgotten arguments must not exit 0 and restart forever.
        for name, stdin in (("/dev/null", subprocess.DEVNULL), ("closed", None)):
            with self.subTest(stdin=name):
                if stdin is None:
                    result = subprocess.run(f'exec 0<&-; exec "{harness.BINARY}" follow --web.listen-address 127.0.0.1:0',
                                            shell=True, capture_output=True, timeout=20)
                else:
                    result = self.follow(stdin=stdin)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertIn("nothing to follow", result.stderr.decode())
                self.assertIn("--journal-unit", result.stderr.decode())

    def test_stdin_a_terminal_is_a_usage_error(self):
        leader, follower = pty.openpty()
        try:
            result = self.follow(stdin=follower)
        finally:
            os.close(follower)
            os.close(leader)
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("stdin is a terminal", result.stderr.decode())

    def test_stdin_a_directory_exits_1(self):
        directory = os.open(self.tmp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            result = self.follow(stdin=directory)
        finally:
            os.close(directory)
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("stdin is a directory", result.stderr.decode())

    def test_each_journal_unit_flag_takes_one_value(self):
        result = self.follow("--journal-unit", "nixfleet-control-plane", self.tmp / "cp.log")
        self.assertEqual(result.returncode, 2, result.stderr)
        self.assertIn("do not also name files", result.stderr.decode())


if __name__ == "__main__":
    unittest.main()
