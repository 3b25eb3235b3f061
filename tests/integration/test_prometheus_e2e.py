"""End to end with a real Prometheus server (Debian's `prometheus`): it scrapes `follow` every
second over loopback, and its query API must return the exact counts the generator expects."""
import pathlib
import shutil
import subprocess
import tempfile
import unittest

import harness
import prometheus_server
from harness import append


def expected_values(exposition: str) -> dict:
    samples = harness.parse_exposition(exposition)
    return {
        "runtime": samples["nixfleet_runtime_gate_error_events_total"],
        "failures": sum(v for k, v in samples.items() if k.startswith("nixfleet_compliance_failure_events_total{")),
        "series": sum(1 for k in samples if k.startswith("nixfleet_compliance_failure_events_total{")),
        "compliance_wave": samples[harness.gate_key("compliance-wave")],
    }


class PrometheusEndToEndTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-prom-e2e-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    @harness.slow
    def test_prometheus_scrapes_the_exporter_and_its_query_api_returns_the_exact_counts(self):
        log, expected_path = self.tmp / "cp.log", self.tmp / "cp.prom"
        result = subprocess.run([harness.GEN_LOGS, "--format", "mixed", "--bytes", "4M", "--seed", "99",
                                 "--out", log, "--expected", expected_path], capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        expected = expected_values(expected_path.read_text())

        with harness.follow("--from-beginning", log, stderr_dir=self.tmp) as exporter:
            harness.wait_for(lambda: harness.cp_families(exporter.scrape()) == expected_path.read_text(),
                             timeout=30, message="the exporter's own counts")
            prometheus = prometheus_server.start(self, self.tmp, [f"127.0.0.1:{exporter.port}"])
            wait_query = prometheus.wait_query
            wait_query('up{job="nle"}', 1)
            wait_query("nixfleet_runtime_gate_error_events_total", expected["runtime"])
            wait_query("sum(nixfleet_compliance_failure_events_total)", expected["failures"])
            wait_query("count(nixfleet_compliance_failure_events_total)", expected["series"])
            wait_query('nixfleet_gate_block_total{gate="compliance-wave"}', expected["compliance_wave"])
            wait_query("count(nixfleet_cp_build_info)", 1)

            # Live: lines appended now reach Prometheus through the next scrapes.
            append(log, harness.runtime_gate_error_line() * 3
                   + harness.compliance_failure_line(host="e2e-host", control_id="CIS-E2E"))
            wait_query("nixfleet_runtime_gate_error_events_total", expected["runtime"] + 3)
            wait_query('nixfleet_compliance_failure_events_total{host="e2e-host",control_id="CIS-E2E"}', 1)
            wait_query("sum(nixfleet_compliance_failure_events_total)", expected["failures"] + 1)
            # Prometheus asked for OpenMetrics and parsed it: no failed scrapes along the way.
            wait_query('min_over_time(up{job="nle"}[1h])', 1)
            self.assertGreater(exporter.samples()['nixfleet_log_exporter_http_requests_total{code="200"}'], 0)


if __name__ == "__main__":
    unittest.main()
