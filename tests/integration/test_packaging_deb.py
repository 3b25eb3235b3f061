"""The Debian package: `cpack -G DEB` builds it with Depends from dpkg-shlibdeps, and `dpkg -i`
installs it on this machine, where the installed binary runs; it is purged afterwards.
Labelled `packaging` (needs root and a build without sanitizers)."""
import pathlib
import shutil
import tempfile
import unittest

import harness
import packaging_files as pf

PACKAGE = "nixfleet-log-exporter"


def build_deb(directory) -> pathlib.Path:
    pf.run_tool("cpack", "-G", "DEB", "--config", pf.BUILD_DIR / "CPackConfig.cmake", "-B", directory)
    debs = sorted(pathlib.Path(directory).glob("*.deb"))
    if len(debs) != 1:
        raise AssertionError(f"cpack made {debs}")
    return debs[0]


def is_installed():
    result = pf.run_tool("dpkg-query", "-W", "-f", "${Status}", PACKAGE, check=False)
    return result.returncode == 0 and "installed" in result.stdout.split()


class DebianPackage(unittest.TestCase):
    def setUp(self):
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="nle-deb-"))
        self.addCleanup(shutil.rmtree, self.workdir, ignore_errors=True)
        self.deb = build_deb(self.workdir)

    @harness.packaging
    def test_depends_come_from_dpkg_shlibdeps(self):
        depends = pf.run_tool("dpkg-deb", "--field", self.deb, "Depends").stdout
        # Versioned library packages only dpkg-shlibdeps would write.
        for library in ("libc6 (>= ", "libstdc++6 (>= ", "libsystemd0", "zlib1g (>= ", "libsimdjson"):
            self.assertIn(library, depends)

    @harness.packaging
    def test_the_package_holds_binary_man_page_units_rules_dashboard_and_web_config(self):
        listing = pf.run_tool("dpkg-deb", "--contents", self.deb).stdout
        for path in ("./usr/bin/nixfleet-log-exporter", "./usr/share/man/man1/nixfleet-log-exporter.1",
                     "./usr/lib/systemd/system/nixfleet-log-exporter.service",
                     "./usr/lib/systemd/system/nixfleet-log-exporter.socket",
                     "./usr/share/nixfleet-log-exporter/prometheus/nixfleet-log-exporter.rules.yml",
                     "./usr/share/nixfleet-log-exporter/grafana/nixfleet-log-exporter.json",
                     "./usr/share/nixfleet-log-exporter/web-config.example.yml"):
            self.assertIn(path, listing)

    @harness.packaging
    def test_dpkg_installs_it_and_the_installed_binary_runs(self):
        self.assertFalse(is_installed(), f"{PACKAGE} is installed already; this test would replace it")
        self.addCleanup(lambda: pf.run_tool("dpkg", "--purge", PACKAGE, check=False))
        pf.run_tool("dpkg", "-i", self.deb)
        binary = "/usr/bin/nixfleet-log-exporter"

        version = pf.run_tool(binary, "--version")
        self.assertTrue(version.stdout.startswith("nixfleet-log-exporter"), version.stdout)

        replay = pf.run_tool(binary, "replay", harness.TESTDATA / "sample/cp.log")
        self.assertRegex(replay.stdout, r'(?m)^nixfleet_gate_block_total\{gate="[a-z-]+"\} \d+$')
        self.assertIn("nixfleet_compliance_failure_events_total{", replay.stdout)

        verify = pf.run_tool("systemd-analyze", "verify", "--man=no",
                             "/usr/lib/systemd/system/nixfleet-log-exporter.service",
                             "/usr/lib/systemd/system/nixfleet-log-exporter.socket", check=False)
        self.assertEqual(verify.returncode, 0, verify.stderr)

        pf.run_tool("dpkg", "--purge", PACKAGE)
        self.assertFalse(pathlib.Path(binary).exists())


if __name__ == "__main__":
    unittest.main()
