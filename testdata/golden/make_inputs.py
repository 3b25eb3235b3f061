#!/usr/bin/env python3
"""Writes the golden test inputs (*.log). Their expected outputs (*.prom) come from a reviewed
run of the exporter: tests/integration/test_golden.py --update, then read the diff."""
import json
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
TS = "2026-11-20T08:14:03.511203Z"
ESC = "\x1b"


def ansi_field(name, value):
    return f"{ESC}[3m{name}{ESC}[0m{ESC}[2m={ESC}[0m{value}"


def ansi_line(level_colour, level, target, message, fields, spans=""):
    head = f"{ESC}[2m{TS}{ESC}[0m {ESC}[{level_colour}m{level}{ESC}[0m "
    if spans:
        head += spans
    head += f"{ESC}[2m{target}{ESC}[0m{ESC}[2m:{ESC}[0m "
    return head + message + "".join(" " + ansi_field(k, v) for k, v in fields)


def text_line(level, target, message, fields, spans=""):
    return f"{TS} {level} {spans}{target}: {message}" + "".join(f" {k}={v}" for k, v in fields)


def tracing_json(message, fields, target="report", level="INFO", span=None, flat=False):
    event = {"message": message, **fields}
    if flat:
        obj = {"timestamp": TS, "level": level, **event, "target": target}
    else:
        obj = {"timestamp": TS, "level": level, "fields": event, "target": target}
    if span:
        obj["span"] = span
        obj["spans"] = [span]
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def journald(message, i):
    record = {"__CURSOR": f"s=0e7f;i={i:x};b=1;m={i:x};t=5;x=9", "__REALTIME_TIMESTAMP": str(1763626443511203 + i),
              "_SYSTEMD_UNIT": "nixfleet-control-plane.service", "SYSLOG_IDENTIFIER": "nixfleet-control-plane",
              "_HOSTNAME": "cp-1", "PRIORITY": "6"}
    data = message.encode()
    printable = all(b >= 0x20 or b in (0x09, 0x0a) for b in data)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        printable = False
    record["MESSAGE"] = message if printable else list(data)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


EVENT_IDS = iter(range(1, 1000))


def report(host, event, control=None, **extra):
    """A report's fields; each report gets its own event_id, as long as the one every report used to
    share (so the text goldens' bytes_read stay as they were), and the OpenMetrics goldens show
    which event each exemplar names."""
    fields = {"hostname": host, "event": event}
    if control is not None:
        fields["control_id"] = control
    fields.update({"rollout": "stable@91c2e0", "agent_version": "0.9.1", "event_id": f"3b0f{next(EVENT_IDS):02x}", **extra})
    return fields


def write(name, lines, binary=False):
    path = HERE / f"{name}.log"
    if binary:
        path.write_bytes(b"".join(lines))
    else:
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# Nested tracing JSON with spans, the wire shape, decoys, and a startup line.
write("json", [
    tracing_json("starting control plane", {"version": "0.9.3", "git_commit": "91c2e0aa"}, target="nixfleet_cp"),
    tracing_json("report received", report("web-07", "compliance-failure", "CIS-5.2.1", signature_status="Some(Verified)")),
    tracing_json("report received", report("web-07", "compliance-failure", "CIS-5.2.1")),
    tracing_json("report received", report("web-08", "ComplianceFailure", "CIS-1.1")),
    tracing_json("report received", report("web-09", "compliance-failure")),
    tracing_json("report received", {"hostname": "web-10", "event": "compliance-failure", "details": {"control_id": "CIS-4.4"}}),
    tracing_json("report received", report("web-07", "runtime-gate-error")),
    tracing_json("report received", report("web-07", "RuntimeGateError")),
    tracing_json("report received", report("web-07", "activation-started")),
    tracing_json("report received", report("web-07", "realise-failed", error="compliance-failure of CIS-5.2.1 earlier")),
    tracing_json("report rejected: bad signature", report("web-07", "compliance-failure", "CIS-9.9"), level="WARN"),
    tracing_json("dispatch: held by fleet-level gate", {"gate": "compliance-wave", "rollout": "stable@91c2e0"}, target="dispatch",
                 span={"name": "dispatch", "gate": "wave-promotion", "rollout": "stable@91c2e0"}),
    tracing_json("dispatch: held by fleet-level gate", {"gate": "host-edge"}, target="dispatch"),
    tracing_json("dispatch: held by fleet-level gate", {"gate": "maintenance-window"}, target="dispatch"),
    tracing_json("dispatch failed", {"error": "dispatch: held by fleet-level gate gate=host-edge; report received event=compliance-failure"},
                 target="dispatch", level="ERROR"),
])

# Flattened JSON: the same events with fields at the top level.
write("flat", [
    tracing_json("report received", report("web-07", "compliance-failure", "CIS-5.2.1"), flat=True),
    tracing_json("report received", report("web-11", "runtime-gate-error"), flat=True),
    tracing_json("dispatch: held by fleet-level gate", {"gate": "channel-edges"}, target="dispatch", flat=True),
    tracing_json("report rejected: unknown host", report("x", "compliance-failure", "C"), level="WARN", flat=True),
])

