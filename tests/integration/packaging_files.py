"""Shared by the test_packaging_*.py tests: where packaging/ and the build are, the flags the
binary accepts, and systemd unit files read the way systemd reads them."""
import contextlib
import os
import pathlib
import re
import shlex
import subprocess

import harness

SOURCE_DIR = pathlib.Path(__file__).resolve().parents[2]
PACKAGING = SOURCE_DIR / "packaging"
BUILD_DIR = pathlib.Path(os.environ.get("NLE_BUILD_DIR", pathlib.Path(harness.BINARY).resolve().parents[1]))
SUBCOMMANDS = ("follow", "replay", "cursor")
SERVICES = sorted((PACKAGING / "systemd").glob("*.service"))

_HELP_OPTION = re.compile(r"^  (-[^\s]+)", re.M)


def help_flags(subcommand) -> set:
    """Every flag name `BINARY SUBCOMMAND --help` lists (aliases split: -h,--help -> both)."""
    result = harness.run(subcommand, "--help")
    if result.returncode != 0:
        raise AssertionError(f"{subcommand} --help exited {result.returncode}: {result.stderr!r}")
    names = set()
    for group in _HELP_OPTION.findall(result.stdout.decode()):
        names.update(group.split(","))
    return names


def read_unit(path) -> dict:
    """{section: [(key, value), ...]} with backslash continuations joined and comments dropped."""
    sections, current, pending = {}, None, ""
    for raw in pathlib.Path(path).read_text().splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
        else:
            key, _, value = line.partition("=")
            current.append((key.strip(), value.strip()))
    return sections


def unit_value(unit: dict, section: str, key: str) -> str:
    values = [v for k, v in unit.get(section, []) if k == key]
    if len(values) != 1:
        raise AssertionError(f"[{section}] {key}= appears {len(values)} times")
    return values[0]


def exec_start_argv(unit: dict, state_root, environment: dict) -> list:
    """ExecStart as systemd would run it: %S is the state root, `$VAR` splits the variable's value
    into words (systemd.service(5) "Command lines"), `${VAR}` is one word."""
    words = []
    for word in shlex.split(unit_value(unit, "Service", "ExecStart").replace("%S", str(state_root))):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            words.extend(environment.get(whole.group(1), "").split())
        else:
            words.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: environment.get(m.group(1), ""), word))
    return words


def run_tool(*command, check=True, **kwargs) -> subprocess.CompletedProcess:
    """Runs a tool, text output; fails the test with its output when `check` and it exits non-zero."""
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


@contextlib.contextmanager
def serving(argv, workdir, port, ready_path="/-/ready"):
    """Runs a packaged command line (argv[0] is already the binary under test) that serves on
    127.0.0.1:PORT; yields a harness.Exporter once `ready_path` answers 200; stops it after and
    fails unless it exited 0."""
    stderr_path = pathlib.Path(workdir) / f"serve-{port}.stderr"
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
    exporter = harness.Exporter(proc, port, stderr_path)

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"{argv[1:]} exited {proc.returncode}:\n{exporter.stderr()}")
        return harness.http_get(exporter.url(ready_path), timeout=5)[0] == 200
    try:
        harness.wait_for(ready, timeout=30, message=f"{ready_path} on port {port}")
        yield exporter
    finally:
        code = exporter.stop()
    if code != 0:
        raise AssertionError(f"exited {code}:\n{exporter.stderr()}")
