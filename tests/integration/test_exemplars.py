"""Exemplars: each CP counter series names the last event counted in it (`event_id` for reports,
`host` for a gate block line that has one) on OpenMetrics pages only; text 0.0.4 pages carry none.
Checked with the strict readers of both formats (prometheus_client's OpenMetrics parser, promtool),
across replay's parallel ranges, across a kill -9 with a state file, and through a real Prometheus
with exemplar storage, whose /api/v1/query_exemplars must return the last ComplianceFailure's
event_id of a host and control."""
import datetime
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import harness
import journal_fixture
import prometheus_server

CF_FAMILY = "nixfleet_compliance_failure_events"


def rfc3339(unix_seconds: float) -> str:
    moment = datetime.datetime.fromtimestamp(unix_seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# One CP event in each line shape of LOG-FORMAT.md. `at` is its log time (Unix seconds, whole
# microseconds), `eid` its event_id (None: the line has none).
def json_report(event, at, eid, host="web-07", control_id=None):
    fields = {"message": "report received", "hostname": host, "event": event}
    if control_id is not None:
        fields["control_id"] = control_id
    if eid is not None:
        fields["event_id"] = eid
    return json.dumps({"timestamp": rfc3339(at), "level": "INFO", "fields": fields, "target": "report"},
                      ensure_ascii=False) + "\n"


def text_report(event, at, eid, host="web-07", control_id=None):
    line = f"{rfc3339(at)}  INFO report: report received hostname={host} event={event}"
    if control_id is not None:
        line += f" control_id={control_id}"
    if eid is not None:
        line += f" event_id={eid}"
    return line + " signature_status=Some(Verified)\n"


def journald_record(cp_line, at):
    return json.dumps({"__CURSOR": f"s=1;i={int(at * 1e6):x}", "__REALTIME_TIMESTAMP": str(int(round(at * 1e6))),
                       "_SYSTEMD_UNIT": "nixfleet-control-plane.service", "MESSAGE": cp_line.rstrip("\n")},
                      ensure_ascii=False) + "\n"


def gate_line(gate, at, host=None):
    fields = {"message": "dispatch: held by fleet-level gate", "gate": gate}
    if host is not None:
        fields["hostname"] = host
    return json.dumps({"timestamp": rfc3339(at), "level": "INFO", "fields": fields, "target": "dispatch"}) + "\n"


def exemplars_of(samples, family):
    """{tuple of sorted label items: exemplar or None} of the family's _total samples."""
    return {tuple(sorted(s["labels"].items())): s["exemplar"] for s in samples
            if s["family"] == family and s["name"] == family + "_total"}


def cf_labels(host, control_id):
    return (("control_id", control_id), ("host", host))


class Log:
    """A log written line by line that remembers, per CP series, the last event counted in it."""
    T0 = 1795162443.511203  # 2026-11-20T08:14:03.511203Z

    def __init__(self):
        self.lines = []
        self.last = {}  # (family, labels) -> (exemplar labels or None, log time)
        self.n = 0

    def _at(self):
        self.n += 1
        return self.T0 + self.n  # whole seconds apart; the fraction stays exact

    def compliance_failure(self, host, control_id, eid, shape="json"):
        at = self._at()
        make = text_report if shape in ("text", "journald") else json_report
        line = make("compliance-failure", at, eid, host, control_id)
        if shape == "journald":
            # The CP line's own time wins over the record's.
            line = journald_record(line, at + 0.25)
        self.lines.append(line)
        self.last[(CF_FAMILY, cf_labels(host, control_id))] = ({"event_id": eid} if eid else None, at)

    def runtime_gate_error(self, eid):
        at = self._at()
        self.lines.append(json_report("runtime-gate-error", at, eid))
        self.last[("nixfleet_runtime_gate_error_events", ())] = ({"event_id": eid} if eid else None, at)

    def gate_block(self, gate, host=None):
        at = self._at()
        self.lines.append(gate_line(gate, at, host))
        self.last[("nixfleet_gate_block", (("gate", gate),))] = ({"host": host} if host else None, at)

    def text(self):
        return "".join(self.lines)


def check_against(test, samples, log):
    for (family, labels), (exemplar_labels, at) in log.last.items():
        with test.subTest(family=family, labels=labels):
            exemplar = exemplars_of(samples, family).get(labels, "no such series")
            if exemplar_labels is None:
                test.assertIsNone(exemplar)
            else:
                test.assertEqual(exemplar["labels"], exemplar_labels)
                test.assertEqual(exemplar["value"], 1)
                test.assertAlmostEqual(exemplar["timestamp"], at, delta=1e-6)


def a_varied_log():
    log = Log()
    for round_ in range(3):
        for i, shape in enumerate(("json", "text", "journald")):
            log.compliance_failure("web-07", "CIS-5.2.1", f"cf-{round_}-{shape}", shape)
            log.compliance_failure(f"web-1{i}", "CIS-1.1", f"cf-{round_}-web-1{i}", shape)
        log.runtime_gate_error(f"rge-{round_}")
        log.gate_block("host-edge", host=f"db-{round_}")
    log.compliance_failure("web-99", "CIS-4.4", "named")
    log.compliance_failure("web-99", "CIS-4.4", None)  # the last names nothing: no exemplar
    log.gate_block("compliance-wave")  # the CP's usual gate line: no host, no exemplar
    log.compliance_failure("h\u00f4te \"quoted\"", "CIS-2.2", "e\u00efd-\\-\u65e5")  # escapes, non-ASCII
    return log


class ExemplarTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-exemplars-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def replay(self, path, *flags, env=None):
        result = subprocess.run([harness.BINARY, "replay", *map(str, flags), str(path)],
                                env={**os.environ, **(env or {})}, capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stdout.decode("utf-8")

    def test_replay_openmetrics_names_the_last_event_of_every_series_and_passes_the_strict_parser(self):
        log = a_varied_log()
        path = self.tmp / "cp.log"
        path.write_text(log.text(), encoding="utf-8")
        page = self.replay(path, "--output-format", "openmetrics")
        check_against(self, harness.parse_openmetrics(page), log)
        # Parallel ranges, merged in input order, name the same events.
        parallel = self.replay(path, "--output-format", "openmetrics", "--threads", "3",
                               env={"NLE_REPLAY_PARALLEL_MIN_BYTES": "1"})
        self.assertEqual(parallel, page)
        # The text page: no exemplars, and promtool has nothing to say.
        text = self.replay(path)
        self.assertNotIn(" # {", text)
        harness.promtool_check_metrics(text)

    def test_the_real_logs_of_one_cp_run_name_the_same_events_in_every_shape(self):
        """testdata/real: one simulated CP run through the real tracing-subscriber formatters and the
        real journalctl. Whatever the shape, every series names the same event at the same time."""
        real = harness.TESTDATA / "real"
        pages = {}
        for path in sorted(real.iterdir()):
            if path.suffix == ".prom":
                continue
            samples = harness.parse_openmetrics(self.replay(path, "--output-format", "openmetrics"))
            pages[path.name] = {(s["name"], tuple(sorted(s["labels"].items()))): s["exemplar"] for s in samples
                                if s["name"].startswith("nixfleet_") and s["name"].endswith("_total")
                                and not s["name"].startswith("nixfleet_log_exporter_")}
        reference = pages["json.log"]
        named = {key: e for key, e in reference.items() if e is not None}
        self.assertGreaterEqual(len(named), 10)
        for name, exemplars in pages.items():
            with self.subTest(log=name):
                self.assertEqual(exemplars, reference)
        # Each names an event that is in the log, on a line of its own series' kind.
        json_log = (real / "json.log").read_text(encoding="utf-8")
        for (family, _), exemplar in named.items():
            if "event_id" in exemplar["labels"]:
                event_id = exemplar["labels"]["event_id"]
                line = next(l for l in json_log.splitlines() if event_id in l)
                self.assertIn("report received", line)
                kind = "compliancefailure" if "compliance" in family else "runtimegateerror"
                self.assertIn(kind, line.lower().replace("-", ""))  # compliance-failure or ComplianceFailure

    def test_an_exemplar_over_128_code_points_is_left_out_and_counted_and_the_page_stays_valid(self):
        log = Log()
        log.compliance_failure("web-07", "CIS-5.2.1", "kept")
        log.compliance_failure("web-08", "CIS-5.2.1", "\u00e9" * 120)  # 8 + 120 code points: the limit
        log.compliance_failure("web-07", "CIS-5.2.1", "\u00e9" * 121)  # one over: web-07's exemplar goes
        log.runtime_gate_error("\U0001F600" * 121)
        path = self.tmp / "cp.log"
        path.write_text(log.text(), encoding="utf-8")
        samples = harness.parse_openmetrics(self.replay(path, "--output-format", "openmetrics"))
        exemplars = exemplars_of(samples, CF_FAMILY)
        self.assertIsNone(exemplars[cf_labels("web-07", "CIS-5.2.1")])
        self.assertEqual(exemplars[cf_labels("web-08", "CIS-5.2.1")]["labels"], {"event_id": "\u00e9" * 120})
        dropped = {s["labels"]["family"]: s["value"] for s in samples
                   if s["name"] == "nixfleet_log_exporter_exemplars_dropped_total"}
        self.assertEqual(dropped, {CF_FAMILY + "_total": 1, "nixfleet_runtime_gate_error_events_total": 1})
        text = self.replay(path)
        harness.promtool_check_metrics(text)
        self.assertIn('nixfleet_log_exporter_exemplars_dropped_total{family="nixfleet_compliance_failure_events_total"} 1\n',
                      text)

    def test_follow_serves_exemplars_only_when_openmetrics_is_negotiated(self):
        log = a_varied_log()
        path = self.tmp / "cp.log"
        path.write_text(log.text(), encoding="utf-8")
        with harness.follow("--from-beginning", path, stderr_dir=self.tmp) as exporter:
            harness.wait_for(lambda: "cf-2-journald" in exporter.scrape(harness.OPENMETRICS_ACCEPT), timeout=15,
                             message="the log's last events")
            check_against(self, harness.parse_openmetrics(exporter.scrape(harness.OPENMETRICS_ACCEPT)), log)
            text = exporter.scrape()
            self.assertNotIn(" # {", text)
            harness.promtool_check_metrics(text)
            # A line appended now names its series at the next scrape.
            harness.append(path, json_report("compliance-failure", time.time(), "live-1", "web-07", "CIS-5.2.1").encode())
            harness.wait_for(lambda: exemplars_of(harness.parse_openmetrics(exporter.scrape(harness.OPENMETRICS_ACCEPT)),
                                                  CF_FAMILY)[cf_labels("web-07", "CIS-5.2.1")]["labels"]
                             == {"event_id": "live-1"}, timeout=15, message="the appended event's exemplar")

    def test_the_first_scrape_after_kill_9_still_names_the_latest_event(self):
        path, state = self.tmp / "cp.log", self.tmp / "state.json"
        path.write_text(a_varied_log().text(), encoding="utf-8")

        def named(exporter):
            samples = harness.parse_openmetrics(exporter.scrape(harness.OPENMETRICS_ACCEPT))
            exemplar = exemplars_of(samples, CF_FAMILY).get(cf_labels("web-07", "CIS-5.2.1"))
            return exemplar and exemplar["labels"]["event_id"]

        exporter = harness.start_follow("--from-beginning", path, "--state-file", state, stderr_dir=self.tmp)
        try:
            for n in range(3):
                harness.append(path, json_report("compliance-failure", time.time(), f"before-kill-{n}", "web-07",
                                                 "CIS-5.2.1").encode())
                harness.wait_for(lambda: named(exporter) == f"before-kill-{n}", timeout=15, message=f"before-kill-{n}")
        finally:
            exporter.stop(signal.SIGKILL)
        self.assertEqual(json.loads(state.read_text())["version"], 2)
        with harness.follow(path, "--state-file", state, stderr_dir=self.tmp) as exporter:
            self.assertEqual(named(exporter), "before-kill-2")  # the first scrape, before any new line
            harness.append(path, json_report("compliance-failure", time.time(), "after-restart", "web-07",
                                             "CIS-5.2.1").encode())
            harness.wait_for(lambda: named(exporter) == "after-restart", timeout=15, message="after-restart")

    def test_the_native_journal_gives_its_entry_time_to_lines_without_one(self):
        """A CP under systemd often logs without time (journald keeps it): --journal-unit/-directory
        reads only MESSAGE, so the entry's __REALTIME_TIMESTAMP is the event's log time."""
        journal = self.tmp / "journal"
        untimed = " INFO report: report received hostname=web-07 event=compliance-failure control_id=C event_id=j-1"
        timed = text_report("compliance-failure", Log.T0, "j-2", "web-08", "C").rstrip("\n")
        stamps = [1795162443000007, 1795162444000008]
        journal_fixture.make_journal(journal, [untimed, timed], realtime=stamps)
        with harness.follow("--journal-directory", journal, "--from-beginning", stderr_dir=self.tmp) as exporter:
            def exemplars():
                samples = harness.parse_openmetrics(exporter.scrape(harness.OPENMETRICS_ACCEPT))
                return exemplars_of(samples, CF_FAMILY)
            harness.wait_for(lambda: len([e for e in exemplars().values() if e]) == 2, timeout=15,
                             message="both journal entries counted")
            got = exemplars()
        self.assertEqual(got[cf_labels("web-07", "C")]["labels"], {"event_id": "j-1"})
        self.assertAlmostEqual(got[cf_labels("web-07", "C")]["timestamp"], stamps[0] / 1e6, delta=1e-6)
        # A line with its own time keeps it.
        self.assertAlmostEqual(got[cf_labels("web-08", "C")]["timestamp"], Log.T0, delta=1e-6)

    @harness.slow
    def test_prometheus_query_exemplars_returns_the_last_compliance_failure_of_a_host_and_control(self):
        """Debian's Prometheus 2.42 asks for OpenMetrics first (it predates scrape_protocols, which
        2.49 added) and keeps exemplars with --enable-feature=exemplar-storage."""
        path = self.tmp / "cp.log"
        start = time.time()
        lines = []
        for n in range(5):  # log times now, one millisecond apart, in input order
            lines.append(json_report("compliance-failure", start + n / 1000, f"e2e-{n}", "web-07", "CIS-5.2.1"))
            lines.append(json_report("compliance-failure", start + n / 1000, f"other-{n}", "web-08", "CIS-5.2.1"))
        path.write_text("".join(lines), encoding="utf-8")
        with harness.follow("--from-beginning", path, stderr_dir=self.tmp) as exporter:
            prometheus = prometheus_server.start(self, self.tmp, [f"127.0.0.1:{exporter.port}"],
                                                 extra_args=("--enable-feature=exemplar-storage",))
            selector = 'nixfleet_compliance_failure_events_total{host="web-07",control_id="CIS-5.2.1"}'

            def latest_event_id():
                exemplars = prometheus.query_exemplars(selector, start - 3600, time.time() + 3600)
                return max(exemplars, key=lambda e: e["timestamp"])["labels"]["event_id"] if exemplars else None
            harness.wait_for(lambda: latest_event_id() == "e2e-4", timeout=60, message="query_exemplars: e2e-4")
            exemplar = max(prometheus.query_exemplars(selector, start - 3600, time.time() + 3600),
                           key=lambda e: e["timestamp"])
            self.assertAlmostEqual(exemplar["timestamp"], start + 0.004, delta=0.002)  # the log time, not the scrape's
            self.assertEqual(float(exemplar["value"]), 1)
            # One written now is the one Prometheus names next.
            harness.append(path, json_report("compliance-failure", time.time(), "e2e-live", "web-07", "CIS-5.2.1").encode())
            harness.wait_for(lambda: latest_event_id() == "e2e-live", timeout=60, message="query_exemplars: e2e-live")
            others = prometheus.query_exemplars('nixfleet_compliance_failure_events_total{host="web-08"}',
                                                start - 3600, time.time() + 3600)
            self.assertEqual(max(others, key=lambda e: e["timestamp"])["labels"], {"event_id": "other-4"})


if __name__ == "__main__":
    unittest.main()
