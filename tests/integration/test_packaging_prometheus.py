"""Alert rules and the Grafana dashboard against promtool: the rules pass `promtool check rules`
and their unit tests (`promtool test rules`, which hold a firing and a quiet case for every alert),
and every PromQL expression of the dashboard, variables filled in, parses."""
import json
import pathlib
import re
import shutil
import tempfile
import unittest

import harness
import packaging_files as pf

RULES = pf.PACKAGING / "prometheus/nixfleet-log-exporter.rules.yml"
RULE_TESTS = pf.PACKAGING / "prometheus/nixfleet-log-exporter.rules.test.yml"
DASHBOARD = pf.PACKAGING / "grafana/nixfleet-log-exporter.json"
# Values Grafana would substitute; any valid ones do for a parse.
VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h", "job": "nixfleet-cp-log",
             "instance": "cp-host:9761", "datasource": "prometheus"}


def alert_names(rules_text: str) -> list:
    return re.findall(r"^\s+- alert: (\w+)$", rules_text, re.M)


def fill_variables(expr: str) -> str:
    def value(match):
        name = match.group(1) or match.group(2)
        if name not in VARIABLES:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr}")
        return VARIABLES[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def dashboard_expressions(node) -> list:
    """Every `expr` of every panel target (rows' nested panels too), and the selector inside each
    query variable's label_values(...)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, dict) and "query" in value:
                inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", value["query"])
                found.append(inner.group(1) if inner else value["query"])
            else:
                found.extend(dashboard_expressions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(dashboard_expressions(item))
    return found


def check_as_rules(expressions) -> "subprocess.CompletedProcess":
    """Writes each expression as a recording rule and runs `promtool check rules` on the file."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="nle-dashboard-"))
    try:
        path = directory / "dashboard.rules.yml"
        rules = [{"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(expressions)]
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))  # JSON is YAML
        return pf.run_tool("promtool", "check", "rules", path, check=False)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class AlertRules(unittest.TestCase):
    def test_promtool_check_rules_passes(self):
        result = pf.run_tool("promtool", "check", "rules", RULES)
        self.assertIn("SUCCESS", result.stdout)

    def test_promtool_test_rules_passes(self):
        result = pf.run_tool("promtool", "test", "rules", RULE_TESTS)
        self.assertIn("SUCCESS", result.stdout + result.stderr)

    def test_every_alert_has_a_firing_and_a_quiet_case(self):
        names = alert_names(RULES.read_text())
        self.assertIn("RollbackFiring", names)
        self.assertIn("GateBlockSpike", names)
        cases = re.findall(r"alertname: (\w+)\n\s+exp_alerts:( \[\])?", RULE_TESTS.read_text())
        for name in names:
            outcomes = {quiet == " []" for alert, quiet in cases if alert == name}
            self.assertEqual(outcomes, {True, False}, f"{name} needs a case that fires and one that does not")

    def test_every_alert_is_mixin_style(self):
        text = RULES.read_text()
        for block in re.split(r"\n\s+- alert: ", text)[1:]:
            name = block.split("\n", 1)[0]
            self.assertRegex(name, r"^[A-Z][A-Za-z]+$")
            for field in ("severity:", "summary:", "description:"):
                self.assertIn(field, block, f"{name} lacks {field}")


def served_names(exporter) -> set:
    return {re.split(r"[{ ]", line, 1)[0] for line in exporter.scrape().splitlines() if line and not line.startswith("#")}


class MetricNames(unittest.TestCase):
    def test_rules_and_dashboard_name_only_metrics_the_exporter_serves(self):
        named = set(re.findall(r"\bnixfleet_[a-z_]+[a-z]", RULES.read_text() + DASHBOARD.read_text()))
        self.assertIn("nixfleet_log_exporter_journal_lag_seconds", named)
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="nle-names-"))
        self.addCleanup(shutil.rmtree, workdir, ignore_errors=True)
        # A file with two hosts under --max-series 1 (so a series is dropped), then the journal.
        log = workdir / "cp.log"
        log.write_bytes(harness.compliance_failure_line(host="a") + harness.compliance_failure_line(host="b"))
        with harness.follow(log, "--from-beginning", "--max-series", "1", "--state-file", workdir / "file.json") as exporter:
            exporter.wait_value("nixfleet_log_exporter_lines_read_total", 2)
            served = served_names(exporter)
        (workdir / "journal").mkdir()
        with harness.follow("--journal-directory", workdir / "journal", "--state-file", workdir / "journal.json") as exporter:
            served |= served_names(exporter)
        self.assertEqual(sorted(named - served), [])


class Dashboard(unittest.TestCase):
    def setUp(self):
        self.dashboard = json.loads(DASHBOARD.read_text())

    def test_every_expression_parses_as_promql_with_variables_filled(self):
        expressions = [fill_variables(e) for e in dashboard_expressions(self.dashboard)]
        self.assertGreaterEqual(len(expressions), 10)
        result = check_as_rules(expressions)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_a_broken_expression_is_caught(self):
        self.assertNotEqual(check_as_rules(["sum by (gate) (rate(nixfleet_gate_block_total[1m])"]).returncode, 0)

    def test_datasource_is_a_template_variable_and_the_schema_is_current(self):
        variables = {v["name"]: v for v in self.dashboard["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        self.assertGreaterEqual(self.dashboard["schemaVersion"], 39)
        for panel in self.dashboard["panels"]:
            if panel["type"] != "row":
                self.assertEqual(panel["datasource"]["uid"], "${datasource}", panel["title"])

    def test_the_events_panel_shows_the_exemplars_of_the_cp_counters(self):
        """Exemplars sit on the CP's own counters (not on events_total{kind}); Grafana asks for them
        per target with `exemplar: true`."""
        panel = next(p for p in self.dashboard["panels"] if p.get("title") == "Events per kind")
        for family in ("nixfleet_compliance_failure_events_total", "nixfleet_runtime_gate_error_events_total",
                       "nixfleet_gate_block_total"):
            targets = [t for t in panel["targets"] if family in t["expr"]]
            self.assertEqual(len(targets), 1, family)
            self.assertIs(targets[0].get("exemplar"), True, family)
        self.assertIn("journalctl -u nixfleet-control-plane -g", panel["description"])

    def test_panels_cover_events_gates_top_labels_and_exporter_health(self):
        text = json.dumps(dashboard_expressions(self.dashboard))
        for needle in ("events_total", "nixfleet_gate_block_total", "by (control_id)", "by (host)",
                       "journal_lag_seconds", "lines_skipped_total", "state_save_failures_total",
                       "scrape_duration_seconds"):
            self.assertIn(needle, text)


if __name__ == "__main__":
    unittest.main()
