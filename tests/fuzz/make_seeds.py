#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into OUT/<target>/, from the logs under testdata/
(sample, golden, real) and the hand-made seeds of testdata/fuzz-seeds/<target>/.

Usage: make_seeds.py TESTDATA_DIR OUT_DIR
Logs are cut into pieces of a few lines (libFuzzer mutates small inputs best); each target gets
them in the shape it reads (see tests/fuzz/checks.cpp)."""
import os
import pathlib
import shutil
import sys

LINES_PER_SEED = 3
MAX_SEEDS_PER_LOG = 40  # the sample log has ~10k lines; a spread of them is enough


def log_pieces(testdata):
    for folder in ("golden", "real", "sample"):
        for path in sorted((testdata / folder).iterdir()):
            if not path.is_file() or path.suffix in (".prom", ".om", ".py", ".sh"):
                continue
            lines = path.read_bytes().split(b"\n")
            chunks = [lines[i:i + LINES_PER_SEED] for i in range(0, len(lines), LINES_PER_SEED)]
            step = max(1, len(chunks) // MAX_SEEDS_PER_LOG)
            for n, chunk in enumerate(chunks[::step]):
                yield f"{folder}-{path.name}-{n}", b"\n".join(chunk)


def main():
    testdata, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    targets = {
        "line_parser_auto": lambda p: p,
        "line_parser_json": lambda p: p,
        "line_parser_text": lambda p: p,
        "line_parser_journald": lambda p: p,
        # mode byte 0: one CP line, compared with its byte-array spelling
        "journald_message": lambda p: b"\x00" + p.split(b"\n")[0],
        # line cap, alignment, then the block
        "candidate_scan": lambda p: bytes([90, len(p) % 64]) + p,
    }
    for target, shape in targets.items():
        (out / target).mkdir(parents=True, exist_ok=True)
        for name, piece in log_pieces(testdata):
            (out / target / name).write_bytes(shape(piece))
    seeds = testdata / "fuzz-seeds"
    for target_dir in seeds.iterdir():
        (out / target_dir.name).mkdir(parents=True, exist_ok=True)
        for seed in target_dir.iterdir():
            shutil.copy(seed, out / target_dir.name / seed.name)


if __name__ == "__main__":
    main()
