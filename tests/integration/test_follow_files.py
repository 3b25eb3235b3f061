"""`follow` on files, as an operator runs it beside the control plane: appends, rotation,
truncation, globs, polling, read errors and signals. Every test starts the real binary on a free
loopback port, drives real files, and checks exact counters by scraping /metrics."""
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

import harness
from harness import Barrier, append, cf_key, compliance_failure_line, gate_key

REAL = harness.TESTDATA / "real"
LINES = "nixfleet_log_exporter_lines_read_total"
BYTES = "nixfleet_log_exporter_bytes_read_total"
ROTATIONS = "nixfleet_log_exporter_rotations_total"
TRUNCATIONS = "nixfleet_log_exporter_truncations_total"
WATCHED = "nixfleet_log_exporter_files_watched"
RUNTIME = "nixfleet_runtime_gate_error_events_total"


def build_info_key(version, git_commit):
    return f'nixfleet_cp_build_info{{git_commit="{git_commit}",version="{version}"}}'


def starting_line(version, git_commit):
    return harness.cp_json_line("starting control plane", target="nixfleet_control_plane",
                                version=version, git_commit=git_commit)


class FollowFilesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-follow-files-"))
        self.log = self.tmp / "cp.log"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def follow(self, *args, **kwargs):
        return harness.follow(*args, stderr_dir=self.tmp, **kwargs)

    def started_at_end(self, exporter, files=1):
        """The first pass has opened the files that exist (so later appends are new lines)."""
        exporter.wait_value(WATCHED, files)

    # --- appends ---------------------------------------------------------------------------

    def test_a_line_written_in_several_pieces_counts_once_only_after_its_newline(self):
        self.log.touch()
        line = compliance_failure_line()
        pieces = [line[:7], line[7:40], line[40:-1], line[-1:]]
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            written = 0
            for piece in pieces[:-1]:
                append(self.log, piece)
                written += len(piece)
                # The bytes were read (bytes_read moved), yet no line and no event exist yet.
                samples = exporter.wait_value(BYTES, written)
                self.assertEqual(samples[LINES], 0)
                self.assertNotIn(cf_key(), samples)
            append(self.log, pieces[-1])
            samples = exporter.wait_value(cf_key(), 1)
            self.assertEqual(samples[LINES], 1)
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples[LINES], 2)
            self.assertEqual(samples[BYTES], len(line) + len(harness.gate_block_line("barrier-1")))

    def test_appended_lines_in_writes_of_every_size_each_count_exactly_once(self):
        self.log.touch()
        data = b"".join(compliance_failure_line(host=f"web-{i % 7}") for i in range(300))
        rng = random.Random(5)
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            offset = 0
            while offset < len(data):
                size = rng.choice([1, 2, 3, 17, 100, 333, 4096, 9000])
                append(self.log, data[offset:offset + size])
                offset += size
            samples = Barrier(exporter)(self.log)
            for i in range(7):
                self.assertEqual(samples[cf_key(host=f"web-{i}")], len(range(i, 300, 7)))
            self.assertEqual(samples[LINES], 301)
            self.assertEqual(samples[BYTES], len(data) + len(harness.gate_block_line("barrier-1")))

    # --- start position --------------------------------------------------------------------

    def test_by_default_existing_content_is_skipped_and_only_new_lines_count(self):
        self.log.write_bytes(compliance_failure_line() * 3)
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            append(self.log, compliance_failure_line(host="web-08"))
            samples = Barrier(exporter)(self.log)
            self.assertNotIn(cf_key(), samples)
            self.assertEqual(samples[cf_key(host="web-08")], 1)
            self.assertEqual(samples[LINES], 2)

    def test_a_line_half_written_at_start_up_is_dropped_not_counted_as_a_fragment(self):
        line = compliance_failure_line()
        self.log.write_bytes(line + line[:30])
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            append(self.log, line[30:] + compliance_failure_line(host="web-08"))
            samples = Barrier(exporter)(self.log)
            self.assertNotIn(cf_key(), samples)
            self.assertEqual(samples[cf_key(host="web-08")], 1)
            self.assertEqual(samples[LINES], 2)
            self.assertEqual(samples['nixfleet_log_exporter_lines_skipped_total{reason="unrecognised"}'], 0)

    def test_from_beginning_reads_the_existing_content_first(self):
        shutil.copy(REAL / "text.log", self.log)
        with self.follow("--from-beginning", self.log) as exporter:
            expected = (REAL / "expected.prom").read_text()
            harness.wait_for(lambda: harness.cp_families(exporter.scrape()) == expected, timeout=10,
                             message="the real text log's counts")
            samples = exporter.samples()
            self.assertEqual(samples[LINES], 98)
            self.assertEqual(samples[BYTES], (REAL / "text.log").stat().st_size)

    def test_a_multi_line_text_record_written_in_one_write_counts_with_fields_from_its_continuation_lines(self):
        # web-16's summary value spans three physical lines; event= and control_id= are on the last.
        lines = (REAL / "text.log").read_bytes().splitlines(keepends=True)
        first = next(i for i, line in enumerate(lines) if b"hostname=web-16" in line)
        record = b"".join(lines[first:first + 3])
        self.assertIn(b"control_id=CIS-4.1", lines[first + 2])
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            append(self.log, record)
            samples = exporter.wait_value(cf_key(host="web-16", control_id="CIS-4.1"), 1)
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key(host="web-16", control_id="CIS-4.1")], 1)
            self.assertEqual(samples['nixfleet_log_exporter_events_total{kind="compliance_failure"}'], 1)
            self.assertEqual(samples[LINES], 4)

    # --- rotation and truncation -----------------------------------------------------------

    def rename_rotation(self, exporter):
        """logrotate `create`: cp.log -> cp.log.1 (the writer still adds to it, the last line
        without a newline), then a new cp.log. Checks the exact outcome."""
        self.started_at_end(exporter)
        append(self.log, compliance_failure_line() * 2)
        exporter.wait_value(cf_key(), 2)
        os.rename(self.log, self.tmp / "cp.log.1")
        append(self.tmp / "cp.log.1", starting_line("0.9.3", "0ld0ld00"))
        append(self.tmp / "cp.log.1", compliance_failure_line(host="web-08").rstrip(b"\n"))  # unterminated
        append(self.log, starting_line("0.9.4", "new0new0") + compliance_failure_line(host="web-09"))
        samples = Barrier(exporter)(self.log)
        self.assertEqual(samples[cf_key()], 2)
        self.assertEqual(samples[cf_key(host="web-08")], 1, "the old file's unterminated last line counts")
        self.assertEqual(samples[cf_key(host="web-09")], 1)
        self.assertEqual(samples[ROTATIONS], 1)
        self.assertEqual(samples[TRUNCATIONS], 0)
        self.assertEqual(samples[LINES], 7)
        # The old file was finished before the new one was read, so the new one's build info wins.
        self.assertEqual(samples.get(build_info_key("0.9.4", "new0new0")), 1, exporter.scrape())
        # The old file is closed once finished; only the new one stays open.
        exporter.wait_value(WATCHED, 1)

    def test_rename_rotation_reads_the_old_file_to_its_end_first_including_an_unterminated_last_line(self):
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.rename_rotation(exporter)

    def test_force_polling_follows_a_rename_rotation_the_same_way(self):
        self.log.touch()
        with self.follow("--force-polling", "--poll-interval", "50ms", self.log) as exporter:
            exporter.wait_stderr("poll_interval=50ms")
            self.rename_rotation(exporter)

    def test_force_polling_follows_a_copytruncate_the_same_way(self):
        self.log.touch()
        with self.follow("--force-polling", "--poll-interval", "50ms", self.log) as exporter:
            self.copytruncate(exporter)

    def copytruncate(self, exporter):
        self.started_at_end(exporter)
        append(self.log, compliance_failure_line() * 3)
        Barrier(exporter)(self.log)
        shutil.copyfile(self.log, self.tmp / "cp.log.1")
        os.truncate(self.log, 0)
        exporter.wait_value(TRUNCATIONS, 1)
        append(self.log, compliance_failure_line(host="web-08"))
        barrier = Barrier(exporter)
        barrier.n = 1
        samples = barrier(self.log)
        self.assertEqual(samples[cf_key()], 3, "nothing before the truncation is counted twice")
        self.assertEqual(samples[cf_key(host="web-08")], 1)
        self.assertEqual(samples[gate_key("barrier-1")], 1)
        self.assertEqual(samples[TRUNCATIONS], 1)
        self.assertEqual(samples[ROTATIONS], 0)
        self.assertEqual(samples[LINES], 6)

    def test_copytruncate_restarts_at_offset_0_and_counts_nothing_twice(self):
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.copytruncate(exporter)

    def test_copytruncate_followed_at_once_by_a_short_write_restarts_at_0(self):
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            append(self.log, compliance_failure_line() * 5)
            Barrier(exporter)(self.log)
            os.truncate(self.log, 0)
            append(self.log, compliance_failure_line(host="web-08"))  # the writer goes on at once
            barrier = Barrier(exporter)
            barrier.n = 1
            samples = barrier(self.log)
            self.assertEqual(samples[cf_key()], 5)
            self.assertEqual(samples[cf_key(host="web-08")], 1)
            self.assertEqual(samples[TRUNCATIONS], 1)
            self.assertEqual(samples[LINES], 8)

    def test_a_deleted_and_recreated_file_is_read_from_its_start(self):
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            append(self.log, compliance_failure_line())
            Barrier(exporter)(self.log)
            os.unlink(self.log)
            exporter.wait_value(WATCHED, 0)  # finished and closed: its disk space is freed
            append(self.log, compliance_failure_line(host="web-08") * 2)
            barrier = Barrier(exporter)
            barrier.n = 1
            samples = barrier(self.log)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples[cf_key(host="web-08")], 2)
            self.assertEqual(samples[ROTATIONS], 1)
            self.assertEqual(samples[TRUNCATIONS], 0)
            self.assertEqual(samples[LINES], 5)
            exporter.wait_value(WATCHED, 1)  # the gauge is set at the end of the pass

    def test_a_second_rotation_while_an_old_file_may_still_be_read_finishes_them_oldest_first(self):
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            # A big first file, so that it may still be being finished when the path rotates again.
            append(self.log, starting_line("0.9.1", "first000") + compliance_failure_line(host="one") * 100000)
            os.rename(self.log, self.tmp / "cp.log.1")
            append(self.log, starting_line("0.9.2", "second00") + compliance_failure_line(host="two") * 1000)
            # A file created and rotated away before the follower opened it is not read (as with
            # tail -F), so rotate again only once the second file is open.
            harness.wait_for(lambda: harness.holds_open(exporter, self.log), message="second file opened")
            os.rename(self.tmp / "cp.log.1", self.tmp / "cp.log.2")
            os.rename(self.log, self.tmp / "cp.log.1")
            append(self.log, starting_line("0.9.3", "third000") + compliance_failure_line(host="three") * 10)
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key(host="one")], 100000)
            self.assertEqual(samples[cf_key(host="two")], 1000)
            self.assertEqual(samples[cf_key(host="three")], 10)
            self.assertEqual(samples[LINES], 101014)
            self.assertEqual(samples[ROTATIONS], 2)
            self.assertEqual(samples.get(build_info_key("0.9.3", "third000")), 1, exporter.scrape())

    def test_a_glob_that_also_matches_the_rotated_file_reads_each_file_once(self):
        self.log.touch()
        with self.follow(self.tmp / "cp.log*") as exporter:
            self.started_at_end(exporter)
            append(self.log, compliance_failure_line() * 3)
            exporter.wait_value(cf_key(), 3)
            os.rename(self.log, self.tmp / "cp.log.1")
            append(self.tmp / "cp.log.1", compliance_failure_line(host="web-08"))
            append(self.log, compliance_failure_line(host="web-09"))
            barrier = Barrier(exporter)
            barrier(self.log)
            append(self.tmp / "cp.log.1", compliance_failure_line(host="late"))  # still followed via the glob
            samples = barrier(self.tmp / "cp.log.1")
            self.assertEqual(samples[cf_key()], 3)
            self.assertEqual(samples[cf_key(host="web-08")], 1)
            self.assertEqual(samples[cf_key(host="web-09")], 1)
            self.assertEqual(samples[cf_key(host="late")], 1)
            self.assertEqual(samples[LINES], 8)

    def test_crlf_line_endings_count_like_lf(self):
        self.log.touch()
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            data = compliance_failure_line().replace(b"\n", b"\r\n") * 2
            append(self.log, data[:-1])  # the \r arrives before its \n
            append(self.log, data[-1:])
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key()], 2)
            self.assertEqual(samples[LINES], 3)
            self.assertEqual(samples[BYTES], len(data) + len(harness.gate_block_line("barrier-1")))

    def test_a_line_over_max_line_bytes_is_skipped_and_counted_and_the_next_line_counts(self):
        self.log.touch()
        with self.follow("--max-line-bytes", "512", self.log) as exporter:
            self.started_at_end(exporter)
            long_line = harness.cp_json_line("report received", hostname="web-07", event="compliance-failure",
                                             control_id="CIS-5.2.1", padding="x" * 2000)
            for begin in range(0, len(long_line), 300):
                append(self.log, long_line[begin:begin + 300])
            append(self.log, compliance_failure_line(host="web-08"))
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples['nixfleet_log_exporter_lines_skipped_total{reason="oversize"}'], 1)
            self.assertNotIn(cf_key(), samples)
            self.assertEqual(samples[cf_key(host="web-08")], 1)

    # --- files that appear later -----------------------------------------------------------

    def test_a_file_absent_at_start_is_read_from_its_start_when_created_with_a_single_notice(self):
        with self.follow(self.log) as exporter:
            exporter.wait_stderr(f"waiting for {self.log} to appear")
            samples = exporter.samples()
            self.assertEqual(samples[WATCHED], 0)
            self.assertFalse([k for k in samples if k.startswith("nixfleet_log_exporter_read_errors_total")])
            self.log.write_bytes(compliance_failure_line() * 2)
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key()], 2)
            self.assertEqual(samples[LINES], 3)
            exporter.wait_value(WATCHED, 1)  # the gauge is set at the end of the pass
            self.assertEqual(exporter.stderr().count("waiting for"), 1, exporter.stderr())
            self.assertFalse([k for k in samples if k.startswith("nixfleet_log_exporter_read_errors_total")])

    def test_a_file_in_a_directory_created_later_is_found(self):
        log = self.tmp / "later" / "nested" / "cp.log"
        with self.follow(log) as exporter:
            exporter.wait_stderr("waiting for")
            log.parent.mkdir(parents=True)
            log.write_bytes(compliance_failure_line())
            samples = Barrier(exporter)(log)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples[LINES], 2)

    def test_a_glob_picks_up_a_file_that_appears_later(self):
        (self.tmp / "a.log").write_bytes(compliance_failure_line(host="old"))
        (self.tmp / "ignored.txt").touch()
        with self.follow(self.tmp / "*.log") as exporter:
            self.started_at_end(exporter)
            (self.tmp / "b.log").write_bytes(compliance_failure_line(host="web-08") * 2)
            (self.tmp / "ignored.txt").write_bytes(compliance_failure_line(host="not-matched"))
            append(self.tmp / "a.log", compliance_failure_line())
            barrier = Barrier(exporter)
            barrier(self.tmp / "a.log")
            samples = barrier(self.tmp / "b.log")
            self.assertNotIn(cf_key(host="old"), samples)
            self.assertNotIn(cf_key(host="not-matched"), samples)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples[cf_key(host="web-08")], 2, "a file that appears later is read from its start")
            self.assertEqual(samples[LINES], 5)
            exporter.wait_value(WATCHED, 2)  # the gauge is set at the end of the pass

    def test_a_glob_in_a_directory_part_finds_a_file_in_a_directory_created_later(self):
        with self.follow(self.tmp / "*" / "cp.log") as exporter:
            exporter.wait_stderr("waiting for")
            (self.tmp / "node-1").mkdir()
            log = self.tmp / "node-1" / "cp.log"
            log.write_bytes(compliance_failure_line())
            samples = Barrier(exporter)(log)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples[LINES], 2)

    def test_two_files_are_followed_at_once(self):
        a, b = self.tmp / "a.log", self.tmp / "b.log"
        a.touch()
        b.touch()
        with self.follow(a, b) as exporter:
            self.started_at_end(exporter, files=2)
            for _ in range(20):
                append(a, compliance_failure_line(host="a"))
                append(b, compliance_failure_line(host="b"))
            append(b, harness.runtime_gate_error_line())
            barrier = Barrier(exporter)
            barrier(a)
            samples = barrier(b)
            self.assertEqual(samples[cf_key(host="a")], 20)
            self.assertEqual(samples[cf_key(host="b")], 20)
            self.assertEqual(samples[RUNTIME], 1)
            self.assertEqual(samples[LINES], 43)
            self.assertEqual(samples[WATCHED], 2)

    # --- read errors -----------------------------------------------------------------------

    def test_a_directory_given_as_a_file_is_a_read_error_and_the_tool_keeps_going(self):
        directory = self.tmp / "a-directory"
        directory.mkdir()
        self.log.touch()
        with self.follow(directory, self.log) as exporter:
            key = 'nixfleet_log_exporter_read_errors_total{reason="is_directory"}'
            exporter.wait_value(key, 1)
            self.started_at_end(exporter)
            append(self.log, compliance_failure_line())
            (directory / "inside.log").write_bytes(b"x\n")  # a change in a watched place: another pass
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples[key], 1, "reported once, not on every pass")
            self.assertIsNone(exporter.proc.poll())
            self.assertIn("a-directory", exporter.stderr())
            self.assertEqual(exporter.stderr().count("is_directory"), 1, exporter.stderr())

    def test_a_fifo_given_as_a_file_is_a_not_regular_file_read_error_and_the_tool_keeps_going(self):
        fifo = self.tmp / "a-fifo"
        os.mkfifo(fifo)
        self.log.touch()
        with self.follow(fifo, self.log) as exporter:
            exporter.wait_value('nixfleet_log_exporter_read_errors_total{reason="not_regular_file"}', 1)
            self.started_at_end(exporter)
            append(self.log, compliance_failure_line())
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key()], 1)
            self.assertEqual(samples['nixfleet_log_exporter_read_errors_total{reason="not_regular_file"}'], 1)

    # --- a large log, end to end -------------------------------------------------------------

    @harness.slow
    def test_a_large_log_through_split_writes_a_rename_rotation_and_a_copytruncate_ends_with_the_expected_counts(self):
        generated, expected_path = self.tmp / "gen.log", self.tmp / "gen.prom"
        result = subprocess.run([harness.GEN_LOGS, "--format", "mixed", "--bytes", "24M", "--seed", "20261120",
                                 "--restarts", "3", "--out", generated, "--expected", expected_path],
                                capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        data = generated.read_bytes()
        expected = expected_path.read_text()
        starts, singles = harness.record_boundaries(data)
        rng = random.Random(20261120)

        # Rotate at the end of a single-line record (its newline left out: an unterminated last
        # line in the old file) and truncate at a record boundary.
        rotate_record = next(s for s in singles if s[0] >= len(data) * 4 // 10)
        rotate_at = rotate_record[1]
        truncate_at = next(s for s in starts if s >= len(data) * 7 // 10)
        split_choices = [s for s in singles if s[1] - s[0] > 2]

        def write_in_pieces(begin, end, path):
            """Writes data[begin:end] in pieces with a flush (a write(2)) after each; every cut but
            the last falls inside a single-line record, one to three times in the same line, so a
            multi-line text record is never cut (the CP writes a record in one write)."""
            inside = [s for s in split_choices if begin < s[0] and s[1] < end]
            cuts = set()
            for record_begin, record_end in rng.sample(inside, min(len(inside), 400)):
                for _ in range(rng.randint(1, 3)):
                    cuts.add(rng.randrange(record_begin + 1, record_end - 1))
            position = begin
            for cut in sorted(cuts) + [end]:
                append(path, data[position:cut])
                position = cut

        self.log.touch()
        written = 0
        with self.follow(self.log) as exporter:
            self.started_at_end(exporter)
            write_in_pieces(0, rotate_at - 1, self.log)  # the last line's newline is never written
            written += rotate_at - 1
            os.rename(self.log, self.tmp / "cp.log.1")
            self.log.touch()
            write_in_pieces(rotate_at, truncate_at, self.log)
            written += truncate_at - rotate_at
            exporter.wait_value(BYTES, written, timeout=60)
            shutil.copyfile(self.log, self.tmp / "cp.log.2")
            os.truncate(self.log, 0)
            exporter.wait_value(TRUNCATIONS, 1)
            write_in_pieces(truncate_at, len(data), self.log)
            written += len(data) - truncate_at
            exporter.wait_value(BYTES, written, timeout=60)
            try:
                harness.wait_for(lambda: harness.cp_families(exporter.scrape()) == expected, timeout=10,
                                 message="the generator's expected counts")
            except AssertionError:
                self.assertEqual(harness.cp_families(exporter.scrape()), expected)
            samples = exporter.samples()
            self.assertEqual(samples[LINES], data.count(b"\n"))
            self.assertEqual(samples[BYTES], len(data) - 1)
            self.assertEqual(samples[ROTATIONS], 1)
            self.assertEqual(samples[TRUNCATIONS], 1)


class LifecycleTest(unittest.TestCase):
    """Signals, and errors that stop the tool before it starts."""

    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-follow-life-"))
        self.log = self.tmp / "cp.log"
        self.log.write_bytes(compliance_failure_line() * 3)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def stops_within_a_second(self, sig):
        with harness.follow("--from-beginning", self.log, stderr_dir=self.tmp) as exporter:
            exporter.wait_value(cf_key(), 3)
            began = time.monotonic()
            exporter.proc.send_signal(sig)
            code = exporter.wait_exit(timeout=5)
            elapsed = time.monotonic() - began
            self.assertEqual(code, 0, exporter.stderr())
            self.assertLess(elapsed, 1.0)
            with self.assertRaises(OSError):  # the listener is closed
                socket.create_connection(("127.0.0.1", exporter.port), timeout=1).close()

    def test_sigterm_exits_0_within_a_second(self):
        self.stops_within_a_second(signal.SIGTERM)

    def test_sigint_exits_0_within_a_second(self):
        self.stops_within_a_second(signal.SIGINT)

    def test_sighup_reopens_the_inputs_and_keeps_counting_without_counting_twice(self):
        with harness.follow("--from-beginning", self.log, stderr_dir=self.tmp) as exporter:
            barrier = Barrier(exporter)
            barrier(self.log)
            for round_ in range(3):
                exporter.proc.send_signal(signal.SIGHUP)
                harness.wait_for(lambda: exporter.stderr().count("SIGHUP") == round_ + 1, message="SIGHUP noticed")
                append(self.log, compliance_failure_line())
                samples = barrier(self.log)
                self.assertEqual(samples[cf_key()], 3 + round_ + 1)
                self.assertEqual(samples[LINES], 3 + 2 * (round_ + 1) + 1)
                self.assertEqual(samples[TRUNCATIONS], 0)
                self.assertEqual(samples[ROTATIONS], 0)
            self.assertIsNone(exporter.proc.poll())

    def test_sighup_after_a_rename_rotation_reads_the_new_file_once(self):
        with harness.follow("--from-beginning", self.log, stderr_dir=self.tmp) as exporter:
            exporter.wait_value(cf_key(), 3)
            os.rename(self.log, self.tmp / "cp.log.1")
            append(self.log, compliance_failure_line(host="web-08"))
            exporter.proc.send_signal(signal.SIGHUP)
            exporter.wait_stderr("SIGHUP")
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[cf_key()], 3)
            self.assertEqual(samples[cf_key(host="web-08")], 1)
            self.assertEqual(samples[ROTATIONS], 1)
            self.assertEqual(samples[LINES], 5)

    def test_a_port_already_in_use_exits_2_naming_the_address_before_reading_anything(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            # stdin: the bytes must still be in the pipe afterwards.
            read_end, write_end = os.pipe()
            os.write(write_end, compliance_failure_line())
            try:
                result = subprocess.run([harness.BINARY, "follow", "--web.listen-address", f"127.0.0.1:{port}"],
                                        stdin=read_end, capture_output=True, timeout=10)
                os.set_blocking(read_end, False)
                left = os.read(read_end, 65536)
            finally:
                os.close(read_end)
                os.close(write_end)
            self.assertEqual(result.returncode, 2)
            self.assertIn(f"127.0.0.1:{port}", result.stderr.decode())
            self.assertIn("in use", result.stderr.decode())
            self.assertEqual(left, compliance_failure_line(), "stdin was read before the listener failed")

            result = subprocess.run([harness.BINARY, "follow", "--web.listen-address", f"127.0.0.1:{port}",
                                     "--from-beginning", self.log], capture_output=True, timeout=10)
            self.assertEqual(result.returncode, 2)
            self.assertIn(f"127.0.0.1:{port}", result.stderr.decode())
            self.assertNotIn("following files", result.stderr.decode())

    def test_a_bad_flag_or_flag_value_exits_2_before_listening(self):
        port = harness.free_port()
        for args in (["--no-such-flag"], ["--poll-interval", "soon"], ["--poll-interval", "0ms"],
                     ["--web.telemetry-path", "metrics"], ["--log.level", "loud"], ["--log.format", "xml"],
                     ["--input-format", "yaml"], ["--max-line-bytes", "1"]):
            with self.subTest(args=args):
                result = subprocess.run([harness.BINARY, "follow", "--web.listen-address", f"127.0.0.1:{port}",
                                         *args, self.log], capture_output=True, timeout=10)
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertTrue(result.stderr.strip(), "a usage error says what is wrong")

    def test_stdin_together_with_files_is_a_usage_error(self):
        result = subprocess.run([harness.BINARY, "follow", "--web.listen-address", f"127.0.0.1:{harness.free_port()}",
                                 self.log, "-"], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 2)


if __name__ == "__main__":
    unittest.main()
