"""The man page nixfleet-log-exporter(1): it renders without a warning and lists, in each
subcommand's section, every flag that subcommand's --help shows."""
import os
import re
import subprocess
import unittest

import harness
import packaging_files as pf

MAN_PAGE = pf.BUILD_DIR / "packaging/man/nixfleet-log-exporter.1"


def section(page: str, subcommand: str) -> str:
    """The troff source of `.SS "<subcommand> options"` up to the next heading."""
    match = re.search(rf'^\.SS "{subcommand} options"\n(.*?)(?=^\.S[SH] )', page, re.M | re.S)
    if not match:
        raise AssertionError(f"no section for {subcommand} in {MAN_PAGE}")
    return match.group(1).replace("\\-", "-")


class ManPage(unittest.TestCase):
    def test_man_renders_the_page_without_a_warning(self):
        result = subprocess.run(["man", "--warnings", "-l", str(MAN_PAGE)], capture_output=True, text=True,
                                env={**os.environ, "MANWIDTH": "80", "MAN_KEEP_FORMATTING": "0"}, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertIn("nixfleet-log-exporter", result.stdout)

    def test_each_subcommand_section_lists_every_flag_its_help_shows(self):
        page = MAN_PAGE.read_text()
        for subcommand in pf.SUBCOMMANDS:
            listed = set(re.findall(r"\\fB(-[^\\]+)\\fR", section(page, subcommand)))
            shown = pf.help_flags(subcommand)
            self.assertIn("--help", shown)
            self.assertEqual(sorted(shown - listed), [], f"{subcommand}: flags missing from the man page")
            self.assertEqual(sorted(listed - shown), [], f"{subcommand}: the man page lists flags the binary lacks")

    def test_the_program_options_are_listed(self):
        page = MAN_PAGE.read_text().replace("\\-", "-")
        top = harness.run("--help").stdout.decode()
        for flag in re.findall(r"^  (?:-\w,)?(--[\w.-]+)", top, re.M):
            self.assertRegex(page, rf"\.BR? .*{re.escape(flag)}\b")


if __name__ == "__main__":
    unittest.main()
