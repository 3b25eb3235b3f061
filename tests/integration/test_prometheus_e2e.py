"""End to end with a real Prometheus server (Debian's `prometheus`): it scrapes `follow` every
second over loopback, and its query API must return the exact counts the generator expects."""
import os
import pathlib
import shutil
import subprocess
import tempfile
import unittest

import harness
from harness import append

PROMETHEUS = harness.PROMETHEUS


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

    def start_prometheus(self, target_port):
        """Prometheus scraping the exporter every second, with a temporary TSDB."""
        return harness.start_prometheus(
            self, self.tmp,
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: nle\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n",
            f"--storage.tsdb.path={self.tmp / 'tsdb'}")

    def query(self, base, promql):
        """The single value of an instant query, or None when it has no result yet."""
        result = harness.prometheus_query(base, promql)
        if not result:
            return None
        if len(result) != 1:
            raise AssertionError(f"query {promql!r} gave {len(result)} series")
        return result[0][1]

    def wait_query(self, base, promql, expected, timeout=30.0):
        last = []

        def check():
            last[:] = [self.query(base, promql)]
            return last[0] == expected
        try:
            harness.wait_for(check, timeout=timeout, interval=0.2, message=promql)
        except AssertionError:
            self.fail(f"{promql} never became {expected}; last value {last}")

    @harness.slow
    def test_prometheus_scrapes_the_exporter_and_its_query_api_returns_the_exact_counts(self):
        self.assertTrue(os.access(PROMETHEUS, os.X_OK), f"{PROMETHEUS} is missing: install Debian's prometheus")
        log, expected_path = self.tmp / "cp.log", self.tmp / "cp.prom"
        result = subprocess.run([harness.GEN_LOGS, "--format", "mixed", "--bytes", "4M", "--seed", "99",
                                 "--out", log, "--expected", expected_path], capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        expected = expected_values(expected_path.read_text())

        with harness.follow("--from-beginning", log, stderr_dir=self.tmp) as exporter:
            harness.wait_for(lambda: harness.cp_families(exporter.scrape()) == expected_path.read_text(),
                             timeout=30, message="the exporter's own counts")
            base = self.start_prometheus(exporter.port)
            self.wait_query(base, 'up{job="nle"}', 1)
            self.wait_query(base, "nixfleet_runtime_gate_error_events_total", expected["runtime"])
            self.wait_query(base, "sum(nixfleet_compliance_failure_events_total)", expected["failures"])
            self.wait_query(base, "count(nixfleet_compliance_failure_events_total)", expected["series"])
            self.wait_query(base, 'nixfleet_gate_block_total{gate="compliance-wave"}', expected["compliance_wave"])
            self.wait_query(base, "count(nixfleet_cp_build_info)", 1)

            # Live: lines appended now reach Prometheus through the next scrapes.
            append(log, harness.runtime_gate_error_line() * 3
                   + harness.compliance_failure_line(host="e2e-host", control_id="CIS-E2E"))
            self.wait_query(base, "nixfleet_runtime_gate_error_events_total", expected["runtime"] + 3)
            self.wait_query(base, 'nixfleet_compliance_failure_events_total{host="e2e-host",control_id="CIS-E2E"}', 1)
            self.wait_query(base, "sum(nixfleet_compliance_failure_events_total)", expected["failures"] + 1)
            # Prometheus asked for OpenMetrics and parsed it: no failed scrapes along the way.
            self.wait_query(base, 'min_over_time(up{job="nle"}[1h])', 1)
            self.assertGreater(exporter.samples()['nixfleet_log_exporter_http_requests_total{code="200"}'], 0)


if __name__ == "__main__":
    unittest.main()
