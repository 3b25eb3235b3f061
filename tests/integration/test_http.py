"""The HTTP face of `follow`: content negotiation, gzip, the landing page, health endpoints, methods,
the telemetry path, request counting, promtool's lint, and scrapes racing ingestion."""
import http.client
import pathlib
import re
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from harness import append, cf_key, compliance_failure_line

REAL = harness.TESTDATA / "real"
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# A sample line of either format: name, optional labels, a value (and no timestamp from us).
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? '
                    r'(-?[0-9.e+-]+|NaN|[+-]Inf)$')


class HttpTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-http-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)  # registered first: runs last
        self.log = self.tmp / "cp.log"
        shutil.copy(REAL / "text.log", self.log)
        self.expected = (REAL / "expected.prom").read_text()

    def follow(self, *args, **kwargs):
        """Follows the real text log from its beginning; returns once all of it is counted."""
        exporter = harness.start_follow("--from-beginning", *args, self.log, stderr_dir=self.tmp, **kwargs)
        self.addCleanup(lambda: self.assertEqual(harness.sanitizer_report(exporter), ""))
        self.addCleanup(exporter.stop)
        harness.wait_for(lambda: harness.cp_families(exporter.scrape()) == self.expected, timeout=10,
                         message="the real text log's counts")
        return exporter

    def raw(self, exporter, method, path, headers=None):
        """One request with http.client (no header added behind our back); (status, headers, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=5)
        try:
            connection.request(method, path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        finally:
            connection.close()

    def test_metrics_is_prometheus_text_0_0_4_by_default(self):
        exporter = self.follow()
        for accept in (None, "text/plain", "*/*", "text/plain;version=0.0.4", ""):
            with self.subTest(accept=accept):
                status, headers, body = self.raw(exporter, "GET", "/metrics", {"Accept": accept} if accept is not None else {})
                self.assertEqual(status, 200)
                self.assertEqual(headers["Content-Type"], TEXT_TYPE)
                self.assertIsNone(headers["Content-Encoding"])
                text = body.decode()
                self.assertNotIn("# EOF", text)
                self.assertNotIn("_created", text)
                self.assertEqual(harness.cp_families(text), self.expected)

    def test_prometheus_accept_header_gets_openmetrics_with_eof_and_created_samples(self):
        exporter = self.follow()
        status, headers, body = self.raw(exporter, "GET", "/metrics", {"Accept": PROMETHEUS_ACCEPT})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], OPENMETRICS_TYPE)
        text = body.decode()
        self.assertTrue(text.endswith("# EOF\n"), text[-200:])
        self.assertEqual(text.count("# EOF"), 1)
        self.assertIn("# TYPE nixfleet_runtime_gate_error_events counter\n", text)
        # Each CP counter names the last event counted in it: an exemplar with the log's event_id.
        exemplar = r' # \{event_id="[0-9a-f-]{36}"\} 1 \d+(\.\d+)?\n'
        self.assertRegex(text, r"\nnixfleet_runtime_gate_error_events_total 4" + exemplar)
        self.assertRegex(text, r"\nnixfleet_runtime_gate_error_events_created \d+(\.\d+)?\n")
        self.assertRegex(text, r'\nnixfleet_compliance_failure_events_created\{control_id="CIS-4\.1",host="web-16"\} \d')
        self.assertRegex(text, r'\nnixfleet_compliance_failure_events_total\{control_id="CIS-2\.2",host="back\\\\slash"\} 2'
                         + exemplar)
        for line in text.splitlines():
            if not line.startswith("#"):
                self.assertRegex(line.split(" # ", 1)[0], SAMPLE)
        harness.parse_openmetrics(text)  # and the reference parser reads it all

    def test_openmetrics_is_served_only_when_preferred_to_text(self):
        exporter = self.follow()
        for accept, expected in (
                ("application/openmetrics-text", OPENMETRICS_TYPE),
                ("application/openmetrics-text;version=1.0.0;q=0.4,text/plain;q=0.5", TEXT_TYPE),
                ("application/openmetrics-text;version=0.0.1", TEXT_TYPE),  # a version we do not serve
                ("application/openmetrics-text;q=0.5,*/*;q=0.5", TEXT_TYPE)):
            with self.subTest(accept=accept):
                status, headers, _ = self.raw(exporter, "GET", "/metrics", {"Accept": accept})
                self.assertEqual(status, 200)
                self.assertEqual(headers["Content-Type"], expected)

    def test_gzip_when_accept_encoding_allows_it_decompresses_to_the_same_exposition(self):
        exporter = self.follow()
        for accept_encoding in ("gzip", "gzip, deflate, br", "deflate;q=1, gzip;q=0.5", "*"):
            with self.subTest(accept_encoding=accept_encoding):
                status, headers, body = self.raw(exporter, "GET", "/metrics", {"Accept-Encoding": accept_encoding})
                self.assertEqual(status, 200)
                self.assertEqual(headers["Content-Encoding"], "gzip")
                self.assertEqual(headers["Content-Type"], TEXT_TYPE)
                self.assertEqual(int(headers["Content-Length"]), len(body))
                text = harness.gunzip(body).decode()
                self.assertEqual(harness.cp_families(text), self.expected)
                self.assertEqual(harness.parse_exposition(text)["nixfleet_log_exporter_lines_read_total"], 98)
        for accept_encoding in ("identity", "gzip;q=0", "deflate", "*;q=0"):
            with self.subTest(accept_encoding=accept_encoding):
                status, headers, body = self.raw(exporter, "GET", "/metrics", {"Accept-Encoding": accept_encoding})
                self.assertEqual(status, 200)
                self.assertIsNone(headers["Content-Encoding"])
                self.assertEqual(harness.cp_families(body.decode()), self.expected)

    def test_gzip_works_with_openmetrics_too(self):
        exporter = self.follow()
        status, headers, body = self.raw(exporter, "GET", "/metrics",
                                         {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"})
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], OPENMETRICS_TYPE)
        self.assertEqual(headers["Content-Encoding"], "gzip")
        self.assertTrue(harness.gunzip(body).decode().endswith("# EOF\n"))

    def test_landing_page_names_the_tool_and_links_to_the_metrics_path(self):
        exporter = self.follow()
        status, headers, body = self.raw(exporter, "GET", "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["Content-Type"].startswith("text/html"))
        page = body.decode()
        self.assertIn("nixfleet-log-exporter", page)
        self.assertIn('href="/metrics"', page)
        version = harness.run("--version").stdout.decode()
        self.assertIn(re.search(r"\d+\.\d+\.\d+", version).group(0), page)

    def test_healthy_and_ready_answer_200(self):
        exporter = self.follow()
        for path in ("/-/healthy", "/-/ready"):
            with self.subTest(path=path):
                status, _, body = self.raw(exporter, "GET", path)
                self.assertEqual(status, 200)
                self.assertTrue(body)

    def test_head_answers_like_get_without_a_body(self):
        exporter = self.follow()
        for path in ("/metrics", "/", "/-/healthy", "/-/ready"):
            with self.subTest(path=path):
                status, headers, body = self.raw(exporter, "HEAD", path)
                self.assertEqual(status, 200)
                self.assertEqual(body, b"")
                _, get_headers, _ = self.raw(exporter, "GET", path)
                self.assertEqual(headers["Content-Type"], get_headers["Content-Type"])

    def test_an_unknown_path_is_404(self):
        exporter = self.follow()
        for method, path in (("GET", "/nope"), ("GET", "/metrics/extra"), ("HEAD", "/nope"), ("POST", "/nope"),
                             ("GET", "/-/reload")):
            with self.subTest(method=method, path=path):
                self.assertEqual(self.raw(exporter, method, path)[0], 404)

    def test_methods_other_than_get_and_head_are_405_with_an_allow_header(self):
        exporter = self.follow()
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/metrics", "/", "/-/healthy", "/-/ready"):
                with self.subTest(method=method, path=path):
                    status, headers, _ = self.raw(exporter, method, path)
                    self.assertEqual(status, 405)
                    self.assertEqual(headers["Allow"], "GET, HEAD")

    def test_a_custom_telemetry_path_serves_the_metrics_and_the_landing_page_links_to_it(self):
        exporter = self.follow("--web.telemetry-path", "/custom/prom", telemetry_path="/custom/prom")
        status, headers, body = self.raw(exporter, "GET", "/custom/prom")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], TEXT_TYPE)
        self.assertEqual(harness.cp_families(body.decode()), self.expected)
        self.assertEqual(self.raw(exporter, "GET", "/metrics")[0], 404)
        self.assertIn('href="/custom/prom"', self.raw(exporter, "GET", "/")[2].decode())

    def test_http_requests_total_counts_responses_by_code(self):
        exporter = self.follow()
        ok = 'nixfleet_log_exporter_http_requests_total{code="200"}'
        # A page whose counts did not move is served from the render cache for up to a second
        # (server/metrics_server.h), so each reading below waits that long to get a fresh page.
        fresh_after = 1.1
        time.sleep(fresh_after)
        before = exporter.samples()
        for _ in range(5):
            self.assertEqual(self.raw(exporter, "GET", "/-/healthy")[0], 200)
        for _ in range(3):
            self.assertEqual(self.raw(exporter, "GET", "/nope")[0], 404)
        self.assertEqual(self.raw(exporter, "POST", "/metrics")[0], 405)
        time.sleep(fresh_after)
        after = exporter.samples()
        # The first reading's own response and the 5 health checks; a response is counted once
        # written, so the second reading does not count itself.
        self.assertEqual(after[ok], before[ok] + 1 + 5)
        self.assertEqual(after['nixfleet_log_exporter_http_requests_total{code="404"}'],
                         before.get('nixfleet_log_exporter_http_requests_total{code="404"}', 0) + 3)
        self.assertEqual(after['nixfleet_log_exporter_http_requests_total{code="405"}'],
                         before.get('nixfleet_log_exporter_http_requests_total{code="405"}', 0) + 1)
        exporter.wait_samples({'nixfleet_log_exporter_http_requests_total{code="404"}': 3,
                               'nixfleet_log_exporter_http_requests_total{code="405"}': 1})

    def test_promtool_check_metrics_passes_on_a_live_scrape_with_no_lint_output(self):
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        exporter = self.follow()
        self.raw(exporter, "GET", "/nope")  # an http_requests_total{code="404"} series too
        exporter.wait_value('nixfleet_log_exporter_http_requests_total{code="404"}', 1)
        body = exporter.scrape().encode()
        result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertEqual(result.stdout + result.stderr, b"")

    @harness.concurrency
    def test_scrapes_from_several_threads_while_lines_are_appended_are_valid_monotonic_and_end_exact(self):
        log = self.tmp / "busy.log"
        log.touch()
        exporter = harness.start_follow(log, stderr_dir=self.tmp)
        self.addCleanup(exporter.stop)
        exporter.wait_value("nixfleet_log_exporter_files_watched", 1)
        hosts, batches, per_batch = 5, 1000, 20
        done = threading.Event()
        failures = []
        counts = []

        def scraper(accept):
            last = {}
            scrapes = 0
            try:
                while not done.is_set() or scrapes < 3:
                    status, headers, body = harness.http_get(exporter.url(), headers={"Accept": accept})
                    if status != 200:
                        raise AssertionError(f"status {status}")
                    text = body.decode()
                    if text and not text.endswith("\n"):
                        raise AssertionError("a scrape that does not end in a newline")
                    if "openmetrics" in headers["Content-Type"] and not text.endswith("# EOF\n"):
                        raise AssertionError("an OpenMetrics scrape without # EOF")
                    samples = {}
                    for line in text.splitlines():
                        if line.startswith("#"):
                            continue
                        if not SAMPLE.match(line):
                            raise AssertionError(f"malformed sample line {line!r}")
                        key, _, value = line.rpartition(" ")
                        samples[key] = float(value)
                    # One snapshot: the per-kind self-count matches the family's total.
                    failures_sum = sum(v for k, v in samples.items()
                                       if k.startswith("nixfleet_compliance_failure_events_total{"))
                    kind = samples['nixfleet_log_exporter_events_total{kind="compliance_failure"}']
                    if failures_sum != kind:
                        raise AssertionError(f"inconsistent snapshot: {failures_sum} failures, events_total {kind}")
                    for key, value in samples.items():
                        counter = "_total" in key and not key.startswith("process_")
                        if counter and value < last.get(key, 0):
                            raise AssertionError(f"{key} went down from {last[key]} to {value}")
                    last = samples
                    scrapes += 1
                    counts.append(samples["nixfleet_log_exporter_lines_read_total"])
            except Exception as error:  # noqa: BLE001 -- reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=scraper, args=(accept,))
                   for accept in ("text/plain", PROMETHEUS_ACCEPT, "*/*", PROMETHEUS_ACCEPT)]
        for thread in threads:
            thread.start()
        try:
            for batch in range(batches):
                append(log, b"".join(compliance_failure_line(host=f"web-{(batch * per_batch + i) % hosts}")
                                     for i in range(per_batch)))
        finally:
            done.set()
            for thread in threads:
                thread.join(timeout=60)
        self.assertEqual(failures, [])
        total = batches * per_batch
        # The scrapes really met ingestion: some saw it half done.
        self.assertTrue([c for c in counts if 0 < c < total], "no scrape happened while lines were read")
        samples = exporter.wait_value("nixfleet_log_exporter_lines_read_total", total, timeout=30)
        for h in range(hosts):
            self.assertEqual(samples[cf_key(host=f"web-{h}")], total // hosts)
        self.assertEqual(samples['nixfleet_log_exporter_events_total{kind="compliance_failure"}'], total)
        self.assertEqual(exporter.stop(), 0, exporter.stderr())
        self.assertEqual(harness.sanitizer_report(exporter), "")


if __name__ == "__main__":
    unittest.main()
