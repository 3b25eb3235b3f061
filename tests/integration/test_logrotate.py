"""`follow` against the real logrotate (Debian's, run with `-f`, its own state file and config in a
temp dir) every two seconds while a writer appends ~5,000 lines/s, with and without a glob, in the
two setups sites use: `create` + `compress` + `delaycompress`, and `copytruncate` + `compress`.
Every count must be exact: the exporter's counters against what the writer wrote. Also: compressed
files are never followed as text."""
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import Barrier, cf_key

LINES = "nixfleet_log_exporter_lines_read_total"
ROTATIONS = "nixfleet_log_exporter_rotations_total"
TRUNCATIONS = "nixfleet_log_exporter_truncations_total"
WATCHED = "nixfleet_log_exporter_files_watched"
LOGROTATE = shutil.which("logrotate") or "/usr/sbin/logrotate"

HOSTS = [f"w{i}" for i in range(5)]
BATCH_LINES = 50          # one write(2) every 10 ms: ~5,000 lines/s
BATCH_SECONDS = 0.01
ROTATE_EVERY_SECONDS = 2.0
ROTATIONS_PER_RUN = 5     # ~12 s of writing: each test stays well under a minute


class Writer(threading.Thread):
    """Appends batches of compliance failures (the host cycles through HOSTS, each line unique by
    its `seq` field, as a real log's are by their timestamps) to `path`, opening
    it by name for every batch, as a logger that reopens its file after a rotation. `lock` is held
    for each batch: logrotate runs under it, so no batch is split by a rotation (with copytruncate
    a batch written between logrotate's copy and its truncation would be in no file at all, which
    no reader could count)."""

    def __init__(self, path, lock):
        super().__init__(daemon=True)
        self.path = path
        self.lock = lock
        self.stop = threading.Event()
        self.written = dict.fromkeys(HOSTS, 0)
        self.lines = 0

    def batch(self):
        lines = []
        for i in range(self.lines, self.lines + BATCH_LINES):
            host = HOSTS[i % len(HOSTS)]
            self.written[host] += 1
            lines.append(harness.cp_json_line("report received", hostname=host, event="compliance-failure",
                                              control_id="CIS-5.2.1", seq=i))
        self.lines += BATCH_LINES
        return b"".join(lines)

    def run(self):
        next_at = time.monotonic()
        while not self.stop.is_set():
            data = self.batch()
            with self.lock:
                harness.append(self.path, data)
            next_at += BATCH_SECONDS
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the writer, not waiting for a result


class LogrotateTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-logrotate-"))  # mode 0700, as logrotate wants
        self.log = self.tmp / "cp.log"
        self.config = self.tmp / "logrotate.conf"
        self.status = self.tmp / "logrotate.status"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def logrotate(self):
        result = subprocess.run([LOGROTATE, "-f", "-s", str(self.status), str(self.config)],
                                capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stderr.decode(errors="replace"))

    def run_scenario(self, directives, pattern, check, follow_flags=()):
        """Writes, rotates ROTATIONS_PER_RUN times, checks every count, then calls
        check(samples, exporter) while the exporter still runs."""
        self.config.write_text(f"{self.log} {{\n    rotate 3\n" + "".join(f"    {d}\n" for d in directives) + "}\n")
        self.log.touch()
        lock = threading.Lock()
        with harness.follow(*follow_flags, pattern, stderr_dir=self.tmp) as exporter:
            exporter.wait_value(WATCHED, 1)
            writer = Writer(self.log, lock)
            writer.start()
            try:
                for _ in range(ROTATIONS_PER_RUN):
                    time.sleep(ROTATE_EVERY_SECONDS)  # pacing the scenario, not waiting for a result
                    with lock:
                        self.logrotate()
            finally:
                writer.stop.set()
                writer.join()
            self.assertGreater(writer.lines, 20000, "the writer kept up its rate")
            Barrier(exporter)(self.log, timeout=25)  # every line written before it has been read
            expected = {cf_key(host=h, control_id="CIS-5.2.1"): float(n) for h, n in writer.written.items()}
            expected[LINES] = float(writer.lines + 1)
            samples = exporter.wait_samples(expected, timeout=15)
            self.assertTrue(list(self.tmp.glob("cp.log.*.gz")), "logrotate compressed the rotated files")
            check(samples, exporter)

    # --- create + compress + delaycompress: cp.log -> cp.log.1 (plain) -> cp.log.2.gz ---------------

    CREATE = ["create", "compress", "delaycompress"]

    def check_create(self, samples, exporter, watched):
        self.assertEqual(samples[ROTATIONS], ROTATIONS_PER_RUN, "one rotation per logrotate run")
        self.assertEqual(samples[TRUNCATIONS], 0)
        exporter.wait_value(WATCHED, watched)

    def test_create_compress_delaycompress_through_a_glob_counts_every_line_once(self):
        def check(samples, exporter):
            self.check_create(samples, exporter, 2)  # cp.log and cp.log.1; never the .gz files
            exporter.wait_stderr("cp.log.2.gz is compressed (gzip): not followed")
        self.run_scenario(self.CREATE, self.tmp / "cp.log*", check)

    def test_create_compress_delaycompress_of_the_path_counts_every_line_once(self):
        self.run_scenario(self.CREATE, self.log, lambda samples, exporter: self.check_create(samples, exporter, 1))

    # --- copytruncate + compress: cp.log copied to cp.log.1, truncated, cp.log.1 -> cp.log.1.gz -----

    COPYTRUNCATE = ["copytruncate", "compress"]

    def check_copytruncate(self, samples, exporter):
        self.assertEqual(samples[TRUNCATIONS], ROTATIONS_PER_RUN, "one truncation per logrotate run")
        self.assertEqual(samples[ROTATIONS], 0, "copytruncate replaces no file")
        exporter.wait_value(WATCHED, 1)  # the copies were compressed away; the .gz files never watched

    def test_copytruncate_compress_through_a_glob_counts_every_line_once(self):
        self.run_scenario(self.COPYTRUNCATE, self.tmp / "cp.log*", self.check_copytruncate)

    def test_copytruncate_compress_of_the_path_counts_every_line_once(self):
        self.run_scenario(self.COPYTRUNCATE, self.log, self.check_copytruncate)

    def test_copytruncate_delaycompress_through_a_glob_reads_no_copy_twice(self):
        # The copies stay plain as cp.log.1 until the next run: each is matched by its content.
        def check(samples, exporter):
            self.check_copytruncate_plain(samples, exporter)
            exporter.wait_value(WATCHED, 2)  # cp.log and the last copy (placed at its end)
        self.run_scenario(self.COPYTRUNCATE + ["delaycompress"], self.tmp / "cp.log*", check)

    # Polling every 100 ms, the exporter is up to ~500 lines behind when logrotate truncates: those
    # lines are only in the copy, which must be read from where the reading of cp.log stopped.
    POLLING = ("--force-polling", "--poll-interval", "100ms")

    def test_copytruncate_delaycompress_through_a_glob_reads_the_unread_lines_from_the_copy(self):
        self.run_scenario(self.COPYTRUNCATE + ["delaycompress"], self.tmp / "cp.log*", self.check_copytruncate_plain,
                          self.POLLING)

    def test_copytruncate_delaycompress_of_the_path_reads_the_unread_lines_from_the_copy_beside_it(self):
        self.run_scenario(self.COPYTRUNCATE + ["delaycompress"], self.log, self.check_copytruncate_plain, self.POLLING)

    def check_copytruncate_plain(self, samples, exporter):
        self.assertEqual(samples[TRUNCATIONS], ROTATIONS_PER_RUN)
        self.assertEqual(samples[ROTATIONS], 0)


class CompressedFilesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-compressed-"))
        self.log = self.tmp / "cp.log"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_a_glob_over_rotated_and_compressed_files_reads_only_the_plain_ones(self):
        self.log.write_bytes(harness.compliance_failure_line(host="current") * 3)
        (self.tmp / "cp.log.1").write_bytes(harness.compliance_failure_line(host="rotated") * 20000)
        gz = subprocess.run(["gzip", "-c"], input=harness.compliance_failure_line(host="old") * 5000,
                            capture_output=True, check=True).stdout
        (self.tmp / "cp.log.2.gz").write_bytes(gz)
        (self.tmp / "cp.log.3").write_bytes(gz)  # compressed under a plain name: known by its magic bytes
        with harness.follow("--from-beginning", self.tmp / "cp.log*", stderr_dir=self.tmp) as exporter:
            samples = exporter.wait_samples({cf_key(host="current"): 3, cf_key(host="rotated"): 20000})
            self.assertEqual(samples[WATCHED], 2)
            self.assertEqual(samples[LINES], 20003)
            self.assertIsNone(samples.get(cf_key(host="old")))
            exporter.wait_stderr("cp.log.2.gz is compressed (gzip): not followed")
            exporter.wait_stderr("cp.log.3 is compressed (gzip): not followed")
            self.assertEqual(exporter.stderr().count("is compressed"), 2, "one line per compressed file")

    def test_a_compressed_file_named_on_its_own_is_a_usage_error_that_points_to_replay(self):
        for name, data in (("cp.log.2.gz", b""), ("cp.log.1", b"\x1f\x8b\x08\x00rest")):
            path = self.tmp / name
            path.write_bytes(data)
            result = harness.run("follow", "--web.listen-address", f"127.0.0.1:{harness.free_port()}", path)
            self.assertEqual(result.returncode, 2, result.stderr)
            message = result.stderr.decode()
            self.assertIn(f"{path} is compressed (gzip)", message)
            self.assertIn("replay", message)


if __name__ == "__main__":
    unittest.main()
