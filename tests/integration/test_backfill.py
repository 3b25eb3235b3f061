"""`replay --step`: OpenMetrics history that promtool turns into TSDB blocks and a real Prometheus
serves. The values Prometheus returns at an instant must be what a plain replay of the log cut at
that instant counts."""
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import unittest

import harness

PROMTOOL = "/usr/bin/promtool"

# The time a line says it was logged, found independently of the exporter's parser: journald's
# __REALTIME_TIMESTAMP, a JSON "timestamp" member, or an RFC 3339 time that starts the line
# (after colour codes, or behind journalctl -o short's prefix).
_REALTIME = re.compile(rb'"__REALTIME_TIMESTAMP":"(\d+)"')
_JSON_TIME = re.compile(rb'"timestamp":"([^"]+)"')
_SGR = re.compile(rb"(?:\x1b\[[0-9;]*m)*")
_RFC3339 = re.compile(rb"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?")
_SYSLOG = re.compile(rb"^[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}(?:\.\d+)? [^:]*?: ")


def rfc3339_micros(match) -> int:
    date, clock, fraction, zone = match.groups()
    moment = datetime.datetime.fromisoformat(f"{date.decode()}T{clock.decode()}+00:00")
    micros = int(moment.timestamp()) * 1_000_000 + int(((fraction or b"0").decode() + "000000")[:6])
    if zone and zone != b"Z":
        sign = -1 if zone[:1] == b"-" else 1
        digits = zone[1:].replace(b":", b"")
        micros -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000
    return micros


def logged_at(line: bytes):
    body = line.lstrip(b" \t\x1e")
    if body.startswith(b"{"):
        match = _REALTIME.search(body)
        if match:
            return int(match.group(1))
        match = _JSON_TIME.search(body)
        time = _RFC3339.match(match.group(1)) if match else None
        return rfc3339_micros(time) if time else None
    syslog = _SYSLOG.match(line)
    if syslog:
        return logged_at(line[syslog.end():])
    match = _RFC3339.match(line, _SGR.match(line).end())
    return rfc3339_micros(match) if match else None


def cut_at(lines, instant_micros):
    """The log as it stood when its time reached `instant_micros`: every line up to the first one
    stamped later (lines without a time, or stamped earlier than a line before them, go with
    the lines before them)."""
    latest = None
    for index, line in enumerate(lines):
        stamp = logged_at(line)
        if stamp is not None:
            latest = stamp if latest is None else max(latest, stamp)
            if latest > instant_micros:
                return lines[:index]
    return lines


def cp_counter_samples(exposition: str) -> dict:
    return {key: value for key, value in harness.parse_exposition(exposition).items()
            if key.startswith("nixfleet_") and not key.startswith("nixfleet_log_exporter_")
            and key.split("{")[0].endswith("_total")}


def escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(metric: dict) -> str:
    """A series from Prometheus' query API written as the exposition writes it."""
    name = metric.pop("__name__")
    labels = ",".join(f'{k}="{escaped(v)}"' for k, v in sorted(metric.items()))
    return f"{name}{{{labels}}}" if labels else name


class BackfillTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-backfill-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def make_log(self) -> bytes:
        """A generated log of every shape (about 15 s of log time), then, after a quiet
        20 minutes, text events and a JSON event without a timestamp of its own."""
        generated = self.tmp / "generated.log"
        result = subprocess.run([harness.GEN_LOGS, "--format", "mixed", "--bytes", "2M", "--seed", "12",
                                 "--out", generated, "--expected", self.tmp / "generated.prom"],
                                capture_output=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        data = generated.read_bytes()
        self.generated_end = max(stamp for stamp in map(logged_at, data.splitlines()) if stamp is not None)
        later = datetime.datetime.fromtimestamp(self.generated_end / 1e6 + 20 * 60, datetime.timezone.utc)
        stamp = later.strftime("%Y-%m-%dT%H:%M:%S.000001Z").encode()
        tail = (stamp + b"  INFO dispatch: dispatch: held by fleet-level gate gate=late-gate rollout=r1\n"
                + stamp + b"  INFO report: report received hostname=late-host event=runtime-gate-error\n"
                + json.dumps({"level": "INFO", "fields": {"message": "report received", "hostname": "late-host",
                                                          "event": "compliance-failure", "control_id": "LATE-1"},
                              "target": "report"}).encode() + b"\n")
        return data + tail

    def serve_history(self, openmetrics: bytes) -> str:
        """promtool's blocks of `openmetrics`, served by a real Prometheus: its base URL."""
        history = self.tmp / "history.om"
        history.write_bytes(openmetrics)
        blocks = self.tmp / "data"
        created = subprocess.run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", history, blocks],
                                 capture_output=True, timeout=300)
        self.assertEqual(created.returncode, 0, created.stdout + created.stderr)
        return harness.start_prometheus(self, self.tmp, "scrape_configs: []\n",
                                        f"--storage.tsdb.path={blocks}", "--storage.tsdb.retention.time=100y")

    def step_samples(self, log_text, *args):
        log = self.tmp / "small.log"
        log.write_text(log_text)
        result = harness.run("replay", *args, log)
        self.assertEqual(result.returncode, 0, result.stderr)
        out = result.stdout.decode()
        self.assertTrue(out.endswith("# EOF\n"), out)
        samples = {}
        for line in out.splitlines():
            if not line.startswith("#"):
                key, value, stamp = line.rsplit(" ", 2)
                samples[(key, stamp)] = float(value)
        return samples

    def test_each_sample_counts_the_events_logged_at_or_before_its_time(self):
        gate = 'nixfleet_gate_block_total{gate="%s"}'
        failure = 'nixfleet_compliance_failure_events_total{control_id="CIS-1",host="web-1"}'
        samples = self.step_samples(
            "2026-11-20T08:00:10Z  INFO dispatch: dispatch: held by fleet-level gate gate=a\n"
            # A record spanning two lines, then one stamped after the boundary: the record is
            # counted at 08:01:00, the later line at 08:02:00.
            "2026-11-20T08:00:50Z  INFO report: report received hostname=web-1 event=compliance-failure "
            "control_id=CIS-1 reason=first line\n"
            "second line of the reason\n"
            "2026-11-20T08:01:30Z  INFO dispatch: dispatch: held by fleet-level gate gate=b\n"
            # No time of its own: at 08:01:30, the last time seen.
            '{"level":"INFO","fields":{"message":"dispatch: held by fleet-level gate","gate":"c"},"target":"d"}\n'
            # Exactly on a boundary: counted in that boundary's sample.
            "2026-11-20T08:02:00Z  INFO dispatch: dispatch: held by fleet-level gate gate=d\n"
            # Stamped earlier than a line before it: at the latest time seen, 08:02:00.
            "2026-11-20T07:00:00Z  INFO dispatch: dispatch: held by fleet-level gate gate=e\n",
            "--step", "1m")
        at = {"08:01": "1795161660", "08:02": "1795161720"}
        self.assertEqual(samples[(gate % "a", at["08:01"])], 1)
        self.assertEqual(samples[(failure, at["08:01"])], 1)
        self.assertEqual(samples[(gate % "channel-edges", at["08:01"])], 0)
        for late in "bcde":
            self.assertNotIn((gate % late, at["08:01"]), samples)
            self.assertEqual(samples[(gate % late, at["08:02"])], 1)
        self.assertEqual(samples[(gate % "a", at["08:02"])], 1)
        stamps = {stamp for _, stamp in samples}
        self.assertEqual(stamps, set(at.values()))
        # The CP's counters only: the exporter's own describe the run, not the CP's past.
        self.assertFalse([key for key, _ in samples if key.startswith("nixfleet_log_exporter_")])

    def test_a_log_without_times_gives_an_empty_history_and_says_so(self):
        log = self.tmp / "untimed.log"
        log.write_text('{"level":"INFO","fields":{"message":"dispatch: held by fleet-level gate","gate":"c"}}\n')
        result = harness.run("replay", "--step", "1m", log)
        self.assertEqual(result.returncode, 0)
        self.assertEqual(result.stdout, b"# EOF\n")
        self.assertIn("no line carried a timestamp", result.stderr.decode())

    def test_step_samples_wait_in_tmpdir_and_a_missing_one_is_an_error_before_reading(self):
        missing = self.tmp / "no-such-dir"
        result = subprocess.run([harness.BINARY, "replay", "--step", "1m", harness.TESTDATA / "golden" / "json.log"],
                                env={**os.environ, "TMPDIR": str(missing)}, capture_output=True, timeout=60)
        self.assertEqual(result.returncode, 1)
        self.assertEqual(result.stdout, b"")
        self.assertIn(f"cannot create a temporary file in {missing}: No such file or directory", result.stderr.decode())

    def test_step_with_an_output_format_or_threads_is_a_usage_error(self):
        for args in (["--output-format", "openmetrics"], ["--threads", "2"], []):
            with self.subTest(args=args):
                step = ["--step", "1y"] if not args else ["--step", "1m"]
                result = harness.run("replay", *step, *args, harness.TESTDATA / "golden" / "json.log")
                self.assertEqual(result.returncode, 2, result.stderr)

    def test_labels_given_are_on_every_series_and_change_nothing_else(self):
        log = ("2026-11-20T08:00:10Z  INFO dispatch: dispatch: held by fleet-level gate gate=a\n"
               "2026-11-20T08:00:50Z  INFO report: report received hostname=web-1 event=compliance-failure "
               "control_id=CIS-1\n"
               "2026-11-20T08:01:30Z  INFO report: report received hostname=web-1 event=runtime-gate-error\n")
        plain = self.step_samples(log, "--step", "1m")
        labelled = self.step_samples(log, "--step", "1m", "--label", "job=nixfleet-cp-log",
                                     "--label", "instance=cp:9761")
        self.assertEqual(len(labelled), len(plain))
        added = re.compile(r'(,?)instance="cp:9761",job="nixfleet-cp-log"(,?)')
        for (key, stamp), value in labelled.items():
            with self.subTest(key=key):
                self.assertIn('instance="cp:9761",job="nixfleet-cp-log"', key)
                # The same sample without them (a family with no labels of its own keeps no braces).
                bare = added.sub(lambda m: "," if m.group(1) and m.group(2) else "", key).replace("{}", "")
                self.assertEqual(plain[(bare, stamp)], value)

    def test_a_bad_label_is_a_usage_error_that_says_why(self):
        cases = {
            ("--label", "job=x"): "--label requires --step",
            ("--step", "1m", "--label", "gate=x"): "label gate is already a label of nixfleet_gate_block_total",
            ("--step", "1m", "--label", "job=a", "--label", "job=b"): "label job given twice",
            ("--step", "1m", "--label", "x-y=1"): '"x-y" is not a label name',
            ("--step", "1m", "--label", "job"): "not NAME=VALUE",
            ("--step", "1m", "--label", "job="): "label job has an empty value",
            ("--step", "1m", "--label", "__name__=x"): "label names starting with __ are reserved",
        }
        for args, message in cases.items():
            with self.subTest(args=args):
                result = harness.run("replay", *args, harness.TESTDATA / "golden" / "text.log")
                self.assertEqual(result.returncode, 2, result.stderr)
                self.assertEqual(result.stdout, b"")
                self.assertIn(message, result.stderr.decode())

    def test_backfilled_series_with_job_and_instance_answer_the_selectors_scraped_ones_do(self):
        log = self.tmp / "cp.log"
        log.write_text("2026-11-20T08:00:10Z  INFO dispatch: dispatch: held by fleet-level gate gate=quarantine\n"
                       "2026-11-20T08:00:20Z  INFO report: report received hostname=web-1 event=compliance-failure "
                       "control_id=CIS-1\n"
                       "2026-11-20T08:03:00Z  INFO dispatch: dispatch: held by fleet-level gate gate=quarantine\n")
        result = harness.run("replay", "--step", "1m", "--label", "job=nixfleet-cp-log", "--label", "instance=cp:9761",
                             log)
        self.assertEqual(result.returncode, 0, result.stderr)
        base = self.serve_history(result.stdout)
        at = datetime.datetime(2026, 11, 20, 8, 3, tzinfo=datetime.timezone.utc).timestamp()
        # The selectors of the shipped dashboard and rules: by job (and instance).
        gate = harness.prometheus_query(base, 'nixfleet_gate_block_total{job="nixfleet-cp-log",gate="quarantine"}', at=at)
        self.assertEqual([(m["instance"], v) for m, v in gate], [("cp:9761", 2.0)])
        failures = harness.prometheus_query(
            base, 'sum by (job, instance) (nixfleet_compliance_failure_events_total{job=~"nixfleet-cp-log"})', at=at)
        self.assertEqual(failures, [({"job": "nixfleet-cp-log", "instance": "cp:9761"}, 1.0)])

    def test_prometheus_serves_backfilled_blocks_with_the_counts_of_the_log_cut_at_each_instant(self):
        log = self.tmp / "cp.log"
        data = self.make_log()
        log.write_bytes(data)
        lines = data.splitlines(keepends=True)

        result = harness.run("replay", "--step", "1s", log, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(result.stdout.endswith(b"# EOF\n"))
        base = self.serve_history(result.stdout)
        stamps = [stamp for stamp in map(logged_at, lines) if stamp is not None]
        # One instant inside the generated part; one in the quiet gap, 10 minutes after its last
        # line: more than Prometheus' 5-minute lookback, so only a sample at every step answers.
        middle = (stamps[len(stamps) // 2] // 1_000_000) * 1_000_000
        in_gap = (self.generated_end // 1_000_000 + 600) * 1_000_000
        for instant in (middle, in_gap):
            with self.subTest(instant=instant):
                cut = self.tmp / "cut.log"
                cut.write_bytes(b"".join(cut_at(lines, instant)))
                replayed = harness.run("replay", cut)
                self.assertEqual(replayed.returncode, 0, replayed.stderr)
                expected = cp_counter_samples(replayed.stdout.decode())
                served = {}
                for name in ("nixfleet_compliance_failure_events_total", "nixfleet_gate_block_total",
                             "nixfleet_runtime_gate_error_events_total"):
                    for metric, value in harness.prometheus_query(base, name, at=instant / 1e6):
                        served[series_key(metric)] = value
                self.assertEqual(served, expected)
                self.assertGreater(sum(expected.values()), 0)
        # The late events exist only after the gap, and at the end they count.
        self.assertEqual(harness.prometheus_query(base, 'nixfleet_gate_block_total{gate="late-gate"}', at=in_gap / 1e6), [])
        final = stamps[-1] // 1_000_000 + 1
        late = harness.prometheus_query(base, 'nixfleet_compliance_failure_events_total{control_id="LATE-1"}', at=final)
        self.assertEqual([value for _, value in late], [1.0])


if __name__ == "__main__":
    unittest.main()
