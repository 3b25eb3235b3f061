"""The replay command as a user runs it: exit codes, messages, inputs, and the exposition."""
import gzip
import shutil
import subprocess
import tempfile
import pathlib
import re
import unittest

import harness

GOLDEN = harness.TESTDATA / "golden"


class ReplayCliTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="nle-replay-"))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_help_exits_0_and_lists_the_subcommands(self):
        result = harness.run("--help")
        self.assertEqual(result.returncode, 0)
        out = result.stdout.decode()
        self.assertIn("replay", out)
        self.assertIn("follow", out)

    def test_version_is_prometheus_commons_layout_and_matches_build_info(self):
        result = harness.run("--version")
        self.assertEqual(result.returncode, 0)
        lines = result.stdout.decode().splitlines()
        self.assertEqual(len(lines), 5, lines)
        head = re.fullmatch(r"nixfleet-log-exporter, version (\d+\.\d+\.\d+) \(branch: (\S+), revision: (\S+)\)", lines[0])
        self.assertIsNotNone(head, lines[0])
        fields = {}
        for line, name in zip(lines[1:], ("build user", "build date", "compiler", "platform")):
            match = re.fullmatch(r"  (%s): +(\S.*)" % name, line)
            self.assertIsNotNone(match, line)
            self.assertEqual(len(line) - len(match.group(2)), 20, "values start in column 21, as in prometheus/common")
            fields[name] = match.group(2)
        self.assertRegex(fields["build date"], r"^\d{8}-\d{2}:\d{2}:\d{2}$")
        self.assertRegex(fields["platform"], r"^[a-z0-9_]+/[a-z0-9_]+$")
        # build_info carries the same values, so a dashboard shows what --version says.
        out = harness.run("replay", GOLDEN / "json.log").stdout.decode()
        expected = (f'nixfleet_log_exporter_build_info{{branch="{head.group(2)}",compiler="{fields["compiler"]}",'
                    f'platform="{fields["platform"]}",revision="{head.group(3)}",version="{head.group(1)}"}} 1')
        self.assertIn(expected, out)

    def test_bad_flag_is_a_usage_error_with_exit_2(self):
        result = harness.run("replay", "--no-such-flag", GOLDEN / "json.log")
        self.assertEqual(result.returncode, 2)
        self.assertIn("--no-such-flag", result.stderr.decode())

    def test_bad_flag_value_is_a_usage_error_with_exit_2(self):
        for args in (["--input-format", "yaml"], ["--output-format", "xml"], ["--max-series", "0"], ["--threads", "x"]):
            with self.subTest(args=args):
                self.assertEqual(harness.run("replay", *args, GOLDEN / "json.log").returncode, 2)

    def test_no_subcommand_is_a_usage_error(self):
        self.assertEqual(harness.run().returncode, 2)

    def test_missing_file_exits_1_naming_the_file_and_the_os_error(self):
        result = harness.run("replay", self.tmp / "absent.log")
        self.assertEqual(result.returncode, 1)
        err = result.stderr.decode()
        self.assertIn("absent.log", err)
        self.assertIn("No such file or directory", err)

    def test_directory_exits_1(self):
        result = harness.run("replay", self.tmp)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Is a directory", result.stderr.decode())

    def test_no_readable_input_at_all_exits_1_and_writes_no_page(self):
        # A textfile-collector pipeline (replay > cp.prom) must never publish a page of zeros.
        for args in ([self.tmp / "absent.log"], [self.tmp], [self.tmp / "absent.log", self.tmp / "gone.log.gz"]):
            with self.subTest(args=args):
                result = harness.run("replay", *args)
                self.assertEqual(result.returncode, 1)
                self.assertEqual(result.stdout, b"")
                self.assertIn("no input could be read; no metrics written", result.stderr.decode())

    def test_an_unreadable_input_loses_nothing_from_the_good_ones(self):
        result = harness.run("replay", GOLDEN / "json.log", self.tmp / "absent.log")
        self.assertEqual(result.returncode, 1)
        alone = harness.run("replay", GOLDEN / "json.log")
        self.assertEqual(harness.cp_families(result.stdout.decode()), harness.cp_families(alone.stdout.decode()))

    def test_gzip_input_is_read_transparently(self):
        plain = (GOLDEN / "mixed.log").read_bytes()
        compressed = self.tmp / "cp.log.1.gz"
        compressed.write_bytes(gzip.compress(plain))
        no_suffix = self.tmp / "rotated"
        no_suffix.write_bytes(gzip.compress(plain[:1000]) + gzip.compress(plain[1000:]))  # two members
        expected = harness.run("replay", GOLDEN / "mixed.log").stdout
        self.assertEqual(harness.run("replay", compressed).stdout, expected)
        self.assertEqual(harness.run("replay", no_suffix).stdout, expected)

    def test_dash_reads_stdin(self):
        data = (GOLDEN / "mixed.log").read_bytes()
        self.assertEqual(harness.run("replay", "-", stdin=data).stdout, harness.run("replay", GOLDEN / "mixed.log").stdout)

    def test_several_files_add_up(self):
        both = harness.parse_exposition(harness.run("replay", GOLDEN / "json.log", GOLDEN / "text.log").stdout.decode())
        json_only = harness.parse_exposition(harness.run("replay", GOLDEN / "json.log").stdout.decode())
        text_only = harness.parse_exposition(harness.run("replay", GOLDEN / "text.log").stdout.decode())
        key = 'nixfleet_runtime_gate_error_events_total'
        self.assertEqual(both[key], json_only[key] + text_only[key])
        self.assertEqual(both["nixfleet_log_exporter_lines_read_total"],
                         json_only["nixfleet_log_exporter_lines_read_total"] + text_only["nixfleet_log_exporter_lines_read_total"])

    def test_summary_on_stderr_names_lines_events_and_speed(self):
        err = harness.run("replay", GOLDEN / "malformed.log", "--max-line-bytes", "4096").stderr.decode()
        self.assertRegex(err, r"10 lines")
        self.assertIn("compliance_failure=6", err)
        self.assertIn("MB/s", err)
        self.assertIn("oversize=1", err)

    def test_promtool_accepts_the_exposition(self):
        for name in ("mixed", "labels", "malformed"):
            with self.subTest(name=name):
                out = harness.run("replay", GOLDEN / f"{name}.log").stdout
                check = subprocess.run(["promtool", "check", "metrics"], input=out, capture_output=True)
                self.assertEqual(check.returncode, 0, check.stdout.decode() + check.stderr.decode())
                self.assertEqual(check.stdout.decode().strip(), "", "promtool lint findings")

    def test_openmetrics_output_ends_with_eof(self):
        out = harness.run("replay", "--output-format", "openmetrics", GOLDEN / "json.log").stdout.decode()
        self.assertTrue(out.endswith("# EOF\n"))
        self.assertIn("# TYPE nixfleet_gate_block counter", out)

    def test_openmetrics_output_of_every_golden_and_real_log_passes_the_reference_parser(self):
        real = sorted(p for p in (harness.TESTDATA / "real").iterdir() if p.suffix != ".prom")
        for path in sorted(GOLDEN.glob("*.log")) + real:
            with self.subTest(name=path.name):
                out = harness.run("replay", "--output-format", "openmetrics", path).stdout.decode()
                samples = harness.parse_openmetrics(out)
                self.assertTrue(any(s["name"] == "nixfleet_gate_block_total" for s in samples))

    def test_series_beyond_the_cap_are_counted_as_dropped(self):
        lines = "".join(
            '{"fields":{"message":"report received","hostname":"h%d","event":"compliance-failure","control_id":"C"}}\n' % i
            for i in range(5))
        out = harness.run("replay", "--max-series", "3", "-", stdin=lines.encode()).stdout.decode()
        samples = harness.parse_exposition(out)
        kept = [k for k in samples if k.startswith("nixfleet_compliance_failure_events_total{")]
        self.assertEqual(len(kept), 3)
        self.assertEqual(samples['nixfleet_log_exporter_series_dropped_total{family="nixfleet_compliance_failure_events_total"}'], 2)
        self.assertEqual(samples['nixfleet_log_exporter_events_total{kind="compliance_failure"}'], 5)

    def test_label_values_over_max_label_bytes_count_under_a_truncated_value(self):
        long_host = "h" * 5000
        line = ('{"fields":{"message":"report received","hostname":"%s","event":"compliance-failure",'
                '"control_id":"C"}}\n' % long_host)
        for args, cap in (([], 256), (["--max-label-bytes", "100"], 100)):
            with self.subTest(args=args):
                result = harness.run("replay", *args, "-", stdin=(line * 3).encode())
                self.assertEqual(result.returncode, 0, result.stderr.decode())
                samples = harness.parse_exposition(result.stdout.decode())
                kept = [k for k in samples if k.startswith("nixfleet_compliance_failure_events_total{")]
                self.assertEqual(len(kept), 1)
                host = kept[0].split('host="')[1].split('"')[0]
                self.assertLessEqual(len(host.encode()), cap)
                self.assertRegex(host, r"^h+\u2026\[truncated:[0-9a-f]{16}\]$")
                self.assertEqual(samples[kept[0]], 3)
                self.assertEqual(samples['nixfleet_log_exporter_label_values_truncated_total{label="host"}'], 3)

    def test_the_longest_dns_name_fits_the_default_label_cap(self):
        # 253 bytes is the most a DNS name can hold; control ids are far shorter.
        host = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
        self.assertEqual(len(host), 253)
        line = ('{"fields":{"message":"report received","hostname":"%s","event":"compliance-failure",'
                '"control_id":"CIS-5.2.1"}}\n' % host)
        result = harness.run("replay", "-", stdin=line.encode())
        self.assertEqual(result.returncode, 0, result.stderr.decode())
        samples = harness.parse_exposition(result.stdout.decode())
        self.assertEqual(samples['nixfleet_compliance_failure_events_total{control_id="CIS-5.2.1",host="%s"}' % host], 1)
        self.assertNotIn('nixfleet_log_exporter_label_values_truncated_total{label="host"}', samples)

    def test_max_label_bytes_below_64_is_a_usage_error(self):
        self.assertEqual(harness.run("replay", "--max-label-bytes", "63", GOLDEN / "json.log").returncode, 2)
        self.assertEqual(harness.run("replay", "--max-label-bytes", "1KiB", GOLDEN / "json.log").returncode, 0)

    def test_cp_version_flags_win_over_the_log(self):
        out = harness.run("replay", "--cp-version", "2.0.0", "--cp-git-commit", "feedbee", GOLDEN / "json.log").stdout.decode()
        self.assertIn('nixfleet_cp_build_info{git_commit="feedbee",version="2.0.0"} 1', out)

    def test_forced_input_format_reads_only_that_shape(self):
        out = harness.run("replay", "--input-format", "text", GOLDEN / "json.log").stdout.decode()
        self.assertIn("nixfleet_runtime_gate_error_events_total 0", out)

    @harness.slow
    def test_threads_do_not_change_the_counts(self):
        big = self.tmp / "big.log"
        gen = subprocess.run([harness.GEN_LOGS, "--format", "mixed", "--bytes", str(80 << 20), "--seed", "7",
                              "--out", big, "--expected", self.tmp / "expected.prom"], capture_output=True)
        self.assertEqual(gen.returncode, 0, gen.stderr.decode())
        one = harness.run("replay", "--threads", "1", big, timeout=300).stdout.decode()
        two = harness.run("replay", "--threads", "2", big, timeout=300).stdout.decode()
        self.assertEqual(one, two)
        self.assertEqual(harness.cp_families(one), (self.tmp / "expected.prom").read_text())


if __name__ == "__main__":
    unittest.main()
