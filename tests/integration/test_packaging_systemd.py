"""cmake --install and the systemd units: every file lands, the units pass `systemd-analyze
verify`, each service scores 2.0 or lower in `systemd-analyze security --offline=true`, and the
service's and socket's command lines are ones the binary runs."""
import os
import pathlib
import re
import shutil
import signal
import tempfile
import unittest

import harness
import packaging_files as pf

INSTALLED_FILES = [
    "bin/nixfleet-log-exporter",
    "share/man/man1/nixfleet-log-exporter.1",
    "lib/systemd/system/nixfleet-log-exporter.service",
    "lib/systemd/system/nixfleet-log-exporter.socket",
    "share/nixfleet-log-exporter/prometheus/nixfleet-log-exporter.rules.yml",
    "share/nixfleet-log-exporter/grafana/nixfleet-log-exporter.json",
    "share/nixfleet-log-exporter/web-config.example.yml",
    "share/doc/nixfleet-log-exporter/examples/nixfleet-log-exporter.default",
]


class CmakeInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.prefix = pathlib.Path(tempfile.mkdtemp(prefix="nle-install-"))
        pf.run_tool("cmake", "--install", pf.BUILD_DIR, "--prefix", cls.prefix)
        cls.units = cls.prefix / "lib/systemd/system"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.prefix, ignore_errors=True)

    def test_install_puts_binary_man_page_units_rules_dashboard_and_web_config_in_place(self):
        for relative in INSTALLED_FILES:
            self.assertTrue((self.prefix / relative).is_file(), relative)
        self.assertTrue(os.access(self.prefix / "bin/nixfleet-log-exporter", os.X_OK))

    def test_installed_units_name_the_installed_binary(self):
        unit = pf.read_unit(self.units / "nixfleet-log-exporter.service")
        self.assertEqual(pf.unit_value(unit, "Service", "ExecStart").split()[0],
                         f"{self.prefix}/bin/nixfleet-log-exporter")

    def test_installed_units_pass_systemd_analyze_verify(self):
        # verify checks that ExecStart's binary exists and, through man(1), the Documentation= page.
        result = pf.run_tool("systemd-analyze", "verify", *sorted(self.units.iterdir()), check=False,
                             env={**os.environ, "MANPATH": str(self.prefix / "share/man")})
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stderr.strip(), "")

    def test_systemd_analyze_verify_fails_when_the_binary_is_missing(self):
        # The check above can fail: a unit naming a binary that is not there is refused.
        broken = self.prefix / "broken"
        broken.mkdir(exist_ok=True)
        text = (self.units / "nixfleet-log-exporter.service").read_text()
        (broken / "nixfleet-log-exporter.service").write_text(text.replace(f"{self.prefix}/bin/", f"{broken}/bin/"))
        result = pf.run_tool("systemd-analyze", "verify", "--man=no", broken / "nixfleet-log-exporter.service", check=False)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("is not executable", result.stderr)


