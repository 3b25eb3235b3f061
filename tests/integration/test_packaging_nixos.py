"""The NixOS module and package: every .nix file parses (`nix-instantiate --parse`), and the module,
evaluated against a stub of the `lib` functions it uses (packaging/nixos/test/eval-module.nix),
generates an ExecStart whose every flag the binary accepts, which serves metrics when run, with the
hardening of the systemd unit."""
import json
import pathlib
import shlex
import shutil
import tempfile
import unittest

import harness
import packaging_files as pf

NIXOS = pf.PACKAGING / "nixos"
STORE_BINARY = "/nix/store/00000000000000000000000000000000-nixfleet-log-exporter-0.1.0/bin/nixfleet-log-exporter"
REQUIRED_OPTIONS = {"enable", "port", "listenAddress", "extraFlags", "openFirewall", "user", "group",
                    "journalUnit", "logFile", "stateFile", "webConfigFile", "package"}
# Unit-file settings that are not hardening: how the program is run, or set per shape.
NOT_HARDENING = {"Type", "EnvironmentFile", "ExecStart", "ExecReload", "KillSignal", "Restart", "RestartSec",
                 "SupplementaryGroups"}


def nix_value(value) -> str:
    """A Python value as a Nix expression (strings, bools, ints, lists, dicts)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value).replace("${", "\\${")
    if isinstance(value, list):
        return "[ " + " ".join(nix_value(v) for v in value) + " ]"
    if isinstance(value, dict):
        return "{ " + " ".join(f"{k} = {nix_value(v)};" for k, v in value.items()) + " }"
    raise TypeError(value)


def evaluate(settings: dict) -> dict:
    result = pf.run_tool("nix-instantiate", "--eval", "--strict", "--json", NIXOS / "test/eval-module.nix",
                         "--arg", "settings", nix_value(settings))
    return json.loads(result.stdout)


def service_config(settings: dict) -> dict:
    return evaluate({"enable": True, **settings})["config"]["systemd"]["services"]["nixfleet-log-exporter"]["serviceConfig"]


def systemd_words(value) -> str:
    """A serviceConfig value as systemd reads it: bools as yes/no, lists as space-separated words."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return " ".join(value)
    return str(value)


class NixFiles(unittest.TestCase):
    def test_every_nix_file_parses(self):
        files = sorted(pf.PACKAGING.rglob("*.nix"))
        self.assertGreaterEqual(len(files), 3)
        for path in files:
            result = pf.run_tool("nix-instantiate", "--parse", path, check=False)
            self.assertEqual(result.returncode, 0, f"{path}: {result.stderr}")

    def test_a_broken_nix_file_does_not_parse(self):
        with tempfile.NamedTemporaryFile("w", suffix=".nix") as broken:
            broken.write((NIXOS / "module.nix").read_text().replace("};\n}", "}\n}", 1))
            broken.flush()
            self.assertNotEqual(pf.run_tool("nix-instantiate", "--parse", broken.name, check=False).returncode, 0)

    def test_the_package_builds_with_nixpkgs_cmake_cli11_re2_simdjson_httplib_and_catch2(self):
        stub = ("let f = import " + str(NIXOS / "package.nix") + "; in builtins.attrNames (builtins.functionArgs f)")
        names = json.loads(pf.run_tool("nix-instantiate", "--eval", "--strict", "--json", "-E", stub).stdout)
        for name in ("cmake", "cli11", "re2", "simdjson", "httplib", "catch2"):
            self.assertIn(name, names)


class Module(unittest.TestCase):
    def test_the_module_has_the_options_of_every_nixpkgs_exporter_and_its_own(self):
        evaluated = evaluate({})
        self.assertEqual(REQUIRED_OPTIONS - set(evaluated["optionNames"]), set())
        self.assertEqual(evaluated["defaults"]["port"], 9761)
        self.assertEqual(evaluated["defaults"]["listenAddress"], "127.0.0.1")
        self.assertEqual(evaluated["config"], {}, "a module that is not enabled configures nothing")

    def test_every_flag_of_the_generated_exec_start_is_one_the_binary_accepts(self):
        for settings in ({}, {"logFile": "/var/log/nixfleet/cp.log", "extraFlags": ["--max-series", "20000"],
                              "webConfigFile": "/etc/nixfleet-log-exporter/web-config.yml"}):
            argv = shlex.split(service_config(settings)["ExecStart"])
            self.assertEqual(argv[0], STORE_BINARY)
            accepted = pf.help_flags(argv[1])
            flags = [word for word in argv[2:] if word.startswith("-")]
            self.assertIn("--state-file", flags)
            self.assertEqual("--web.config.file" in flags, "webConfigFile" in settings)
            self.assertEqual([f for f in flags if f not in accepted], [], settings)

    def test_the_generated_exec_start_follows_a_log_file_and_serves_metrics(self):
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="nle-nixos-"))
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        log = workdir / "cp.log"
        log.write_bytes(harness.gate_block_line("host-edge") * 3)
        port = harness.free_port()
        config = service_config({"logFile": str(log), "port": port, "stateFile": "state.json",
                                 "extraFlags": ["--from-beginning"]})
        self.assertEqual(config["ReadOnlyPaths"], [str(workdir)])
        self.assertNotIn("systemd-journal", config["SupplementaryGroups"])
        # StateDirectory= is /var/lib/nixfleet-log-exporter; here it is a temporary directory.
        argv = [harness.BINARY, *(word.replace("/var/lib/nixfleet-log-exporter", str(workdir))
                                  for word in shlex.split(config["ExecStart"])[1:])]
        with pf.serving(argv, workdir, port) as exporter:
            exporter.wait_value(harness.gate_key("host-edge"), 3, timeout=20)
        self.assertTrue((workdir / "state.json").is_file())

    def test_the_journal_shape_reads_the_unit_in_the_systemd_journal_group(self):
        config = service_config({})
        argv = shlex.split(config["ExecStart"])
        self.assertEqual(argv[argv.index("--journal-unit") + 1], "nixfleet-control-plane")
        self.assertEqual(config["SupplementaryGroups"], ["systemd-journal"])
        self.assertEqual(argv[argv.index("--web.listen-address") + 1], "127.0.0.1:9761")

    def test_open_firewall_opens_the_port(self):
        closed = evaluate({"enable": True})["config"]["networking"]["firewall"]["allowedTCPPorts"]
        opened = evaluate({"enable": True, "openFirewall": True, "port": 9999})["config"]["networking"]["firewall"]["allowedTCPPorts"]
        self.assertEqual((closed, opened), ([], [9999]))

    def test_the_module_hardens_the_service_like_the_systemd_unit(self):
        config = service_config({})
        unit = pf.read_unit(pf.PACKAGING / "systemd/nixfleet-log-exporter.service")["Service"]
        expected = {}
        for key, value in unit:
            if key not in NOT_HARDENING:
                expected.setdefault(key, []).append(value)
        for key, values in expected.items():
            self.assertIn(key, config, f"the module lacks {key}=")
            self.assertEqual(systemd_words(config[key]), " ".join(values), key)


if __name__ == "__main__":
    unittest.main()