# Plain text: spans, Display values with spaces, Debug-quoted values, multi-line error.
write("text", [
    text_line(" INFO", "nixfleet_cp", "starting control plane", [("version", "0.9.4"), ("git_commit", "7d1e2f3")]),
    text_line(" INFO", "report", "report received", [("hostname", "rack 4 node 7"), ("event", "compliance-failure"),
                                                     ("control_id", "CIS 5.2.1 (MaxAuthTries=4)"), ("rollout", "stable@91c2e0")]),
    text_line(" INFO", "report", "report received", [("hostname", '"db \\"1\\" back\\\\slash"'), ("event", "compliance-failure"),
                                                     ("control_id", "CIS-1.1")]),
    text_line(" INFO", "report", "report received", [("hostname", "wéb-07"), ("event", "ComplianceFailure"), ("control_id", "CIS-1.1")]),
    text_line("ERROR", "report", "report received", [("hostname", "web-07"), ("event", "runtime-gate-error")]),
    text_line(" INFO", "dispatch", "dispatch: held by fleet-level gate", [("gate", "disruption-budget"), ("rollout", "r1")],
              spans="dispatch{rollout=stable@91c2e0 gate=wave-promotion}:wave{n=2}: "),
    text_line("ERROR", "activation", "activation failed", [("hostname", "web-07"), ("error", "step 1 failed\n    report received hostname=web-07 event=compliance-failure control_id=CIS-0")]),
    text_line(" WARN", "report", "report rejected: bad signature", [("hostname", "web-07"), ("event", "compliance-failure")]),
    text_line(" INFO", "report", "report received", [("hostname", "web-07"), ("event", "stale-target"), ("error", "was event=compliance-failure")]),
])

# ANSI-coloured text, as tracing-subscriber writes it by default.
write("ansi", [
    ansi_line("32", " INFO", "report", "report received", [("hostname", "web-07"), ("event", "compliance-failure"), ("control_id", "CIS-5.2.1")]),
    ansi_line("31", "ERROR", "report", "report received", [("hostname", "web-07"), ("event", "runtime-gate-error")]),
    ansi_line("32", " INFO", "dispatch", "dispatch: held by fleet-level gate", [("gate", "wave-promotion")],
              spans=f"{ESC}[1mdispatch{ESC}[0m{ESC}[1m{{{ESC}[0m{ansi_field('gate', 'host-edge')}{ESC}[1m}}{ESC}[0m{ESC}[2m:{ESC}[0m "),
    ansi_line("32", " INFO", "nixfleet_cp", "starting control plane", [("version", "1.0.0"), ("git_commit", "c0ffee1")]),
])

# journald -o json: text in a string, coloured text as a byte array, JSON in a string, a
# multi-line message, a field that occurs twice, and json-seq framing.
j_text = text_line(" INFO", "report", "report received", [("hostname", "web-20"), ("event", "compliance-failure"), ("control_id", "CIS-2.2")])
j_ansi = ansi_line("32", " INFO", "report", "report received", [("hostname", "web-21"), ("event", "compliance-failure"), ("control_id", "CIS-2.3")])
j_json = tracing_json("dispatch: held by fleet-level gate", {"gate": "host-edge"}, target="dispatch")
j_multi = text_line("ERROR", "activation", "activation failed", [("error", "exit 1\nreport received hostname=x event=compliance-failure")])
lines = [journald(j_text, 1), journald(j_ansi, 2), journald(j_json, 3), journald(j_multi, 4)]
latin1 = json.loads(lines[0])
latin1["MESSAGE"] = list(j_text.replace("web-20", "web-22").encode().replace(b"web-22", b"web-\xe9"))
lines.append(json.dumps(latin1, separators=(",", ":")))
twice = json.loads(lines[0])
twice["MESSAGE"] = [j_text, list(j_ansi.encode())]
lines.append(json.dumps(twice, ensure_ascii=False, separators=(",", ":")))
lines.append("\x1e" + journald(text_line("ERROR", "report", "report received", [("hostname", "web-23"), ("event", "runtime-gate-error")]), 7))
write("journald", lines)

# Malformed input between good lines: truncated JSON, NUL bytes, invalid UTF-8, an oversize
# line (run with --max-line-bytes 4096), CRLF endings, and a last line without newline.
good = tracing_json("report received", report("ok-1", "compliance-failure", "C-1")).encode()
write("malformed", [
    good + b"\n",
    tracing_json("report received", report("bad-1", "compliance-failure", "C-1")).encode()[:-20] + b"\n",
    good + b"\n",
    text_line(" INFO", "report", "report received", [("hostname", "nul"), ("event", "compliance-failure")]).encode().replace(b"nul", b"n\x00l") + b"\n",
    tracing_json("report received", report("utf8", "compliance-failure", "C-1")).encode().replace(b"utf8", b"ut\xff8") + b"\n",
    tracing_json("report received", report("big", "compliance-failure", "C-1", padding="x" * 10000)).encode() + b"\n",
    good + b"\r\n",
    b"\x00\x00\x00\x00" + good + b"\n",
    text_line(" INFO", "report", "report received", [("hostname", "latin\xe9"), ("event", "compliance-failure")]).encode("latin-1") + b"\n",
    good,
], binary=True)

# Label values that need escaping on output.
write("labels", [
    tracing_json("report received", {"hostname": 'quote"back\\slash', "event": "compliance-failure", "control_id": "new\nline"}),
    tracing_json("report received", {"hostname": "spaces in name", "event": "compliance-failure", "control_id": "ünïcødé"}),
    tracing_json("report received", {"hostname": "", "event": "compliance-failure", "control_id": ""}),
])

# One stream mixing every shape line by line, as after the CP is reconfigured mid-stream.
mixed = []
sources = [(HERE / f"{name}.log").read_bytes().split(b"\n") for name in ("json", "text", "ansi", "journald", "flat")]
for i in range(max(len(s) for s in sources)):
    for s in sources:
        if i < len(s) and s[i]:
            mixed.append(s[i] + b"\n")
write("mixed", mixed, binary=True)
