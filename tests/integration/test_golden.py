"""Golden tests: each testdata/golden/NAME.log replayed must print exactly NAME.prom.

The .prom files come from a reviewed run: `python3 test_golden.py --update` rewrites them, then
read `git diff testdata/golden` before committing."""
import pathlib
import sys
import unittest

import harness

GOLDEN = harness.TESTDATA / "golden"
EXTRA_ARGS = {"malformed": ["--max-line-bytes", "4096"]}
OPENMETRICS = {"json", "mixed"}  # also rendered as OpenMetrics into NAME.om, exemplars included


def replay(name, *extra):
    result = harness.run("replay", *EXTRA_ARGS.get(name, []), *extra, GOLDEN / f"{name}.log")
    if result.returncode != 0:
        raise AssertionError(f"replay {name} exited {result.returncode}: {result.stderr.decode()}")
    return harness.normalise(result.stdout.decode("utf-8"))


def cases():
    return sorted(p.stem for p in GOLDEN.glob("*.log"))


class GoldenTest(unittest.TestCase):
    def test_every_golden_log_replays_to_its_exposition(self):
        self.assertTrue(cases(), "no golden inputs found")
        for name in cases():
            with self.subTest(name=name):
                expected = (GOLDEN / f"{name}.prom").read_text(encoding="utf-8")
                self.assertEqual(replay(name), expected)

    def test_openmetrics_goldens(self):
        for name in sorted(OPENMETRICS):
            with self.subTest(name=name):
                expected = (GOLDEN / f"{name}.om").read_text(encoding="utf-8")
                self.assertEqual(replay(name, "--output-format", "openmetrics"), expected)


def update():
    for name in cases():
        (GOLDEN / f"{name}.prom").write_text(replay(name), encoding="utf-8")
    for name in OPENMETRICS:
        (GOLDEN / f"{name}.om").write_text(replay(name, "--output-format", "openmetrics"), encoding="utf-8")


if __name__ == "__main__":
    if "--update" in sys.argv:
        update()
    else:
        unittest.main()
