//! cp-sim: logs a fixed nixfleet control-plane (CP) scenario through the real `tracing` macros and
//! the real `tracing-subscriber` fmt layer, exactly as the CP does, and writes the counters an
//! exporter must derive from it (the oracle), computed from what was emitted, not by parsing.
//!
//! Usage: cp-sim --format json|flat|text|ansi [--expected PATH]
//!               [--journal-export PATH] [--journal-split event|line]
//!
//! * stdout gets the CP's log, byte for byte what the fmt layer writes.
//! * `--expected` gets the Prometheus exposition of the CP families (see `Expect::render`).
//! * `--journal-export` gets the same events in systemd's Journal Export Format, ready for
//!   `systemd-journal-remote`: by default one entry per CP event (a multi-line event is one entry
//!   whose MESSAGE holds the newline, as with the native journal protocol); with
//!   `--journal-split line` one entry per stdout line, as journald's stdout stream stores a
//!   service's output (StandardOutput=journal).
//!
//! Timestamps come from a simulated clock (`SimTimer`) so the output is deterministic; it prints
//! them in the same shape as tracing-subscriber's default `SystemTime` timer
//! (`2026-11-20T08:14:03.511203Z`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::{error, info, info_span, warn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;

// ---------------------------------------------------------------------------------------------
// Simulated clock and process id.

/// Microseconds since the Unix epoch of the scenario's "now". 2026-11-20T08:14:03.511203Z.
static NOW_US: AtomicU64 = AtomicU64::new(1_795_162_443_511_203);
static PID: AtomicU32 = AtomicU32::new(1187);

fn tick(ms: u64) {
    // A little sub-millisecond jitter so the microseconds are not all zero.
    let jitter = (NOW_US.load(Ordering::Relaxed) / 7) % 997;
    NOW_US.fetch_add(ms * 1000 + jitter, Ordering::Relaxed);
}

/// Howard Hinnant's civil_from_days.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct SimTimer;

