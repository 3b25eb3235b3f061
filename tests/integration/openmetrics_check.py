"""Reads an OpenMetrics page on stdin with the reference parser of Debian's python3-prometheus-client
(strict: `# EOF`, names, escapes, exemplars only on counters and buckets, the 128-code-point limit
on an exemplar's labels) and prints its samples as JSON; exits 1 with the parser's error otherwise.

A script, run by harness.parse_openmetrics() under Debian's own interpreter (/usr/bin/python3), for
which the Debian package is installed: the test runner's Python may be another one."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def timestamp_seconds(timestamp):
    if timestamp is None:
        return None
    return timestamp.sec + timestamp.nsec / 1e9 if hasattr(timestamp, "sec") else float(timestamp)


def main():
    page = sys.stdin.buffer.read().decode("utf-8")
    samples = []
    try:
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                exemplar = None
                if sample.exemplar is not None:
                    exemplar = {"labels": sample.exemplar.labels, "value": sample.exemplar.value,
                                "timestamp": timestamp_seconds(sample.exemplar.timestamp)}
                samples.append({"family": family.name, "type": family.type, "name": sample.name,
                                "labels": sample.labels, "value": sample.value, "exemplar": exemplar})
    except Exception as error:  # the parser raises ValueError and others for a bad page
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    json.dump(samples, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
