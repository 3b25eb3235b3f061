"""--state-file: counters that never reset. Restarts, crashes, and rotation or truncation while
stopped end with exactly the counts of one clean pass over the log."""
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
import journal_fixture

LINES_READ = "nixfleet_log_exporter_lines_read_total"


def event_lines(n, host="web-07", start=0):
    return b"".join(harness.compliance_failure_line(host=f"{host}-{start + i % 3}") for i in range(n))


class StateFileTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-state-"))
        self.log = self.tmp / "cp.log"
        self.state = self.tmp / "state.json"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def follow(self, *extra, **kwargs):
        return harness.follow(self.log, "--state-file", self.state, "--state-interval", "20ms", *extra,
                              stderr_dir=self.tmp, **kwargs)

    def total_events(self, exporter):
        return exporter.samples().get('nixfleet_log_exporter_events_total{kind="compliance_failure"}')

    def wait_events(self, exporter, n):
        exporter.wait_value('nixfleet_log_exporter_events_total{kind="compliance_failure"}', n)

    def saved_offset(self):
        try:
            files = json.loads(self.state.read_text())["files"]
        except (OSError, ValueError, KeyError):
            return 0
        return files[0]["offset"] if files else 0

    @harness.slow
    def test_sigkill_at_random_moments_ends_equal_to_a_clean_replay(self):
        subprocess.run([harness.GEN_LOGS, "--format", "mixed", "--bytes", "160M", "--seed", "41", "--out", self.log,
                        "--expected", self.tmp / "expected.prom"], check=True, capture_output=True)
        clean = harness.run("replay", self.log, timeout=300).stdout.decode()
        lines = harness.parse_exposition(clean)[LINES_READ]
        size = self.log.stat().st_size
        rng = random.Random(20261124)
        offsets = []
        # The kills follow the exporter's progress, not the clock: a wall-clock schedule lands every kill
        # after the end on a machine that reads 160 MB faster than the schedule assumed. The first two
        # kills come at random early moments (before or around the first save); the others once the
        # saved offset has passed a random point further into the file, plus a random few ms.
        for attempt in range(8):
            exporter = harness.start_follow(self.log, "--from-beginning", "--state-file", self.state,
                                            "--state-interval", "20ms", wait_ready=False, stderr_dir=self.tmp)
            if attempt < 2:
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                target = self.saved_offset() + (size - self.saved_offset()) * rng.uniform(0.1, 0.4)
                deadline = time.monotonic() + 60
                while self.saved_offset() < target and exporter.proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.001)
                time.sleep(rng.uniform(0.0, 0.01))
            exporter.stop(signal.SIGKILL)
            offsets.append(self.saved_offset())
        self.assertTrue(any(0 < offset < size for offset in offsets), f"no kill landed mid-file: {offsets}")
        with self.follow("--from-beginning") as exporter:
            exporter.wait_value(LINES_READ, lines, timeout=120)
            final = exporter.scrape()
        self.assertEqual(harness.cp_families(final), harness.cp_families(clean))
        self.assertEqual(harness.cp_families(final), (self.tmp / "expected.prom").read_text())

    def test_clean_restart_does_not_count_twice(self):
        self.log.write_bytes(event_lines(30))
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 30)
        self.assertTrue(self.state.exists())
        with self.follow("--from-beginning") as exporter:
            harness.append(self.log, event_lines(5))
            self.wait_events(exporter, 35)
            time.sleep(0.2)  # nothing more may arrive: the first 30 must not be read again
            self.assertEqual(self.total_events(exporter), 35)

    def test_a_file_grown_while_stopped_resumes_at_the_saved_offset(self):
        self.log.write_bytes(event_lines(10))
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 10)
        harness.append(self.log, event_lines(7))
        with self.follow() as exporter:  # no --from-beginning: the saved position still wins
            self.wait_events(exporter, 17)

    def test_rotation_while_stopped_finishes_the_old_file_then_reads_the_new(self):
        self.log.write_bytes(event_lines(10))
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 10)
        harness.append(self.log, event_lines(4) + harness.compliance_failure_line(host="last")[:-1])  # no newline
        os.rename(self.log, self.tmp / "cp.log.1")
        self.log.write_bytes(event_lines(6))
        with self.follow() as exporter:
            self.wait_events(exporter, 21)
            time.sleep(0.2)
            self.assertEqual(self.total_events(exporter), 21)

    def test_double_rotation_while_stopped_reads_every_file_once_oldest_first(self):
        self.log.write_bytes(event_lines(10))
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 10)
        harness.append(self.log, event_lines(2))          # the rest of the file we were reading
        os.rename(self.log, self.tmp / "cp.log.1")
        self.log.write_bytes(event_lines(3))               # a whole file written while stopped
        os.rename(self.tmp / "cp.log.1", self.tmp / "cp.log.2")
        os.rename(self.log, self.tmp / "cp.log.1")
        self.log.write_bytes(event_lines(4))
        with self.follow() as exporter:
            self.wait_events(exporter, 19)
            time.sleep(0.2)
            self.assertEqual(self.total_events(exporter), 19)

    def test_truncation_while_stopped_reads_from_zero_and_counts_it(self):
        self.log.write_bytes(event_lines(10))
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 10)
        self.log.write_bytes(event_lines(3))  # copytruncate while stopped, then new writes
        with self.follow() as exporter:
            samples = exporter.wait_value('nixfleet_log_exporter_events_total{kind="compliance_failure"}', 13)
            self.assertEqual(samples["nixfleet_log_exporter_truncations_total"], 1)

    def test_replacement_while_stopped_is_read_from_zero(self):
        first = event_lines(10, host="old")
        self.log.write_bytes(first)
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 10)
        # Same size, same inode, other bytes: only the fingerprint can tell.
        replacement = event_lines(10, host="new")
        self.assertEqual(len(replacement), len(first))
        with open(self.log, "r+b") as f:
            f.write(replacement)
        with self.follow() as exporter:
            self.wait_events(exporter, 20)

    def test_a_file_gone_for_good_is_said_once_and_the_rest_goes_on(self):
        other = self.tmp / "other.log"
        self.log.write_bytes(event_lines(4))
        other.write_bytes(event_lines(3))
        with harness.follow(self.log, other, "--from-beginning", "--state-file", self.state, stderr_dir=self.tmp) as exporter:
            self.wait_events(exporter, 7)
        self.log.unlink()
        with harness.follow(self.log, other, "--state-file", self.state, stderr_dir=self.tmp) as exporter:
            harness.append(other, event_lines(2))
            self.wait_events(exporter, 9)

    def test_counters_survive_restarts_with_their_created_time(self):
        self.log.write_bytes(event_lines(3))
        with self.follow("--from-beginning") as exporter:
            self.wait_events(exporter, 3)
            om = {"Accept": "application/openmetrics-text;version=1.0.0"}
            created = [l for l in exporter.scrape(om).splitlines() if l.startswith("nixfleet_compliance_failure_events_created")]
        time.sleep(1.1)
        with self.follow() as exporter:
            self.wait_events(exporter, 3)
            again = [l for l in exporter.scrape(om).splitlines() if l.startswith("nixfleet_compliance_failure_events_created")]
        self.assertEqual(created, again)

    def test_corrupt_state_file_is_refused_with_a_clear_message(self):
        self.log.write_bytes(event_lines(2))
        for name, content in (("corrupt", b"{not json"), ("truncated", b'{"format": "nixfleet-log-exporter-state", "vers'),
                              ("wrong version", b'{"format": "nixfleet-log-exporter-state", "version": 99}'),
                              ("empty", b"")):
            with self.subTest(case=name):
                self.state.write_bytes(content)
                exporter = harness.start_follow(self.log, "--state-file", self.state, wait_ready=False, stderr_dir=self.tmp)
                code = exporter.wait_exit(timeout=10)
                self.assertNotEqual(code, 0)
                self.assertIn("state", exporter.stderr())
                self.assertIn("--state-reset", exporter.stderr())
                self.assertEqual(self.state.read_bytes(), content, "a refused state file must be left as it was")

    def test_state_reset_starts_over_explicitly(self):
        self.log.write_bytes(event_lines(2))
        self.state.write_bytes(b"{not json")
        with self.follow("--from-beginning", "--state-reset") as exporter:
            self.wait_events(exporter, 2)
        with self.follow() as exporter:
            self.wait_events(exporter, 2)

    def test_stdin_records_the_last_journald_cursor_for_the_cursor_command(self):
        records = (harness.TESTDATA / "real" / "journald-text.json").read_bytes()
        last = [l for l in records.splitlines() if l.strip()][-1]
        expected_cursor = json.loads(last)["__CURSOR"]
        exporter = harness.start_follow("--state-file", self.state, stdin=subprocess.PIPE, stderr_dir=self.tmp)
        exporter.proc.stdin.write(records)
        exporter.proc.stdin.close()
        self.assertEqual(exporter.wait_exit(timeout=20), 0)
        result = harness.run("cursor", "--state-file", self.state)
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        self.assertEqual(result.stdout.decode().strip(), expected_cursor)

    def test_a_stdin_run_that_reads_no_cursor_keeps_the_saved_one(self):
        records = (harness.TESTDATA / "real" / "journald-text.json").read_bytes()
        expected_cursor = json.loads([l for l in records.splitlines() if l.strip()][-1])["__CURSOR"]
        for stdin_bytes in (records, b"", b"2026-11-20T08:14:05Z  INFO http: request done status=200\n"):
            exporter = harness.start_follow("--state-file", self.state, stdin=subprocess.PIPE, stderr_dir=self.tmp)
            exporter.proc.stdin.write(stdin_bytes)
            exporter.proc.stdin.close()
            self.assertEqual(exporter.wait_exit(timeout=20), 0)
            result = harness.run("cursor", "--state-file", self.state)
            self.assertEqual((result.returncode, result.stdout.decode().strip()), (0, expected_cursor),
                             result.stderr.decode())

    def test_a_second_exporter_on_the_same_state_file_is_refused_and_the_first_counts_on(self):
        self.log.write_bytes(event_lines(10))
        lock_file = self.tmp / "state.json.lock"
        with self.follow("--from-beginning") as first:
            self.wait_events(first, 10)
            harness.wait_for(lambda: self.saved_offset() == self.log.stat().st_size, message="the first save")
            saved = self.state.read_bytes()
            started = time.monotonic()
            second = harness.start_follow(self.log, "--from-beginning", "--state-file", self.state,
                                          "--state-interval", "20ms", wait_ready=False, stderr_dir=self.tmp)
            try:
                code = second.wait_exit(timeout=10)
            finally:
                second.stop(signal.SIGKILL)
            elapsed = time.monotonic() - started
            message = second.stderr()
            self.assertEqual(code, 1, message)
            self.assertLess(elapsed, 5, "the second exporter must be refused at start, not after a while")
            self.assertIn(f"the state file {self.state} is in use", message)
            self.assertIn(f"pid {first.proc.pid}", message)
            self.assertIn(str(lock_file), message)
            self.assertNotIn("serving metrics", message)
            self.assertEqual(harness.sanitizer_report(second), "")
            self.assertEqual(self.state.read_bytes(), saved, "the refused exporter must not touch the state file")
            self.assertIsNone(first.proc.poll(), "the first exporter must keep running")
            harness.append(self.log, event_lines(5))
            self.wait_events(first, 15)
            time.sleep(0.2)
            self.assertEqual(self.total_events(first), 15)
        self.assertEqual(first.proc.returncode, 0, first.stderr())
        self.assertTrue(lock_file.exists(), "the lock file stays on disk")
        # The lock went with the first exporter: the next one starts and continues its counts.
        with self.follow("--from-beginning") as third:
            self.wait_events(third, 15)
            harness.append(self.log, event_lines(3))
            self.wait_events(third, 18)
            time.sleep(0.2)  # the 15 already counted must not be read again
            self.assertEqual(self.total_events(third), 18)

    def test_the_cursor_command_reads_the_state_file_while_the_exporter_holds_its_lock(self):
        records = (harness.TESTDATA / "real" / "journald-text.json").read_bytes()
        last = [l for l in records.splitlines() if l.strip()][-1]
        expected_cursor = json.loads(last)["__CURSOR"]
        with harness.follow("--state-file", self.state, "--state-interval", "20ms", "--linger",
                            stdin=subprocess.PIPE, stderr_dir=self.tmp) as exporter:
            exporter.proc.stdin.write(records)
            exporter.proc.stdin.close()
            exporter.wait_stderr("lingering")
            harness.wait_for(lambda: self.state.exists() and expected_cursor in self.state.read_text(),
                             message="the saved cursor")
            self.assertIsNone(exporter.proc.poll())
            result = harness.run("cursor", "--state-file", self.state)
            self.assertEqual(result.returncode, 0, result.stderr.decode())
            self.assertEqual(result.stdout.decode().strip(), expected_cursor)

    def test_cursor_without_a_state_file_exits_1(self):
        result = harness.run("cursor", "--state-file", self.tmp / "absent.json")
        self.assertEqual(result.returncode, 1)
        self.assertIn("absent.json", result.stderr.decode())


class JournalSourceTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-journal-"))
        self.journal = self.tmp / "journal"
        self.state = self.tmp / "state.json"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def messages(self, n, host="web-07"):
        text = [f"2026-11-20T08:14:03.511203Z  INFO report: report received hostname={host}-{i % 2} "
                f"event=compliance-failure control_id=CIS-1".encode() for i in range(n)]
        # The same, coloured: journald stores it as bytes (an array in -o json).
        text.append(b"\x1b[2m2026-11-20T08:14:04Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mreport\x1b[0m\x1b[2m:\x1b[0m report received "
                    b"\x1b[3mhostname\x1b[0m\x1b[2m=\x1b[0mcolour \x1b[3mevent\x1b[0m\x1b[2m=\x1b[0mruntime-gate-error")
        text.append(b"2026-11-20T08:14:05Z  INFO http: request done status=200")
        return text

    def follow(self, *extra):
        return harness.follow("--journal-directory", self.journal, "--journal-unit", "nixfleet-control-plane",
                              "--state-file", self.state, "--state-interval", "20ms", *extra, stderr_dir=self.tmp)

    def test_journal_directory_counts_every_entry_of_the_unit(self):
        journal_fixture.make_journal(self.journal, self.messages(5))
        journal_fixture.make_journal(self.journal, self.messages(3, host="other-unit"), unit="something-else.service")
        with self.follow("--from-beginning") as exporter:
            exporter.wait_samples({'nixfleet_log_exporter_events_total{kind="compliance_failure"}': 5,
                                   "nixfleet_runtime_gate_error_events_total": 1})

    def test_journal_killed_and_restarted_counts_exactly_once(self):
        journal_fixture.make_journal(self.journal, self.messages(6))
        exporter = harness.start_follow("--journal-directory", self.journal, "--from-beginning", "--state-file", self.state,
                                        "--state-interval", "20ms", stderr_dir=self.tmp)
        exporter.wait_value('nixfleet_log_exporter_events_total{kind="compliance_failure"}', 6)
        harness.wait_for(lambda: self.state.exists() and b"s=" in self.state.read_bytes(), message="a saved cursor")
        time.sleep(0.1)
        exporter.stop(signal.SIGKILL)
        journal_fixture.make_journal(self.journal, self.messages(4))
        with self.follow() as exporter:
            exporter.wait_samples({'nixfleet_log_exporter_events_total{kind="compliance_failure"}': 10,
                                   "nixfleet_runtime_gate_error_events_total": 2})
            time.sleep(0.2)
            self.assertEqual(exporter.value('nixfleet_log_exporter_events_total{kind="compliance_failure"}'), 10)
        self.assertEqual(harness.run("cursor", "--state-file", self.state).returncode, 0)

    def test_a_restart_that_finds_nothing_new_keeps_the_saved_cursor(self):
        # A restart at the journal's end reads no entry. Its first save must still hold the cursor
        # the counts belong to: saved without one, the next restart reads the journal from the
        # head again and counts everything twice (seen once in CI after several kill -9s).
        key = 'nixfleet_log_exporter_events_total{kind="compliance_failure"}'
        journal_fixture.make_journal(self.journal, self.messages(6))
        with self.follow("--from-beginning") as exporter:
            exporter.wait_value(key, 6)
        saved_cursor = harness.run("cursor", "--state-file", self.state).stdout.decode().strip()
        self.assertIn("s=", saved_cursor)
        for _ in range(2):
            exporter = harness.start_follow("--journal-directory", self.journal, "--from-beginning",
                                            "--state-file", self.state, "--state-interval", "20ms",
                                            stderr_dir=self.tmp)
            try:
                # Caught up: the scrape that sees it writes the state, as does the periodic save.
                exporter.wait_samples({key: 6, "nixfleet_log_exporter_journal_lag_seconds": 0})
                time.sleep(0.2)
            finally:
                exporter.stop(signal.SIGKILL)
            result = harness.run("cursor", "--state-file", self.state)
            self.assertEqual((result.returncode, result.stdout.decode().strip()), (0, saved_cursor), result.stderr.decode())
        journal_fixture.make_journal(self.journal, self.messages(2))
        with self.follow("--from-beginning") as exporter:
            exporter.wait_value(key, 8)
            time.sleep(0.2)
            self.assertEqual(exporter.value(key), 8)

    def test_a_first_run_from_the_tail_resumes_there_and_counts_what_came_while_stopped(self):
        key = 'nixfleet_log_exporter_events_total{kind="compliance_failure"}'
        journal_fixture.make_journal(self.journal, self.messages(3))
        with self.follow() as exporter:  # no --from-beginning: the three entries are history
            exporter.wait_samples({"nixfleet_log_exporter_journal_lag_seconds": 0})
            time.sleep(0.2)
            self.assertEqual(exporter.value(key, 0), 0)
        result = harness.run("cursor", "--state-file", self.state)
        self.assertEqual(result.returncode, 0, result.stderr.decode())  # the tail entry's cursor
        journal_fixture.make_journal(self.journal, self.messages(2))  # logged while stopped
        with self.follow() as exporter:
            exporter.wait_value(key, 2)
            time.sleep(0.2)
            self.assertEqual(exporter.value(key), 2)

    def test_journal_entries_added_while_running_are_counted(self):
        journal_fixture.make_journal(self.journal, self.messages(1))
        with self.follow("--from-beginning") as exporter:
            exporter.wait_value('nixfleet_log_exporter_events_total{kind="compliance_failure"}', 1)
            journal_fixture.make_journal(self.journal, self.messages(2))
            exporter.wait_value('nixfleet_log_exporter_events_total{kind="compliance_failure"}', 3)

    def test_a_missing_journal_directory_is_a_usage_error(self):
        result = harness.run("follow", "--journal-directory", self.tmp / "absent", "--web.listen-address", "127.0.0.1:0")
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()
