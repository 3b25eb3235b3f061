"""A real Prometheus server (Debian's `prometheus`, started by harness.start_prometheus) scraping
the exporter as job `nle`, and the questions the end-to-end tests ask its HTTP API."""
import json
import pathlib
import urllib.parse

import harness


class Prometheus:
    def __init__(self, base):
        self.base = base

    def query_result(self, promql):
        """The result vector of an instant query: a list of (labels dict, float value)."""
        return harness.prometheus_query(self.base, promql)

    def label_values(self, label):
        """Every value of `label` in the TSDB (e.g. "__name__": every metric name)."""
        status, _, body = harness.http_get(f"{self.base}/api/v1/label/{label}/values")
        if status != 200:
            raise AssertionError(f"label values of {label} answered {status}: {body[:300]!r}")
        return json.loads(body)["data"]

    def query_exemplars(self, promql, start, end):
        """The exemplars of the series `promql` selects between Unix times `start` and `end`, all
        series together: a list of dicts with labels, value (a string) and timestamp (seconds)."""
        params = urllib.parse.urlencode({"query": promql, "start": str(start), "end": str(end)})
        status, _, body = harness.http_get(f"{self.base}/api/v1/query_exemplars?{params}")
        if status != 200:
            raise AssertionError(f"query_exemplars {promql!r} answered {status}: {body[:300]!r}")
        answer = json.loads(body)
        if answer["status"] != "success":
            raise AssertionError(f"query_exemplars {promql!r}: {answer}")
        return [exemplar for series in answer["data"] for exemplar in series["exemplars"]]

    def query(self, promql):
        """The single value of an instant query, or None when it has no result yet."""
        result = self.query_result(promql)
        if not result:
            return None
        if len(result) != 1:
            raise AssertionError(f"query {promql!r} gave {len(result)} series")
        return result[0][1]

    def wait_query(self, promql, expected, timeout=30.0):
        """Polls until the query's value is `expected`; fails naming the last value."""
        last = []

        def check():
            last[:] = [self.query(promql)]
            return last[0] == expected
        try:
            harness.wait_for(check, timeout=timeout, interval=0.2, message=promql)
        except AssertionError:
            raise AssertionError(f"{promql} never became {expected}; last value {last}") from None


def start(test, workdir, targets, scrape_interval="1s", extra_args=()):
    """Prometheus scraping `targets` (host:port strings) every `scrape_interval`, with a TSDB in
    `workdir` and `extra_args` (e.g. --enable-feature=...); stopped by the cleanup of unittest `test`."""
    workdir = pathlib.Path(workdir)
    target_list = ", ".join(f"'{t}'" for t in targets)
    config = (f"global:\n  scrape_interval: {scrape_interval}\n  scrape_timeout: {scrape_interval}\n"
              f"  evaluation_interval: {scrape_interval}\n"
              "scrape_configs:\n  - job_name: nle\n"
              f"    static_configs:\n      - targets: [{target_list}]\n")
    return Prometheus(harness.start_prometheus(test, workdir, config, f"--storage.tsdb.path={workdir / 'tsdb'}",
                                               *extra_args))