impl FormatTime for SimTimer {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        let us = NOW_US.load(Ordering::Relaxed);
        let secs = (us / 1_000_000) as i64;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        // Same layout as tracing_subscriber::fmt::time::datetime::DateTime's Display.
        write!(
            w,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            y,
            mo,
            d,
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            us % 1_000_000
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Output: stdout, plus an optional Journal Export Format copy.

#[derive(Clone, Copy, PartialEq)]
enum Split {
    Event,
    Line,
}

#[derive(Clone)]
struct Out {
    journal: Option<Arc<Mutex<File>>>,
    split: Split,
}

/// One writer per event: the fmt layer formats an event into a buffer and writes it with one
/// `write_all` to the writer it gets from `make_writer`, so each `EventWriter` sees one event.
struct EventWriter {
    out: Out,
    buf: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Out {
    type Writer = EventWriter;
    fn make_writer(&'a self) -> EventWriter {
        EventWriter { out: self.clone(), buf: Vec::new() }
    }
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let stdout = io::stdout();
        let mut lock = stdout.lock();
        lock.write_all(&self.buf).expect("stdout");
        lock.flush().expect("stdout");
        if let Some(j) = &self.out.journal {
            let mut f = j.lock().unwrap();
            // journald drops the line terminator.
            let msg = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            match self.out.split {
                Split::Event => write_entry(&mut f, msg, 0),
                Split::Line => {
                    for (n, line) in msg.split(|&c| c == b'\n').enumerate() {
                        write_entry(&mut f, line, n as u64);
                    }
                }
            }
        }
    }
}

fn write_field(f: &mut File, name: &str, value: &[u8]) {
    // Journal Export Format: text form `NAME=value\n` unless the value holds a control byte, then
    // the binary-safe form `NAME\n` + little-endian u64 length + bytes + `\n`.
    if value.iter().any(|&c| c < 0x20 || c == 0x7f) {
        f.write_all(name.as_bytes()).unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(&(value.len() as u64).to_le_bytes()).unwrap();
        f.write_all(value).unwrap();
        f.write_all(b"\n").unwrap();
    } else {
        f.write_all(name.as_bytes()).unwrap();
        f.write_all(b"=").unwrap();
        f.write_all(value).unwrap();
        f.write_all(b"\n").unwrap();
    }
}

fn write_entry(f: &mut File, msg: &[u8], line: u64) {
    // journald stamps an entry when it reads it: a little after the CP's own timestamp, and one
    // microsecond apart for the lines of one event (split mode) so they stay in order.
    let realtime = NOW_US.load(Ordering::Relaxed) + 150 + line;
    let pid = PID.load(Ordering::Relaxed).to_string();
    let realtime_s = realtime.to_string();
    let monotonic_s = (realtime - 1_795_150_000_000_000).to_string();
    let fields: [(&str, &[u8]); 13] = [
        ("__REALTIME_TIMESTAMP", realtime_s.as_bytes()),
        ("__MONOTONIC_TIMESTAMP", monotonic_s.as_bytes()),
        ("_BOOT_ID", b"5c1b0f6e2a7d4f3c9e8b7a6d5c4b3a29"),
        ("_MACHINE_ID", b"8f2e4c6a1b3d5e7f9a0b1c2d3e4f5a6b"),
        ("_HOSTNAME", b"cp-01"),
        ("_TRANSPORT", b"stdout"),
        ("_SYSTEMD_UNIT", b"nixfleet-control-plane.service"),
        ("SYSLOG_IDENTIFIER", b"nixfleet-control-plane"),
        ("SYSLOG_FACILITY", b"3"),
        ("_PID", pid.as_bytes()),
        ("_COMM", b"nixfleet-contro"),
        ("PRIORITY", b"6"),
        ("MESSAGE", msg),
    ];
    for (k, v) in fields {
        write_field(f, k, v);
    }
    f.write_all(b"\n").unwrap();
}

// ---------------------------------------------------------------------------------------------
// The oracle: what an exporter must count from the scenario, stated next to each event.

#[derive(Default)]
struct Expect {
    /// (control_id, host) -> count, as the label values (unescaped).
    cf: BTreeMap<(String, String), u64>,
    rge: u64,
    gates: BTreeMap<String, u64>,
    version: String,
    commit: String,
}

const KNOWN_GATES: [&str; 6] =
    ["quarantine", "channel-edges", "wave-promotion", "host-edge", "disruption-budget", "compliance-wave"];

impl Expect {
    fn new() -> Self {
        let mut e = Expect { version: "unknown".into(), commit: "unknown".into(), ..Default::default() };
        for g in KNOWN_GATES {
            e.gates.insert(g.to_string(), 0);
        }
        e
    }
    /// A ComplianceFailure; `None` control id counts as "unknown".
    fn cf(&mut self, control_id: Option<&str>, host: &str) {
        let key = (control_id.unwrap_or("unknown").to_string(), host.to_string());
        *self.cf.entry(key).or_insert(0) += 1;
    }
    fn rge(&mut self) {
        self.rge += 1;
    }
    fn gate(&mut self, g: &str) {
        *self.gates.entry(g.to_string()).or_insert(0) += 1;
    }
    fn build(&mut self, version: &str, commit: &str) {
        self.version = version.into();
        self.commit = commit.into();
    }

    fn render(&self) -> String {
        fn esc(s: &str) -> String {
            let mut o = String::new();
            for c in s.chars() {
                match c {
                    '\\' => o.push_str("\\\\"),
                    '"' => o.push_str("\\\""),
                    '\n' => o.push_str("\\n"),
                    c => o.push(c),
                }
            }
            o
        }
        // Families sorted by name; series sorted bytewise by label values (BTreeMap of String).
        let mut s = String::new();
        s += "# HELP nixfleet_compliance_failure_events_total ComplianceFailure reports received, per control and host.\n";
        s += "# TYPE nixfleet_compliance_failure_events_total counter\n";
        for ((c, h), n) in &self.cf {
            s += &format!(
                "nixfleet_compliance_failure_events_total{{control_id=\"{}\",host=\"{}\"}} {}\n",
                esc(c),
                esc(h),
                n
            );
        }
        s += "# HELP nixfleet_cp_build_info Control plane version, from flags or its log.\n";
        s += "# TYPE nixfleet_cp_build_info gauge\n";
        s += &format!(
            "nixfleet_cp_build_info{{git_commit=\"{}\",version=\"{}\"}} 1\n",
            esc(&self.commit),
            esc(&self.version)
        );
        s += "# HELP nixfleet_gate_block_total Dispatches held by a fleet-level gate, per gate kind.\n";
        s += "# TYPE nixfleet_gate_block_total counter\n";
        for (g, n) in &self.gates {
            s += &format!("nixfleet_gate_block_total{{gate=\"{}\"}} {}\n", esc(g), n);
        }
        s += "# HELP nixfleet_runtime_gate_error_events_total RuntimeGateError reports received.\n";
        s += "# TYPE nixfleet_runtime_gate_error_events_total counter\n";
        s += &format!("nixfleet_runtime_gate_error_events_total {}\n", self.rge);
        s
    }
}

// ---------------------------------------------------------------------------------------------
// Types the CP logs with `?` (Debug).

#[allow(dead_code)]
#[derive(Debug)]
enum SignatureStatus {
    Verified,
    Unsigned,
    Invalid,
}

#[allow(dead_code)]
#[derive(Debug)]
enum EventKind {
    ComplianceFailure,
    RuntimeGateError,
    ActivationStarted,
}

static EVENT_ID: AtomicU64 = AtomicU64::new(0x3b0f_91a2);

fn next_event_id() -> String {
    let n = EVENT_ID.fetch_add(0x1_0001, Ordering::Relaxed);
    format!("{:08x}-7c1e-4d2b-9f3a-{:012x}", n, n.wrapping_mul(2_654_435_761) & 0xffff_ffff_ffff)
}

const ROLLOUT: &str = "stable@91c2e0";
const AGENT: &str = "0.9.1";

/// The contract's example shape: every value `%`-Display, signature status `?`-Debug.
fn report_cf(x: &mut Expect, host: &str, control_id: &str) {
    let id = next_event_id();
    info!(target: "report", hostname = %host, event = %"compliance-failure", control_id = %control_id,
          rollout = %ROLLOUT, agent_version = %AGENT, event_id = %id,
          signature_status = ?Some(SignatureStatus::Verified), "report received");
    x.cf(Some(control_id), host);
}

/// A `report received` whose event does not count.
fn report_other(host: &str, event: &str) {
    let id = next_event_id();
    info!(target: "report", hostname = %host, event = %event, rollout = %ROLLOUT,
          agent_version = %AGENT, event_id = %id,
          signature_status = ?Some(SignatureStatus::Verified), "report received");
}

fn main() {
    // ------------------------------------------------------------------ arguments
    let args: Vec<String> = std::env::args().collect();
    let mut format = String::new();
    let mut expected: Option<String> = None;
    let mut journal: Option<String> = None;
    let mut split = Split::Event;
    let mut i = 1;
    while i < args.len() {
        let val = args.get(i + 1).cloned();
        match args[i].as_str() {
            "--format" => format = val.unwrap_or_default(),
            "--expected" => expected = val,
            "--journal-export" => journal = val,
            "--journal-split" => {
                split = match val.as_deref() {
                    Some("event") => Split::Event,
                    Some("line") => Split::Line,
                    _ => usage(),
                }
            }
            _ => usage(),
        }
        i += 2;
    }
    let out = Out {
        journal: journal.map(|p| Arc::new(Mutex::new(File::create(p).expect("journal export file")))),
        split,
    };

    // ------------------------------------------------------------------ subscriber, as the CP sets it up
    let builder = tracing_subscriber::fmt().with_timer(SimTimer).with_writer(out);
    match format.as_str() {
        "json" => builder.json().init(),
        "flat" => builder.json().flatten_event(true).init(),
        "text" => builder.with_ansi(false).init(),
        "ansi" => builder.with_ansi(true).init(),
        _ => usage(),
    }

    let mut x = Expect::new();
    scenario(&mut x);

    if let Some(p) = expected {
        std::fs::write(p, x.render()).expect("expected file");
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: cp-sim --format json|flat|text|ansi [--expected PATH] [--journal-export PATH] \
         [--journal-split event|line]"
    );
    std::process::exit(2)
}

// ---------------------------------------------------------------------------------------------
// The scenario. Each event that counts is followed by the oracle's `x.…` call.

fn scenario(x: &mut Expect) {
    // ---- startup
    info!(target: "nixfleet_control_plane", version = %"0.9.3", git_commit = %"91c2e0a4", "starting control plane");
    x.build("0.9.3", "91c2e0a4");
    tick(3);
    info!(target: "nixfleet_control_plane::db", path = %"/var/lib/nixfleet/cp.sqlite", migrations = 14u64, "database opened");
    tick(2);
    info!(target: "nixfleet_control_plane::http", addr = %"0.0.0.0:8443", tls = true, "listening");
    tick(1);
    info!(target: "dispatch", channels = 3u64, rollouts = 2u64, "loaded channel config");
    tick(250);

    // ---- routine traffic: check-ins and activations (none count)
    for n in 1..=12 {
        let host = format!("web-{:02}", n);
        info!(target: "report", hostname = %host, agent_version = %AGENT, "agent checked in");
        tick(40);
        report_other(&host, "activation-started");
        tick(35);
    }

    // ---- compliance failures in the contract's shape: web-07 CIS-5.2.1 x3
    for _ in 0..3 {
        report_cf(x, "web-07", "CIS-5.2.1");
        tick(120);
    }
    report_other("web-07", "activation-started");
    tick(50);

    // Plain `&str` values (no sigil) go through record_str: Debug-quoted in the text format.
    let host: &str = "web-08";
    info!(target: "report", hostname = host, event = "compliance-failure", control_id = "CIS-5.2.1",
          rollout = ROLLOUT, agent_version = AGENT, event_id = %next_event_id(),
          signature_status = ?Some(SignatureStatus::Verified), "report received");
    x.cf(Some("CIS-5.2.1"), "web-08");
    tick(80);

    info!(target: "report", hostname = %"web-08", event = %"realise-failed", rollout = %ROLLOUT,
          error = %"builder for '/nix/store/9x2k…-nixos-system-web-08.drv' failed with exit code 1",
          event_id = %next_event_id(), "report received");
    tick(60);

    // RuntimeGateError, Display.
    info!(target: "report", hostname = %"web-09", event = %"runtime-gate-error", rollout = %ROLLOUT,
          gate = %"host-edge", agent_version = %AGENT, event_id = %next_event_id(),
          signature_status = ?Some(SignatureStatus::Verified), "report received");
    x.rge();
    tick(70);

    // A compliance failure without control_id.
    info!(target: "report", hostname = %"web-09", event = %"compliance-failure", rollout = %ROLLOUT,
          agent_version = %AGENT, event_id = %next_event_id(),
          signature_status = ?Some(SignatureStatus::Unsigned), "report received");
    x.cf(None, "web-09");
    tick(90);

    report_other("db-01", "stale-target");
    tick(30);
    info!(target: "report", hostname = %"db-01", event = %"trust-error",
          reason = %"signature key not in trust roots; would have been a compliance-failure for CIS-1.1",
          event_id = %next_event_id(), signature_status = ?Some(SignatureStatus::Invalid), "report received");
    tick(45);

    // ---- awkward host names and control ids
    // Display host with a space and a non-ASCII letter; a control id with spaces and '=' in its
    // Display form: in the text format `control_id=CIS 5.2.1 (MaxAuthTries=4) rollout=...`.
    report_cf(x, "wéb 07", "CIS 5.2.1 (MaxAuthTries=4)");
    tick(65);
    // The same host, Debug-formatted: text `hostname="wéb 07"`, JSON `"hostname":"\"wéb 07\""`.
    let host = "wéb 07";
    info!(target: "report", hostname = ?host, event = %"compliance-failure", control_id = %"CIS-5.2.1",
          rollout = %ROLLOUT, event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-5.2.1"), "wéb 07");
    tick(65);

    // A double quote in the host: Debug `"db\"1"`, then Display `db"1`; one series.
    let host = "db\"1";
    info!(target: "report", hostname = ?host, event = %"compliance-failure", control_id = %"CIS-1.1",
          rollout = %ROLLOUT, event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-1.1"), host);
    tick(30);
    info!(target: "report", hostname = %host, event = %"compliance-failure", control_id = %"CIS-1.1",
          rollout = %ROLLOUT, event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-1.1"), host);
    tick(30);

    // A backslash in the host: Display `back\slash`, then Debug `"back\\slash"`; one series.
    let host = "back\\slash";
    info!(target: "report", hostname = %host, event = %"compliance-failure", control_id = %"CIS-2.2",
          rollout = %ROLLOUT, event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-2.2"), host);
    tick(30);
    info!(target: "report", hostname = ?host, event = %"compliance-failure", control_id = %"CIS-2.2",
          rollout = %ROLLOUT, event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-2.2"), host);
    tick(30);

    // ---- the Rust variant names, logged with `?` on the CP's enum
    info!(target: "report", hostname = %"db-01", event = ?EventKind::ComplianceFailure, control_id = %"CIS-1.1",
          rollout = %ROLLOUT, event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-1.1"), "db-01");
    tick(40);
    info!(target: "report", hostname = %"db-02", event = ?EventKind::RuntimeGateError, rollout = %ROLLOUT,
          event_id = %next_event_id(), "report received");
    x.rge();
    tick(40);
    info!(target: "report", hostname = %"db-02", event = ?EventKind::ActivationStarted, rollout = %ROLLOUT,
          event_id = %next_event_id(), "report received");
    tick(40);

    // ---- the agent's wire shape
    // `details` as a serde_json::Value recorded with Display: text `details={"control_id":"CIS-1.1"}`,
    // JSON `"details":"{\"control_id\":\"CIS-1.1\"}"` (a string, not an object).
    let details = serde_json::json!({"control_id": "CIS-1.1"});
    info!(target: "report", hostname = %"web-12", event = "compliance-failure", details = %details,
          event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-1.1"), "web-12");
    tick(55);
    // details without a control id.
    let details = serde_json::json!({"reason": "sshd_config drift", "checks": 3});
    info!(target: "report", hostname = %"web-15", event = "compliance-failure",
          details = tracing::field::display(&details), event_id = %next_event_id(), "report received");
    x.cf(None, "web-15");
    tick(55);
    // The whole report as one field (serde_json sorts object keys).
    let whole = serde_json::json!({"hostname": "web-13", "event": "compliance-failure",
                                   "details": {"control_id": "CIS-6.1.2"}});
    info!(target: "report", report = %whole, "report received");
    x.cf(Some("CIS-6.1.2"), "web-13");
    tick(55);
    let whole = serde_json::json!({"hostname": "web-13", "event": "activation-started",
                                   "details": {"generation": 412}});
    info!(target: "report", report = %whole, "report received");
    tick(55);
    let whole = serde_json::json!({"hostname": "web-14", "event": "runtime-gate-error",
                                   "details": {"gate": "host-edge", "control_id": "CIS-9.9"}});
    info!(target: "report", report = %whole, "report received");
    x.rge();
    tick(55);

    // ---- lines that mention the events but must not count
    warn!(target: "report", hostname = %"web-07", event = "compliance-failure", control_id = %"CIS-5.2.1",
          signature_status = ?Some(SignatureStatus::Invalid), "report rejected: bad signature");
    tick(20);
    warn!(target: "report", hostname = %"web-99", event = %"runtime-gate-error", "report rejected: unknown host");
    tick(20);
    info!(target: "report", hostname = %"web-07", event = %"compliance-failure", control_id = %"CIS-5.2.1",
          event_id = %"3b0f91a2-7c1e-4d2b-9f3a-000000000000", "report received twice; ignoring duplicate");
    tick(20);
    error!(target: "nixfleet_control_plane::db",
           error = %"UNIQUE constraint failed: reports.event_id (report received from web-07, event compliance-failure; dispatch: held by fleet-level gate)",
           "failed to persist report");
    tick(20);
    // Multi-line error; the continuation lines look like fields and messages.
    error!(target: "nixfleet_control_plane::db",
           error = %"database is locked\ncaused by:\n    report received from web-07 event=compliance-failure control_id=CIS-5.2.1\n    dispatch: held by fleet-level gate gate=host-edge",
           attempt = 3u64, "failed to persist report");
    tick(20);
    // A tab in a Display value.
    warn!(target: "nixfleet_control_plane::http", peer = %"10.1.2.3:55012", error = %"connection reset\tby peer", "agent connection closed");
    tick(20);
    // A non-counting report whose free-text error repeats `event=` (text: two `event=` keys).
    info!(target: "report", hostname = %"web-08", event = %"realise-failed",
          error = %"nix build failed; previous event=compliance-failure control_id=CIS-5.2.1",
          event_id = %next_event_id(), "report received");
    tick(20);
    // A multi-line report error in the middle of the fields: later fields sit on the last line.
    info!(target: "report", hostname = %"web-08", event = %"realise-failed",
          error = %"build failed:\nerror: builder for '/nix/store/q1…-etc.drv' failed with exit code 2",
          event_id = %next_event_id(), "report received");
    tick(20);
    // A counting one whose `event` and `control_id` come after a multi-line field.
    info!(target: "report", hostname = %"web-16",
          summary = %"3 checks failed:\n- PermitRootLogin yes\n- MaxAuthTries 10",
          event = %"compliance-failure", control_id = %"CIS-4.1", event_id = %next_event_id(), "report received");
    x.cf(Some("CIS-4.1"), "web-16");
    tick(20);

    // ---- events inside spans
    {
        // The span's fields name an event and a host; the event's own fields decide.
        let span = info_span!(target: "report", "report", hostname = %"web-99", event = %"compliance-failure",
                              control_id = %"CIS-9.9");
        let _e = span.enter();
        report_other("web-10", "activation-started");
        tick(15);
        report_cf(x, "web-10", "CIS-3.3");
        tick(15);
    }
    {
        let req = info_span!(target: "nixfleet_control_plane::http", "http_request", method = %"POST",
                             path = "/v1/reports");
        let _r = req.enter();
        let span = info_span!(target: "report", "report", event = "runtime-gate-error");
        let _e = span.enter();
        report_cf(x, "web-11", "CIS-5.2.1");
        tick(15);
        info!(target: "report", hostname = %"web-11", "verifying signature");
        tick(15);
    }

    // ---- fleet-level gates (target "dispatch")
    info!(target: "dispatch", gate = %"compliance-wave", rollout = %ROLLOUT, "dispatch: held by fleet-level gate");
    x.gate("compliance-wave");
    tick(500);
    info!(target: "dispatch", gate = %"compliance-wave", rollout = %ROLLOUT, "dispatch: held by fleet-level gate");
    x.gate("compliance-wave");
    tick(500);
    // literal &str: text `gate="host-edge"`
    info!(target: "dispatch", gate = "host-edge", rollout = %ROLLOUT, "dispatch: held by fleet-level gate");
    x.gate("host-edge");
    tick(500);
    // Debug: text `gate="disruption-budget"`, JSON `"gate":"\"disruption-budget\""`.
    let g = "disruption-budget";
    info!(target: "dispatch", gate = ?g, rollout = %ROLLOUT, "dispatch: held by fleet-level gate");
    x.gate(g);
    tick(500);
    {
        // The span's gate (wave-promotion) must not count; the event's own gate does.
        let span = info_span!(target: "dispatch", "dispatch", rollout = %ROLLOUT, gate = "wave-promotion");
        let _e = span.enter();
        info!(target: "dispatch", gate = %"maintenance-window", "dispatch: held by fleet-level gate");
        x.gate("maintenance-window");
        tick(100);
        info!(target: "dispatch", wave = 2u64, hosts = 5u64, "dispatch: planning next wave");
        tick(100);
        info!(target: "dispatch", gate = %"channel-edges", "dispatch: held by fleet-level gate");
        x.gate("channel-edges");
        tick(100);
    }
    info!(target: "dispatch", gate = %"host-edge", hostname = %"web-07", "dispatch: held by host-level gate");
    tick(50);
    info!(target: "dispatch", gate = %"compliance-wave", rollout = %ROLLOUT, "dispatch: released fleet-level gate");
    tick(50);
    warn!(target: "dispatch", gate = %"disruption-budget",
          error = %"budget query failed: dispatch: held by fleet-level gate gate=disruption-budget",
          "dispatch: gate evaluation failed");
    tick(50);

    // ---- restart with a new version
    info!(target: "nixfleet_control_plane", signal = %"SIGTERM", "shutting down");
    tick(1800);
    PID.store(2214, Ordering::Relaxed);
    info!(target: "nixfleet_control_plane", version = %"0.9.4", git_commit = %"a1b2c3d9", "starting control plane");
    x.build("0.9.4", "a1b2c3d9");
    tick(3);
    info!(target: "nixfleet_control_plane::http", addr = %"0.0.0.0:8443", tls = true, "listening");
    tick(400);
    for n in 1..=10 {
        let host = format!("web-{:02}", n);
        info!(target: "report", hostname = %host, agent_version = %"0.9.2", "agent checked in");
        tick(40);
    }
    report_cf(x, "web-07", "CIS-5.2.1");
    tick(60);
    info!(target: "report", hostname = %"web-04", event = %"runtime-gate-error", rollout = %"stable@a1b2c3",
          gate = %"compliance-wave", event_id = %next_event_id(), "report received");
    x.rge();
    tick(60);
    info!(target: "dispatch", gate = %"compliance-wave", rollout = %"stable@a1b2c3", "dispatch: held by fleet-level gate");
    x.gate("compliance-wave");
    tick(60);
    info!(target: "report", hostname = %"web-04", agent_version = %"0.9.2", "agent checked in");
}
