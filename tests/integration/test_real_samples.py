"""Logs written by the real tracing-subscriber and journalctl (testdata/real, made by
testdata/cp-sim/regenerate.sh) replay to the counts the simulated CP says it emitted."""
import unittest

import harness

REAL = harness.TESTDATA / "real"


class RealSamplesTest(unittest.TestCase):
    def test_every_real_sample_counts_exactly_what_the_cp_emitted(self):
        expected = (REAL / "expected.prom").read_text(encoding="utf-8")
        samples = sorted(p for p in REAL.iterdir() if p.name != "expected.prom")
        self.assertGreaterEqual(len(samples), 10)
        for sample in samples:
            with self.subTest(sample=sample.name):
                result = harness.run("replay", sample)
                self.assertEqual(result.returncode, 0, result.stderr.decode())
                self.assertEqual(harness.cp_families(result.stdout.decode("utf-8")), expected)


if __name__ == "__main__":
    unittest.main()