class ServiceHardening(unittest.TestCase):
    def test_each_service_scores_2_or_lower_in_systemd_analyze_security_offline(self):
        self.assertTrue(pf.SERVICES)
        for service in pf.SERVICES:
            result = pf.run_tool("systemd-analyze", "security", "--offline=true", "--no-pager", service, check=False)
            match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
            self.assertIsNotNone(match, result.stdout + result.stderr)
            self.assertLessEqual(float(match.group(1)), 2.0, f"{service.name}:\n{result.stdout}")

    def test_the_service_has_the_hardening_the_issue_asks_for(self):
        for service in pf.SERVICES:
            unit = pf.read_unit(service)
            for key, value in [("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("CapabilityBoundingSet", ""),
                               ("MemoryDenyWriteExecute", "yes"), ("SystemCallFilter", "@system-service"),
                               ("StateDirectory", "nixfleet-log-exporter"),
                               ("EnvironmentFile", "-/etc/default/nixfleet-log-exporter")]:
                self.assertIn((key, value), unit["Service"], f"{service.name}: {key}={value}")
            self.assertIn("RestrictAddressFamilies", dict(unit["Service"]))


class ServiceCommandLine(unittest.TestCase):
    def setUp(self):
        self.unit = pf.read_unit(pf.PACKAGING / "systemd/nixfleet-log-exporter.service")
        self.state_root = pathlib.Path(tempfile.mkdtemp(prefix="nle-state-"))
        self.addCleanup(shutil.rmtree, self.state_root, ignore_errors=True)

    def argv(self, args):
        argv = pf.exec_start_argv(self.unit, self.state_root, {"ARGS": args})
        self.assertEqual(argv[0], "/usr/bin/nixfleet-log-exporter")
        return [harness.BINARY, *argv[1:]]

    def test_every_flag_of_the_service_is_one_the_binary_accepts(self):
        argv = self.argv("")
        accepted = pf.help_flags(argv[1])
        flags = [word for word in argv[2:] if word.startswith("-")]
        self.assertIn("--state-file", flags)
        self.assertEqual([f for f in flags if f not in accepted], [])

    @harness.packaging
    def test_the_system_call_filter_admits_every_call_the_service_makes(self):
        # The units cannot run under systemd here; strace shows what the exporter would ask the
        # filter for: reading the journal and, in the log file shape, a file through inotify,
        # serving a scrape, saving the state and stopping.
        (self.state_root / "nixfleet-log-exporter").mkdir()
        allowed = allowed_syscalls(self.unit)
        self.assertIn("inotify_add_watch", allowed)
        self.assertNotIn("setrlimit", allowed)
        log = self.state_root / "cp.log"
        log.write_bytes(harness.gate_block_line("host-edge"))
        used = set()
        for shape in ("", f"{log} --from-beginning"):
            port = harness.free_port()
            argv = self.argv(f"--web.listen-address 127.0.0.1:{port}")
            if shape:
                argv = [w for w in argv if w not in ("--journal-unit", "nixfleet-control-plane")] + shape.split()
            used |= traced_syscalls(argv, self.state_root, port, lambda exporter: exporter.scrape())
            (self.state_root / "nixfleet-log-exporter/state.json").unlink()  # a journal state is no file state
        self.assertIn("inotify_add_watch", used)
        self.assertIn("rename", used)
        self.assertEqual(sorted(used - allowed), [])

    def test_the_service_command_serves_metrics_with_args_from_the_environment_file(self):
        (self.state_root / "nixfleet-log-exporter").mkdir()  # what StateDirectory= creates
        port = harness.free_port()
        argv = self.argv(f"--web.listen-address 127.0.0.1:{port} --log.level debug")
        with pf.serving(argv, self.state_root, port) as exporter:
            self.assertIn("nixfleet_gate_block_total", exporter.scrape())
        self.assertTrue((self.state_root / "nixfleet-log-exporter/state.json").is_file())


def syscall_groups() -> dict:
    """{"@group": {members}} as `systemd-analyze syscall-filter` lists them (members may be groups)."""
    groups, current = {}, None
    for line in pf.run_tool("systemd-analyze", "syscall-filter").stdout.splitlines():
        if re.fullmatch(r"@[\w-]+", line):
            current = groups.setdefault(line, set())
        elif line.startswith("    ") and not line.strip().startswith("#") and current is not None:
            current.add(line.strip())
    return groups


def allowed_syscalls(unit: dict) -> set:
    """The system calls the unit's SystemCallFilter= lines admit: allow-lists joined, minus ~deny-lists."""
    groups = syscall_groups()

    def expand(name):
        return set().union(*(expand(m) for m in groups[name])) if name.startswith("@") else {name}
    allowed, denied = set(), set()
    for key, value in unit["Service"]:
        if key == "SystemCallFilter":
            target = denied if value.startswith("~") else allowed
            for word in value.lstrip("~").split():
                target |= expand(word)
    return allowed - denied


def traced_syscalls(argv, workdir, port, exercise) -> set:
    """Runs argv under `strace -f`, calls exercise(exporter) once it is ready, stops it with
    SIGTERM (which saves the state file) and returns the names of the system calls it made."""
    # Not in workdir: the exporter watches that directory, and strace writing there would wake it.
    trace_dir = pathlib.Path(tempfile.mkdtemp(prefix="nle-strace-"))
    trace = trace_dir / "trace"
    with pf.serving(["strace", "-f", "-qq", "-o", trace, *argv], workdir, port) as exporter:
        exercise(exporter)
        # SIGTERM goes to the exporter, strace's child; strace exits with the exporter's code.
        strace = exporter.proc.pid
        os.kill(int(pathlib.Path(f"/proc/{strace}/task/{strace}/children").read_text().split()[0]), signal.SIGTERM)
        exporter.proc.wait(timeout=30)
    try:
        return set(re.findall(r"^\d+ +(\w+)\(", trace.read_text(), re.M))
    finally:
        shutil.rmtree(trace_dir, ignore_errors=True)


class ExampleWebConfig(unittest.TestCase):
    EXAMPLE = pf.PACKAGING / "web-config.example.yml"

    def serve_with(self, text):
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="nle-webconfig-"))
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        (workdir / "web-config.yml").write_text(text)
        (workdir / "cp.log").touch()
        port = harness.free_port()
        argv = [harness.BINARY, "follow", "--web.listen-address", f"127.0.0.1:{port}",
                "--web.config.file", workdir / "web-config.yml", workdir / "cp.log"]
        return pf.serving(argv, workdir, port)

    def test_the_example_as_shipped_is_accepted_and_changes_nothing(self):
        with self.serve_with(self.EXAMPLE.read_text()) as exporter:
            status, headers, _ = harness.http_get(exporter.url())
            self.assertEqual(status, 200)
            self.assertIsNone(headers.get("X-Content-Type-Options"))

    def test_the_example_headers_block_uncommented_is_served(self):
        text = re.sub(r"^#(http_server_config:|  headers:|    X-Content-Type-Options)", r"\1", self.EXAMPLE.read_text(), flags=re.M)
        self.assertIn("\nhttp_server_config:", text)
        with self.serve_with(text) as exporter:
            status, headers, _ = harness.http_get(exporter.url())
            self.assertEqual((status, headers.get("X-Content-Type-Options")), (200, "nosniff"))


