"""--state-file positions belong to the file, not to the spelling of its path: state saved under
`follow cp.log` resumes exactly under `follow /abs/dir/cp.log`, with or without
--from-beginning, and under a glob. A copytruncate while stopped is finished from its copy."""
import os
import pathlib
import shutil
import tempfile
import unittest

import harness
from harness import Barrier

EVENTS = 'nixfleet_log_exporter_events_total{kind="compliance_failure"}'


def event_lines(n):
    return b"".join(harness.cp_json_line("report received", hostname="web-07", event="compliance-failure",
                                         control_id="CIS-5.2.1", seq=i) for i in range(n))


class SavedPositionKeyTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-positions-"))
        self.log = self.tmp / "cp.log"
        self.state = self.tmp / "state.json"

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def follow(self, path, *extra):
        return harness.follow(path, "--state-file", self.state, "--state-interval", "20ms", *extra,
                              stderr_dir=self.tmp)

    def restart_as(self, first_spelling, second_spelling, *second_flags):
        self.log.write_bytes(event_lines(100))
        with self.follow(first_spelling, "--from-beginning") as exporter:
            exporter.wait_value(EVENTS, 100)
        harness.append(self.log, event_lines(50))  # written while stopped
        with self.follow(second_spelling, *second_flags) as exporter:
            samples = Barrier(exporter)(self.log)  # read in order: everything before it is counted
            self.assertEqual(samples[EVENTS], 150, exporter.stderr())
            self.assertNotIn("ignoring the saved position", exporter.stderr())

    def test_saved_under_a_relative_path_resumes_under_the_absolute_path(self):
        self.restart_as(os.path.relpath(self.log), self.log)

    def test_saved_under_a_relative_path_resumes_under_the_absolute_path_with_from_beginning(self):
        self.restart_as(os.path.relpath(self.log), self.log, "--from-beginning")

    def test_saved_under_the_absolute_path_resumes_under_another_spelling(self):
        self.restart_as(self.log, self.tmp / "." / ".." / self.tmp.name / "cp.log", "--from-beginning")

    def test_saved_under_a_path_resumes_under_a_glob(self):
        self.restart_as(os.path.relpath(self.log), self.tmp / "cp.log*", "--from-beginning")

    def copytruncate_while_stopped(self, pattern, *flags):
        self.log.write_bytes(event_lines(100))
        with self.follow(self.log, "--from-beginning") as exporter:
            exporter.wait_value(EVENTS, 100)
        harness.append(self.log, event_lines(50))  # written while stopped, then logrotate's copytruncate
        shutil.copyfile(self.log, self.tmp / "cp.log.1")
        self.log.write_bytes(event_lines(7))
        with self.follow(pattern, *flags) as exporter:
            samples = Barrier(exporter)(self.log)
            self.assertEqual(samples[EVENTS], 157, exporter.stderr())
            self.assertEqual(samples["nixfleet_log_exporter_truncations_total"], 1)

    def test_copytruncate_while_stopped_reads_the_rest_from_the_copy_beside_the_file(self):
        self.copytruncate_while_stopped(self.log)

    def test_copytruncate_while_stopped_reads_the_copy_once_through_a_glob(self):
        self.copytruncate_while_stopped(self.tmp / "cp.log*", "--from-beginning")


if __name__ == "__main__":
    unittest.main()
