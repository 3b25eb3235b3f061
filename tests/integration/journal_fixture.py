"""Real systemd journal files for tests, made by systemd-journal-remote from Journal Export Format.

    import journal_fixture
    journal_fixture.make_journal(tmp, [b"first", b"\\x1b[32mINFO\\x1b[0m report: ..."])
    # later, to simulate new entries arriving while a reader follows the directory:
    journal_fixture.make_journal(tmp, [b"third"])                      # a new file: remote-2.journal
    journal_fixture.make_journal(tmp, [b"fourth"], output="remote.journal")  # appended to a file

How appending works (systemd 252): journal-remote opens an existing --output file and appends to
it (a following reader sees SD_JOURNAL_APPEND); a new file name in the same directory is picked up
by a reader's inotify watch on the directory (SD_JOURNAL_INVALIDATE). Both are real journald
behaviours -- appends to the active file, and rotation to a new file -- so tests can use either.

Entries are ordered across calls by one fixed _BOOT_ID with monotonic time derived from realtime,
and default realtime timestamps increase strictly across calls, so sd-journal interleaves several
files in the order they were written.

Also a command line, for tests that are not Python (each MESSAGE hex-encoded so any bytes survive
the shell; `none` makes an entry without MESSAGE):
    python3 journal_fixture.py DIR [--unit UNIT] [--output NAME.journal] --hex 6869 none 0a0a
    python3 journal_fixture.py DIR --hex-file MESSAGES.hex     # one hex message (or none) a line
"""
import argparse
import os
import pathlib
import struct
import subprocess
import sys
import time

DEFAULT_UNIT = "nixfleet-control-plane.service"
# One boot for every entry the fixture writes: sd-journal then orders entries of different files
# (different seqnum ids) by monotonic time, which we derive from realtime.
BOOT_ID = "5f1c1f3a9b2e4c0d8e7a6b5c4d3e2f10"
_BOOT_REALTIME_US = 1_700_000_000_000_000

_last_realtime_us = 0


def _journal_remote() -> str:
    override = os.environ.get("NLE_JOURNAL_REMOTE")
    candidates = [override] if override else ["/lib/systemd/systemd-journal-remote",
                                              "/usr/lib/systemd/systemd-journal-remote"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("systemd-journal-remote not found (Debian package systemd-journal-remote; "
                            "or set NLE_JOURNAL_REMOTE)")


def _as_bytes(value) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def export_field(name: str, value) -> bytes:
    """One field in Journal Export Format: `NAME=value\\n`, or the binary-safe form
    `NAME\\n` + 64-bit little-endian length + bytes + `\\n` when the value holds a newline or any
    other byte outside printable ASCII (colour escapes, invalid UTF-8, NUL)."""
    data = _as_bytes(value)
    key = name.encode("ascii")
    if all(0x20 <= b < 0x7f for b in data):
        return key + b"=" + data + b"\n"
    return key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"


def export_entries(messages, unit=DEFAULT_UNIT, realtime=None, fields=None) -> bytes:
    """Journal Export Format for one entry per message (bytes or str; None = no MESSAGE field).

    realtime: optional list of __REALTIME_TIMESTAMP values (µs since the epoch), one per message;
    by default they start at the current time and increase strictly, also across calls.
    fields: optional dict of extra fields for every entry (overrides the defaults below)."""
    global _last_realtime_us
    messages = list(messages)
    if realtime is None:
        start = max(time.time_ns() // 1000, _last_realtime_us + 1)
        realtime = [start + i for i in range(len(messages))]
    elif len(realtime) != len(messages):
        raise ValueError("realtime must have one timestamp per message")
    out = bytearray()
    for message, stamp in zip(messages, realtime):
        _last_realtime_us = max(_last_realtime_us, stamp)
        entry = {
            "__REALTIME_TIMESTAMP": str(stamp),
            "__MONOTONIC_TIMESTAMP": str(max(1, stamp - _BOOT_REALTIME_US)),
            "_BOOT_ID": BOOT_ID,
            "_SYSTEMD_UNIT": unit,
            "SYSLOG_IDENTIFIER": unit.rsplit(".", 1)[0],
            "_PID": "4242",
            "PRIORITY": "6",
        }
        entry.update(fields or {})
        if message is not None:
            entry["MESSAGE"] = message
        for name, value in entry.items():
            out += export_field(name, value)
        out += b"\n"  # an empty line ends the entry
    return bytes(out)


def make_journal(directory, messages, unit=DEFAULT_UNIT, realtime=None, fields=None,
                 output=None) -> pathlib.Path:
    """Writes the entries into a journal file in `directory` (created if needed) and returns its
    path. output: the file name (must end in .journal); an existing file is appended to. By
    default the first call writes remote.journal and later calls a new remote-N.journal each."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if output is None:
        output = "remote.journal"
        n = 2
        while (directory / output).exists():
            output = f"remote-{n}.journal"
            n += 1
    if not output.endswith(".journal"):
        raise ValueError("journal-remote requires an output name ending in .journal")
    target = directory / output
    payload = export_entries(messages, unit=unit, realtime=realtime, fields=fields)
    # The export stream goes through stdin (`-`): nothing to clean up, and the bytes are exactly ours.
    result = subprocess.run([_journal_remote(), f"--output={target}", "--split-mode=none", "-"],
                            input=payload, capture_output=True, timeout=60)
    if result.returncode != 0 or not target.exists():
        raise RuntimeError(f"systemd-journal-remote failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace')}")
    return target


def main(argv) -> int:
    parser = argparse.ArgumentParser(description="Write journal entries with systemd-journal-remote.")
    parser.add_argument("directory")
    parser.add_argument("--unit", default=DEFAULT_UNIT)
    parser.add_argument("--output", help="file name in DIR ending in .journal (appended to if it exists)")
    parser.add_argument("--hex", action="store_true", help="messages are hex; `none` = entry without MESSAGE")
    parser.add_argument("--hex-file", help="read hex messages from this file, one per line (for "
                        "messages too long for one argument, 128 KiB on Linux)")
    parser.add_argument("messages", nargs="*")
    args = parser.parse_intermixed_args(argv)
    if args.hex or args.hex_file:
        hex_messages = list(args.messages)
        if args.hex_file:
            # splitlines, not split: an empty line is an empty MESSAGE
            hex_messages += pathlib.Path(args.hex_file).read_text().splitlines()
        messages = [None if m == "none" else bytes.fromhex(m) for m in hex_messages]
    else:
        messages = [os.fsencode(m) for m in args.messages]
    path = make_journal(args.directory, messages, unit=args.unit, output=args.output)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