class SocketActivation(unittest.TestCase):
    def test_the_socket_listens_where_the_service_serves_by_default(self):
        socket_unit = pf.read_unit(pf.PACKAGING / "systemd/nixfleet-log-exporter.socket")
        self.assertEqual(pf.unit_value(socket_unit, "Socket", "ListenStream"), "127.0.0.1:9761")
        self.assertRegex(harness.run("follow", "--help").stdout.decode(), r"--web.listen-address TEXT=\[?127\.0\.0\.1:9761\b")

    def test_the_socket_hands_its_listener_to_the_service_run_with_web_systemd_socket(self):
        # systemd-socket-activate does what the .socket unit does: listen, then start the service
        # command with the socket as fd 3 (LISTEN_FDS=1) on the first connection.
        unit = pf.read_unit(pf.PACKAGING / "systemd/nixfleet-log-exporter.service")
        state_root = pathlib.Path(tempfile.mkdtemp(prefix="nle-socket-"))
        self.addCleanup(shutil.rmtree, state_root, ignore_errors=True)
        (state_root / "nixfleet-log-exporter").mkdir()
        argv = pf.exec_start_argv(unit, state_root, {"ARGS": "--web.systemd-socket"})
        self.assertIn("--web.systemd-socket", pf.help_flags(argv[1]))
        port = harness.free_port()
        activate = ["systemd-socket-activate", "--listen", f"127.0.0.1:{port}", harness.BINARY, *argv[1:]]
        with pf.serving(activate, state_root, port) as exporter:
            self.assertIn("nixfleet_gate_block_total", exporter.scrape())
            self.assertIn("serving on the sockets systemd passed", exporter.stderr())


if __name__ == "__main__":
    unittest.main()
