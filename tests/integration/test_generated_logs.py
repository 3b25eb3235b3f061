"""Generated logs full of the contract's traps (bench/gen_logs.cpp) replay to exactly the
counts the generator wrote, for every format and several seeds."""
import pathlib
import shutil
import subprocess
import tempfile
import unittest

import harness

FORMATS = ("json", "flat", "text", "ansi", "journald", "mixed")


def generate(directory, fmt, seed, size):
    log, expected = directory / f"{fmt}-{seed}.log", directory / f"{fmt}-{seed}.prom"
    subprocess.run([harness.GEN_LOGS, "--format", fmt, "--bytes", size, "--seed", str(seed), "--restarts", "2",
                    "--out", log, "--expected", expected], check=True, capture_output=True)
    return log, expected.read_text(encoding="utf-8")


class GeneratedLogsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-gen-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_every_format_and_seed_counts_exactly(self):
        for fmt in FORMATS:
            for seed in (1, 2, 3):
                with self.subTest(format=fmt, seed=seed):
                    log, expected = generate(self.tmp, fmt, seed, "2M")
                    result = harness.run("replay", log)
                    self.assertEqual(result.returncode, 0, result.stderr.decode())
                    self.assertEqual(harness.cp_families(result.stdout.decode("utf-8")), expected)
                    log.unlink()

    def test_forced_formats_count_their_own_shape_exactly(self):
        for fmt, forced in (("json", "json"), ("flat", "json"), ("text", "text"), ("ansi", "text"), ("journald", "journald")):
            with self.subTest(format=fmt):
                log, expected = generate(self.tmp, fmt, 9, "1M")
                result = harness.run("replay", "--input-format", forced, log)
                self.assertEqual(harness.cp_families(result.stdout.decode("utf-8")), expected)


if __name__ == "__main__":
    unittest.main()
