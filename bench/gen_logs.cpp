// nle_gen_logs: a deterministic generator of realistic control-plane (CP) logs, and of the
// counters an exact exporter must report for them. Standalone on purpose: it shares no code with
// the exporter, so a bug in a shared helper cannot hide in both the input and the expectation.
//
// Usage:
//   nle_gen_logs --out PATH (--bytes N[K|M|G] | --lines N) [--format FORMAT] [--seed S]
//                [--event-rate R] [--expected PATH] [--restarts K] [--crlf]
//                [--quiet-rate R] [--version-rate R] [--spans on|off|some] [--long-rate R]
//
//   --format      json | flat | text | ansi | journald | mixed (default json); the shapes are
//                 those of /work/shared/LOG-FORMAT.md, written the way tracing-subscriber 0.3
//                 and `journalctl -o json` (systemd 252) write them.
//   --bytes N     stop before the output would exceed N bytes (K/M/G suffixes are powers of 1024)
//   --lines N     write exactly N physical lines (a journald record is one line)
//   --seed S      default 1; same arguments, same bytes, on any platform and libstdc++
//   --event-rate  fraction of log entries that count (default 0.02), split 70% ComplianceFailure,
//                 10% RuntimeGateError, 20% GateBlock
//   --expected    write the CP counter families the exporter must expose for this log
//   --restarts K  the CP restarts K times (default 1), each time with a newer version/git_commit
//   --crlf        end every line with \r\n instead of \n
// The mix knobs (each unset = the default mix above). Rates are fractions of all entries:
//   --quiet-rate    `report received` reports whose event never counts (activation-*, ...)
//   --version-rate  tower-http TraceLayer records (`started processing request`, `finished
//                   processing request`) inside its `request{method, uri, version}` span
//   --spans         on: every report and HTTP entry sits in tower-http's request span, as in a CP
//                   serving through TraceLayer; off: no entry has spans; some: the default
//   --long-rate     entries with one Debug-printed value of 4-64 KiB (journald shows them as null)
//   --out -       writes to stdout
// A one-line summary goes to stderr. Exit codes: 0 done, 1 I/O error, 2 usage error.
//
// Traps it generates. Each of these lines must NOT change a counter unless it says "counts":
//  - counts at any level: ComplianceFailure at INFO and WARN, RuntimeGateError at INFO/WARN/ERROR;
//    the Rust variant names `ComplianceFailure` / `RuntimeGateError` as the event value; the
//    agent's wire shape `"event":"compliance-failure","details":{"control_id":...}` (JSON shapes
//    only); ~5% of compliance failures with no control_id at all (counts as control_id="unknown").
//  - host names with spaces (`lab host 3`), double quotes (`kiosk "lobby"`), backslashes
//    (`CORP\ws-0042`), an apostrophe and non-ASCII letters (`wéb-07`, `東京-build-03`). Text
//    shapes print them with Display: unquoted, unescaped, spaces and all; JSON escapes them.
//  - `report received` lines whose event is activation-started, activation-succeeded,
//    realise-failed, stale-target, trust-error (or a variant name of those).
//  - WARN `report rejected: bad signature` and `report received from unknown host`, and
//    `report received twice, dropping duplicate`, all with event=compliance-failure.
//  - a `report received` line with a non-counting event inside a span whose fields say
//    event=compliance-failure (text: `replay{event=compliance-failure batch=..}: report: ...`;
//    JSON: in "span"/"spans"); and `verifying signature` lines in such spans.
//  - ERROR/WARN lines whose error= / reason= free text mentions compliance-failure,
//    runtime-gate-error, `held by fleet-level gate`, `report received`, or holds a JSON report
//    (`{"event":"compliance-failure","details":{...}}`, escaped inside a JSON string).
//  - `dispatch: released by fleet-level gate` and DEBUG `evaluating gate` lines with a gate field;
//    RuntimeGateError lines also carry a gate field (they count as RuntimeGateError only).
//  - GateBlock counts: message `dispatch: held by fleet-level gate`; in text the target is
//    `dispatch` (or `nixfleet_control_plane::dispatch`), so the line reads
//    `dispatch: dispatch: held by fleet-level gate gate=...`; gate is sometimes the last field
//    after a free-text reason with spaces; rarely an unknown gate (`maintenance-window`,
//    `change-freeze`) that still counts under its own name.
//  - multi-line values: an anyhow-style `error` (`...\n\nCaused by:\n    0: report received
//    hostname=web-07 event=compliance-failure ...`) continues on the next physical lines in text
//    shapes, one of them empty; journald stores each continuation as its own record. The
//    continuation never counts. A counting RuntimeGateError may itself carry such an error as its
//    last field: its first line counts, the rest does not. (JSON shapes escape the newline.)
//  - `agent_version=` fields on reports (a `version=` substring that is not build info); build
//    info comes only from `starting control plane version=... git_commit=...`, written near the
//    start and again after each restart with a newer version: the expected build_info is the last.
//  - raw ESC bytes inside a value in plain text lines (child process output), `\u001b` in JSON.
//  - TRACE lines (purple in ANSI); values printed with Debug (`Some(Verified)`, a quoted
//    io::Error); one or two nested spans with fields, before the target in text shapes.
//  - journald: PRIORITY is always "6" (stdout stream) whatever the CP level; MESSAGE is a string
//    for text and JSON CP lines (a JSON CP line is escaped twice), an array of byte values for
//    lines with colour escapes (and for plain lines holding a raw ESC), and null for a line over
//    4096 bytes (a rare giant config dump, as journalctl does without --all); MESSAGE is not the
//    last key; at a restart, records from systemd itself (PID 1, unit init.scope) interleave.
//  - mixed: every shape above, chosen afresh for each entry, journald records included.
//
// The expected file holds only the CP families, sorted by name, in the exporter's exact format:
// series sorted by raw label values (control_id, then host); the five known gates always present.
// Host names are chosen so that raw and escaped label values sort the same way.

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using u64 = std::uint64_t;
using std::string_view_literals::operator""sv;

// ----------------------------------------------------------------------------------------------
// Deterministic randomness: xoshiro256** seeded by splitmix64. All draws go through below() and
// chance(), whose results depend only on the seed (unlike std::uniform_*_distribution).

class Rng {
 public:
  explicit Rng(u64 seed) {
    u64 x = seed;
    for (u64& s : s_) s = splitmix64(x);
  }

  u64 next() {
    const u64 result = rotl(s_[1] * 5, 7) * 9;
    const u64 t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n); n > 0. The modulo bias (< 2^-40 for our n) is irrelevant and deterministic.
  u64 below(u64 n) { return next() % n; }
  u64 between(u64 lo, u64 hi) { return lo + below(hi - lo + 1); }
  // Skewed towards small indices, so that some series get many hits and some few.
  u64 skewed(u64 n) { return below(below(n) + 1); }
  bool chance(double p) { return static_cast<double>(next() >> 11) * 0x1.0p-53 < p; }

  template <class T, std::size_t N>
  const T& pick(const T (&items)[N]) {
    return items[below(N)];
  }

 private:
  static u64 rotl(u64 x, int k) { return (x << k) | (x >> (64 - k)); }
  static u64 splitmix64(u64& x) {
    u64 z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  u64 s_[4];
};

// ----------------------------------------------------------------------------------------------
// Vocabulary of the fleet.

constexpr std::string_view kControlIds[] = {
    "CIS-1.1.1", "CIS-1.1.2", "CIS-1.1.3", "CIS-1.1.8",  "CIS-1.3.1",  "CIS-1.4.1",  "CIS-1.5.1",
    "CIS-1.6.1", "CIS-2.1.1", "CIS-2.2.1", "CIS-2.2.2",  "CIS-2.2.7",  "CIS-3.1.1",  "CIS-3.2.1",
    "CIS-3.3.1", "CIS-3.4.1", "CIS-3.5.1", "CIS-4.1.1",  "CIS-4.1.2",  "CIS-4.2.1",  "CIS-4.2.3",
    "CIS-5.1.1", "CIS-5.1.2", "CIS-5.2.1", "CIS-5.2.2",  "CIS-5.2.4",  "CIS-5.2.10", "CIS-5.2.11",
    "CIS-5.3.1", "CIS-5.4.1", "CIS-5.4.2", "CIS-5.5.1",  "CIS-6.1.1",  "CIS-6.1.2",  "CIS-6.1.10",
    "CIS-6.2.1", "CIS-6.2.5", "CIS-6.2.8", "CIS-6.2.11", "CIS-6.2.17",
};
constexpr std::string_view kChecks[] = {
    "sshd PermitRootLogin", "auditd enabled",        "tmp on separate partition",
    "password max age",     "firewall default deny", "core dumps restricted",
    "ASLR enabled",         "cron permissions",      "world-writable files",
};
constexpr std::string_view kKnownGates[] = {
    "quarantine", "channel-edges", "wave-promotion", "host-edge", "disruption-budget", "compliance-wave",
};
constexpr std::string_view kUnknownGates[] = {"maintenance-window", "change-freeze"};
constexpr std::string_view kRollouts[] = {
    "stable@91c2e0",
    "canary@3fa9b1",
    "edge@77d0c4",
    "hotfix@0be4f2",
};
constexpr std::string_view kQuietEvents[] = {
    "activation-started",   "activation-succeeded", "realise-failed",
    "stale-target",         "trust-error",          "activation-started",
    "activation-succeeded", "ActivationSucceeded",  "StaleTarget",
};
constexpr std::string_view kAgentVersions[] = {"0.9.1", "0.9.1", "0.9.2", "0.8.7"};
constexpr std::string_view kPaths[] = {
    "/v1/agent/report",
    "/v1/agent/report",
    "/v1/agent/target",
    "/v1/agent/heartbeat",
    "/v1/rollouts",
    "/v1/rollouts/stable/promote",
    "/metrics",
    "/healthz",
    "/v1/hosts/web-07/compliance",
    "/v1/agent/closure",
};
constexpr int kStatuses[] = {200, 200, 200, 202, 202, 204, 304, 400, 401, 404, 409, 500, 503};
constexpr std::string_view kGateReasons[] = {
    "wave 2 not yet promoted",
    "budget exhausted (3 of 3 hosts in flight)",
    "channel edge stable -> edge not satisfied",
    "host has open compliance failures",
    "previous wave has 2 failed activations",
};
// Free text for error/reason values. The first line of any value never holds a `key=` shape:
// Display output is ambiguous there and the CP's own formatter cannot print it unambiguously.
constexpr std::string_view kErrorTexts[] = {
    "failed to persist compliance-failure report for CIS-5.2.1: database is locked",
    "runtime-gate-error escalation skipped: rollout stable@91c2e0 already paused",
    "target not dispatched: held by fleet-level gate host-edge",
    "upstream returned "
    "{\"event\":\"compliance-failure\",\"details\":{\"control_id\":\"CIS-1.1.1\"}}"
    " with 502 Bad Gateway",
    "cannot evaluate runtime-gate-error for db-03: agent offline",
    "dispatch: held by fleet-level gate wave-promotion (wave 2 not promoted)",
    "Os { code: 28, kind: StorageFull, message: \"No space left on device\" }",
    "report received",
    "event compliance-failure from web-07 arrived after the rollout closed",
};
constexpr std::string_view kErrorMessages[] = {
    "failed to persist report", "gate evaluation failed",        "webhook delivery failed",
    "failed to escalate",       "sync with binary cache failed",
};
// anyhow's Debug output: a first line, an empty line, "Caused by:" and an indented chain.
constexpr std::string_view kMultiLineErrors[] = {
    "failed to store report\n\nCaused by:\n    0: report received hostname=web-07 "
    "event=compliance-failure control_id=CIS-5.2.1\n    1: database is locked",
    "dispatch aborted\n\nCaused by:\n    dispatch: held by fleet-level gate gate=host-edge "
    "rollout=stable@91c2e0",
    "agent report could not be decoded\n\nCaused by:\n"
    "report received hostname=db-01 event=runtime-gate-error\n"
    "    0: missing field `details` at line 1 column 214",
};
constexpr std::string_view kRuntimeGateErrors[] = {
    "health probe timed out after 30s",
    "held by fleet-level gate disruption-budget",
    "systemd unit nixfleet-probe.service failed",
    "rollback requested by gate compliance-wave",
};
constexpr std::string_view kMultiLineGateErrors[] = {
    "runtime gate probe failed\n\nCaused by:\n    0: report received hostname=web-02 "
    "event=runtime-gate-error\n    1: connection refused (os error 111)",
};

std::vector<std::string> make_regular_hosts() {
  constexpr std::string_view prefixes[] = {
      "web",      "db",    "cache", "edge", "build",  "ci-runner", "mon", "lb",  "gw",
      "k8s-node", "store", "mail",  "vpn",  "backup", "log",       "dns", "nfs", "proxy",
  };
  std::vector<std::string> hosts;
  for (int n = 1; n <= 11; ++n) {
    for (std::string_view prefix : prefixes) {
      char buf[48];
      const int len = std::snprintf(buf, sizeof buf, "%.*s-%02d", static_cast<int>(prefix.size()),
                                    prefix.data(), n);
      hosts.emplace_back(buf, static_cast<std::size_t>(len));
    }
  }
  return hosts;  // 198 names
}
// Hosts that stress escaping. Each one's prefix up to its first quote or backslash is shared with
// no other host, so sorting raw or escaped label values gives the same order.
constexpr std::string_view kOddHosts[] = {
    "wéb-07",          "bäckerei-kasse-01", "kraków-edge-1",
    "østfold-db-2",    "東京-build-03",     "naïve-host",
    "lab host 3",      "qa box 12",         "Front Desk PC",
    "kiosk \"lobby\"", "CORP\\ws-0042",     "CORP\\ws-0117",
    "win\\build-7",    "o'brien-laptop",    "mixed \"q\" and \\ both",
};

// ----------------------------------------------------------------------------------------------
// One log entry, independent of how it is printed.

enum class Level : std::uint8_t { Trace, Debug, Info, Warn, Error };
enum class Kind : std::uint8_t {
  Str,     // Display or Debug text: bare in text shapes, a JSON string in JSON shapes
  Bare,    // number or bool: bare everywhere
  Object,  // a JSON object (the agent's wire `details`); only used for JSON shapes
};

struct Field {
  std::string_view key;
  std::string value;
  Kind kind = Kind::Str;
};

// A fixed set of reusable slots, so building an entry allocates nothing once warm.
class FieldList {
 public:
  std::string& add(std::string_view key, Kind kind = Kind::Str) {
    Field& f = slots_.at(n_++);
    f.key = key;
    f.kind = kind;
    f.value.clear();
    return f.value;
  }
  void add(std::string_view key, std::string_view value, Kind kind = Kind::Str) {
    add(key, kind).assign(value);
  }
  void add_num(std::string_view key, u64 value) {
    std::string& s = add(key, Kind::Bare);
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, value);
    s.assign(buf, r.ptr);
  }
  void clear() { n_ = 0; }
  bool empty() const { return n_ == 0; }
  const Field* begin() const { return slots_.data(); }
  const Field* end() const { return slots_.data() + n_; }

 private:
  std::array<Field, 16> slots_{};
  std::size_t n_ = 0;
};

struct Span {
  std::string_view name;
  FieldList fields;
};

enum class Counts : std::uint8_t { Nothing, Compliance, RuntimeGate, GateBlock, BuildInfo };

struct Entry {
  Level level = Level::Info;
  std::string_view target;
  std::string_view message;
  FieldList fields;
  std::array<Span, 2> spans;
  std::size_t nspans = 0;
  // What an exact exporter must do with this entry.
  Counts counts = Counts::Nothing;
  std::string label_a;  // control_id / gate / version
  std::string label_b;  // host / git_commit

  void reset(Level lvl, std::string_view tgt, std::string_view msg) {
    level = lvl;
    target = tgt;
    message = msg;
    fields.clear();
    nspans = 0;
    counts = Counts::Nothing;
  }
  Span& add_span(std::string_view name) {
    Span& s = spans.at(nspans++);
    s.name = name;
    s.fields.clear();
    return s;
  }
};

// ----------------------------------------------------------------------------------------------
// Output shapes and their writers.

enum class Format : std::uint8_t { Json, Flat, Text, Ansi, Journald, Mixed };
enum class Shape : std::uint8_t {
  Json,
  Flat,
  Text,
  Ansi,
  JournalJson,
  JournalFlat,
  JournalText,
  JournalAnsi
};

bool is_journal(Shape s) { return s >= Shape::JournalJson; }
Shape inner_shape(Shape s) {
  switch (s) {
    case Shape::JournalJson: return Shape::Json;
    case Shape::JournalFlat: return Shape::Flat;
    case Shape::JournalText: return Shape::Text;
    case Shape::JournalAnsi: return Shape::Ansi;
    default: return s;
  }
}
bool is_json(Shape s) {
  const Shape in = inner_shape(s);
  return in == Shape::Json || in == Shape::Flat;
}

void put_u64(std::string& out, u64 v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void put_hex(std::string& out, u64 v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v, 16);
  out.append(buf, r.ptr);
}

void put_fixed_hex(std::string& out, Rng& rng, std::size_t digits) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < digits; ++i) out.push_back(kHex[rng.below(16)]);
}

// JSON string as serde_json (and systemd's JSON writer) print it: only `"`, `\` and control
// characters are escaped; UTF-8 passes through.
void put_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + start, i - start);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default: {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
    }
    start = i + 1;
  }
  out.append(s.data() + start, s.size() - start);
  out.push_back('"');
}

// RFC 3339 UTC with microseconds, as tracing-subscriber's default SystemTime timer prints it.
class Clock {
 public:
  explicit Clock(u64 start_us) : now_us_(start_us) {}
  void advance(u64 us) { now_us_ += us; }
  u64 now_us() const { return now_us_; }

  void put(std::string& out) {
    const u64 sec = now_us_ / 1000000;
    if (sec != cached_sec_) {
      cached_sec_ = sec;
      format_seconds(sec);
    }
    out.append(prefix_, kPrefixLen);
    char micros[6];
    u64 us = now_us_ % 1000000;
    for (int i = 5; i >= 0; --i) {
      micros[i] = static_cast<char>('0' + us % 10);
      us /= 10;
    }
    out.append(micros, sizeof micros);
    out.push_back('Z');
  }

 private:
  void format_seconds(u64 sec) {
    // Howard Hinnant's civil_from_days.
    const auto days = static_cast<std::int64_t>(sec / 86400);
    const u64 tod = sec % 86400;
    std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) ++y;
    const unsigned fields[] = {static_cast<unsigned>(y) / 100,
                               static_cast<unsigned>(y) % 100,
                               m,
                               d,
                               static_cast<unsigned>(tod / 3600),
                               static_cast<unsigned>(tod / 60 % 60),
                               static_cast<unsigned>(tod % 60)};
    static constexpr char kSeparators[] = "\0--T::.";  // after each two-digit group
    char* p = prefix_;
    for (std::size_t i = 0; i < std::size(fields); ++i) {
      *p++ = static_cast<char>('0' + fields[i] / 10 % 10);
      *p++ = static_cast<char>('0' + fields[i] % 10);
      if (kSeparators[i] != '\0') *p++ = kSeparators[i];
    }
  }

  u64 now_us_;
  u64 cached_sec_ = ~u64{0};
  static constexpr std::size_t kPrefixLen = 20;  // "2026-11-20T08:14:03."
  char prefix_[kPrefixLen] = {};
};

// tracing-subscriber 0.3 `Format<Full>`; with ansi, nu-ansi-term styles exactly as it paints them.
constexpr std::string_view kReset = "\x1b[0m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kItalic = "\x1b[3m";

void put_text_fields(std::string& out, const FieldList& fields, bool ansi, bool pad_first) {
  bool pad = pad_first;
  for (const Field& f : fields) {
    if (pad) out.push_back(' ');
    pad = true;
    if (ansi) {
      out += kItalic;
      out += f.key;
      out += kReset;
      out += kDim;
      out += '=';
      out += kReset;
    } else {
      out += f.key;
      out += '=';
    }
    out += f.value;
  }
}

void render_text(std::string& out, const Entry& e, Clock& clock, bool ansi) {
  if (ansi) out += kDim;
  clock.put(out);
  if (ansi) out += kReset;
  out += ' ';

  static constexpr std::string_view kLevels[] = {"TRACE", "DEBUG", " INFO", " WARN", "ERROR"};
  static constexpr std::string_view kColours[] = {"\x1b[35m", "\x1b[34m", "\x1b[32m", "\x1b[33m",
                                                  "\x1b[31m"};
  const auto lvl = static_cast<std::size_t>(e.level);
  if (ansi) out += kColours[lvl];
  out += kLevels[lvl];
  if (ansi) out += kReset;
  out += ' ';

  for (std::size_t i = 0; i < e.nspans; ++i) {
    const Span& span = e.spans[i];
    if (ansi) {
      out += kBold;
      out += span.name;
      out += kReset;
      if (!span.fields.empty()) {
        out += kBold;
        out += '{';
        out += kReset;
        put_text_fields(out, span.fields, true, false);
        out += kBold;
        out += '}';
        out += kReset;
      }
      out += kDim;
      out += ':';
      out += kReset;
    } else {
      out += span.name;
      if (!span.fields.empty()) {
        out += '{';
        put_text_fields(out, span.fields, false, false);
        out += '}';
      }
      out += ':';
    }
  }
  if (e.nspans > 0) out += ' ';

  if (ansi) {
    out += kDim;
    out += e.target;
    out += kReset;
    out += kDim;
    out += ':';
    out += kReset;
  } else {
    out += e.target;
    out += ':';
  }
  out += ' ';
  out += e.message;
  put_text_fields(out, e.fields, ansi, true);
  out += '\n';
}

void put_json_value(std::string& out, const Field& f) {
  if (f.kind == Kind::Str) {
    put_json_string(out, f.value);
  } else {
    out += f.value;
  }
}

// A span as tracing-subscriber's JSON writes it: its fields went through a serde_json::Map (a
// BTreeMap), so they come out sorted by key, and "name" is appended last.
void put_json_span(std::string& out, const Span& span) {
  std::array<const Field*, 16> sorted{};
  std::size_t n = 0;
  for (const Field& f : span.fields) sorted.at(n++) = &f;
  std::sort(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(n),
            [](const Field* a, const Field* b) { return a->key < b->key; });
  out += '{';
  for (std::size_t i = 0; i < n; ++i) {
    put_json_string(out, sorted[i]->key);
    out += ':';
    put_json_value(out, *sorted[i]);
    out += ',';
  }
  out += "\"name\":";
  put_json_string(out, span.name);
  out += '}';
}

void render_json(std::string& out, const Entry& e, Clock& clock, bool flat) {
  static constexpr std::string_view kLevels[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR"};
  out += "{\"timestamp\":\"";
  clock.put(out);
  out += "\",\"level\":\"";
  out += kLevels[static_cast<std::size_t>(e.level)];
  out += flat ? "\",\"message\":" : "\",\"fields\":{\"message\":";
  put_json_string(out, e.message);
  for (const Field& f : e.fields) {
    out += ',';
    put_json_string(out, f.key);
    out += ':';
    put_json_value(out, f);
  }
  out += flat ? ",\"target\":" : "},\"target\":";
  put_json_string(out, e.target);
  if (e.nspans > 0) {
    out += ",\"span\":";
    put_json_span(out, e.spans[e.nspans - 1]);
    out += ",\"spans\":[";
    for (std::size_t i = 0; i < e.nspans; ++i) {
      if (i > 0) out += ',';
      put_json_span(out, e.spans[i]);
    }
    out += ']';
  }
  out += "}\n";
}

// systemd's json export writes a field as a string when it is valid UTF-8 without control
// characters other than TAB and LF (C1 controls U+0080..U+009F are not printable either).
bool journal_printable(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp >= 0x80 && cp <= 0x9f) return false;
    i += len;
  }
  return true;
}

// The journal of the CP's host: one boot, and the CP's process as systemd runs it.
class Journal {
 public:
  explicit Journal(Rng& rng, u64 start_us) {
    put_fixed_hex(boot_id_, rng, 32);
    put_fixed_hex(machine_id_, rng, 32);
    put_fixed_hex(seqnum_id_, rng, 32);
    seqnum_ = rng.between(0x100000, 0x3fffff);
    boot_realtime_us_ = start_us - rng.between(3600ULL * 1000000, 9ULL * 86400 * 1000000);
  }

  // A new CP process: what changes when systemd restarts the unit.
  void new_process(Rng& rng, std::string_view version) {
    pid_.clear();
    put_u64(pid_, rng.between(600, 48000));
    invocation_id_.clear();
    put_fixed_hex(invocation_id_, rng, 32);
    stream_id_.clear();
    put_fixed_hex(stream_id_, rng, 32);
    static constexpr char kNixBase32[] = "0123456789abcdfghijklmnpqrsvwxyz";
    exe_ = "/nix/store/";
    for (int i = 0; i < 32; ++i) exe_.push_back(kNixBase32[rng.below(32)]);
    exe_ += "-nixfleet-control-plane-";
    exe_ += version;
    exe_ += "/bin/nixfleet-control-plane";
  }

  // One record of the CP's stdout stream; `line` has no newline.
  void put_cp_record(std::string& out, Rng& rng, u64 realtime_us, std::string_view line) {
    put_head(out, rng, realtime_us);
    out +=
        ",\"PRIORITY\":\"6\",\"SYSLOG_FACILITY\":\"3\",\"_UID\":\"991\",\"_GID\":\"991\","
        "\"_CAP_EFFECTIVE\":\"0\",\"_MACHINE_ID\":\"";
    out += machine_id_;
    out +=
        "\",\"_HOSTNAME\":\"cp-1\",\"_TRANSPORT\":\"stdout\",\"_SYSTEMD_SLICE\":\"system.slice\","
        "\"_STREAM_ID\":\"";
    out += stream_id_;
    out += "\",\"SYSLOG_IDENTIFIER\":\"nixfleet-control-plane\",\"MESSAGE\":";
    put_message(out, line);
    out += ",\"_PID\":\"";
    out += pid_;
    out += "\",\"_COMM\":\"nixfleet-contro\",\"_EXE\":\"";
    out += exe_;
    out += "\",\"_CMDLINE\":\"";
    out += exe_;
    out +=
        " --config /etc/nixfleet/control-plane.toml\",\"_SYSTEMD_CGROUP\":"
        "\"/system.slice/nixfleet-control-plane.service\",\"_SYSTEMD_UNIT\":"
        "\"nixfleet-control-plane.service\",\"_SYSTEMD_INVOCATION_ID\":\"";
    out += invocation_id_;
    out += "\"}\n";
  }

  // One record from systemd itself (PID 1) about the CP's unit.
  void put_systemd_record(std::string& out, Rng& rng, u64 realtime_us, std::string_view message) {
    put_head(out, rng, realtime_us);
    out +=
        ",\"PRIORITY\":\"6\",\"SYSLOG_FACILITY\":\"3\",\"_UID\":\"0\",\"_GID\":\"0\","
        "\"_MACHINE_ID\":\"";
    out += machine_id_;
    out +=
        "\",\"_HOSTNAME\":\"cp-1\",\"_TRANSPORT\":\"journal\",\"CODE_FILE\":\"src/core/unit.c\","
        "\"CODE_FUNC\":\"unit_log_success\",\"SYSLOG_IDENTIFIER\":\"systemd\",\"MESSAGE\":";
    put_message(out, message);
    out +=
        ",\"UNIT\":\"nixfleet-control-plane.service\",\"_PID\":\"1\",\"_COMM\":\"systemd\","
        "\"_EXE\":\"/run/current-system/systemd/lib/systemd/systemd\",\"_CAP_EFFECTIVE\":"
        "\"1ffffffffff\",\"_SYSTEMD_CGROUP\":\"/init.scope\",\"_SYSTEMD_UNIT\":\"init.scope\","
        "\"_SYSTEMD_SLICE\":\"-.slice\"}\n";
  }

 private:
  void put_head(std::string& out, Rng& rng, u64 realtime_us) {
    realtime_us =
        std::max(realtime_us, last_realtime_us_ + 1);  // the journal's clock never steps back
    last_realtime_us_ = realtime_us;
    const u64 mono = realtime_us - boot_realtime_us_;
    ++seqnum_;
    out += "{\"__CURSOR\":\"s=";
    out += seqnum_id_;
    out += ";i=";
    put_hex(out, seqnum_);
    out += ";b=";
    out += boot_id_;
    out += ";m=";
    put_hex(out, mono);
    out += ";t=";
    put_hex(out, realtime_us);
    out += ";x=";
    put_fixed_hex(out, rng, 16);
    out += "\",\"__REALTIME_TIMESTAMP\":\"";
    put_u64(out, realtime_us);
    out += "\",\"__MONOTONIC_TIMESTAMP\":\"";
    put_u64(out, mono);
    out += "\",\"_BOOT_ID\":\"";
    out += boot_id_;
    out += '"';
  }

  static void put_message(std::string& out, std::string_view line) {
    if (line.size() + sizeof "MESSAGE=" - 1 >= 4096) {
      out += "null";  // journalctl -o json without --all
    } else if (journal_printable(line)) {
      put_json_string(out, line);
    } else {
      out += '[';
      for (std::size_t i = 0; i < line.size(); ++i) {
        if (i > 0) out += ',';
        put_u64(out, static_cast<unsigned char>(line[i]));
      }
      out += ']';
    }
  }

  std::string boot_id_, machine_id_, seqnum_id_, pid_, invocation_id_, stream_id_, exe_;
  u64 seqnum_ = 0;
  u64 boot_realtime_us_ = 0;
  u64 last_realtime_us_ = 0;
};

// ----------------------------------------------------------------------------------------------
// Configuration.

struct Config {
  Format format = Format::Json;
  std::optional<u64> max_bytes;
  std::optional<u64> max_lines;
  u64 seed = 1;
  double event_rate = 0.02;
  std::string out_path;
  std::string expected_path;
  unsigned restarts = 1;
  bool crlf = false;
  // The mix knobs; unset keeps the default mix, byte for byte.
  std::optional<double> quiet_rate;
  std::optional<double> version_rate;
  std::optional<double> long_rate;
  enum class Spans : std::uint8_t { Some, On, Off } spans = Spans::Some;
};

// What an exact exporter must count for everything written so far.
struct Tally {
  std::map<std::pair<std::string, std::string>, u64> compliance;  // (control_id, host)
  std::map<std::string, u64> gates;
  u64 runtime_gate_errors = 0;
  u64 compliance_total = 0;
  u64 gate_total = 0;
  std::string version = "unknown";
  std::string git_commit = "unknown";
  u64 lines = 0;
  u64 bytes = 0;

  void apply(const Entry& e) {
    switch (e.counts) {
      case Counts::Nothing: break;
      case Counts::Compliance:
        ++compliance[{e.label_a, e.label_b}];
        ++compliance_total;
        break;
      case Counts::RuntimeGate: ++runtime_gate_errors; break;
      case Counts::GateBlock:
        ++gates[e.label_a];
        ++gate_total;
        break;
      case Counts::BuildInfo:
        version = e.label_a;
        git_commit = e.label_b;
        break;
    }
  }
};

// ----------------------------------------------------------------------------------------------
// The generator: picks entries, renders them in the chosen shape, keeps the tally.

class Generator {
 public:
  Generator(const Config& cfg, std::FILE* out)
      : cfg_(cfg),
        out_(out),
        rng_(cfg.seed),
        clock_(kStartEpochUs + rng_.below(3600ULL * 1000000)),
        journal_(rng_, clock_.now_us()),
        regular_hosts_(make_regular_hosts()) {
    buf_.reserve(kFlushAt + (1 << 20));
    scratch_.reserve(1 << 16);
    version_minor_ = 9;
    version_patch_ = 3;
  }

  // Returns false on an I/O error.
  bool run() {
    new_version();
    journal_.new_process(rng_, version_);
    if (journal_in_use())
      emit_systemd("Started nixfleet-control-plane.service - NixFleet control plane.");
    const u64 before = rng_.below(4);
    for (u64 i = 0; i < before && !done_; ++i) {
      const Shape s = pick_shape();
      e_.reset(Level::Debug, "nixfleet_control_plane::config", "reading configuration");
      e_.fields.add("path", "/etc/nixfleet/control-plane.toml");
      emit(s);
    }
    startup();

    unsigned restarts_done = 0;
    while (!done_) {
      if (restarts_done < cfg_.restarts &&
          progress() >= static_cast<double>(restarts_done + 1) / (cfg_.restarts + 1)) {
        ++restarts_done;
        restart();
        continue;
      }
      clock_.advance(rng_.below(1500));
      const Shape s = pick_shape();
      build(s);
      emit(s);
      if (io_error_) return false;
    }
    return flush();
  }

  const Tally& tally() const { return tally_; }

 private:
  static constexpr u64 kStartEpochUs = 1795161600ULL * 1000000;  // 2026-11-20T08:00:00Z
  static constexpr std::size_t kFlushAt = 4 << 20;

  bool journal_in_use() const {
    return cfg_.format == Format::Journald || cfg_.format == Format::Mixed;
  }

  double progress() const {
    if (cfg_.max_bytes)
      return static_cast<double>(tally_.bytes) / static_cast<double>(*cfg_.max_bytes);
    return static_cast<double>(tally_.lines) / static_cast<double>(*cfg_.max_lines);
  }

  // Multi-line values must not overshoot an exact --lines budget (3 continuation lines at most).
  bool multiline_allowed(Shape s) const {
    if (is_json(s)) return true;
    return !cfg_.max_lines || *cfg_.max_lines - tally_.lines >= 8;
  }

  Shape pick_journal_shape() {
    const u64 r = rng_.below(100);
    if (r < 40) return Shape::JournalText;
    if (r < 80) return Shape::JournalAnsi;
    if (r < 95) return Shape::JournalJson;
    return Shape::JournalFlat;
  }

  Shape pick_shape() {
    switch (cfg_.format) {
      case Format::Json: return Shape::Json;
      case Format::Flat: return Shape::Flat;
      case Format::Text: return Shape::Text;
      case Format::Ansi: return Shape::Ansi;
      case Format::Journald: return pick_journal_shape();
      case Format::Mixed: {
        static constexpr Shape kRaw[] = {Shape::Json, Shape::Flat, Shape::Text, Shape::Ansi};
        const u64 r = rng_.below(5);
        return r < 4 ? kRaw[r] : pick_journal_shape();
      }
    }
    return Shape::Json;
  }

  // ---- rendering and accounting

  // Renders e_ in shape s. Appends nothing and sets done_ if it would not fit the budget.
  void emit(Shape s) {
    if (done_) return;
    if (cfg_.spans == Config::Spans::Off) e_.nspans = 0;
    const std::size_t start = buf_.size();
    const Shape in = inner_shape(s);
    std::string& target = is_journal(s) ? scratch_ : buf_;
    if (is_journal(s)) scratch_.clear();
    if (in == Shape::Json || in == Shape::Flat) {
      render_json(target, e_, clock_, in == Shape::Flat);
    } else {
      render_text(target, e_, clock_, in == Shape::Ansi);
    }
    if (is_journal(s)) {
      // journald splits the stream at newlines: each continuation is a record of its own.
      u64 realtime = clock_.now_us() + rng_.between(20, 400);
      std::string_view rest = scratch_;
      while (!rest.empty()) {
        const std::size_t nl = rest.find('\n');
        journal_.put_cp_record(buf_, rng_, realtime++, rest.substr(0, nl));
        rest.remove_prefix(nl + 1);
      }
    }
    commit(start);
  }

  void emit_systemd(std::string_view message) {
    if (done_) return;
    const std::size_t start = buf_.size();
    clock_.advance(rng_.between(100, 5000));
    journal_.put_systemd_record(buf_, rng_, clock_.now_us(), message);
    e_.counts = Counts::Nothing;
    commit(start);
  }

  void commit(std::size_t start) {
    if (cfg_.crlf) {
      scratch_.assign(buf_, start);
      buf_.resize(start);
      for (char c : scratch_) {
        if (c == '\n') buf_.push_back('\r');
        buf_.push_back(c);
      }
    }
    const u64 len = buf_.size() - start;
    const auto lines = static_cast<u64>(
        std::count(buf_.begin() + static_cast<std::ptrdiff_t>(start), buf_.end(), '\n'));
    if ((cfg_.max_bytes && tally_.bytes + len > *cfg_.max_bytes) ||
        (cfg_.max_lines && tally_.lines + lines > *cfg_.max_lines)) {
      buf_.resize(start);
      done_ = true;
      return;
    }
    tally_.bytes += len;
    tally_.lines += lines;
    tally_.apply(e_);
    if (cfg_.max_lines && tally_.lines == *cfg_.max_lines) done_ = true;
    if (buf_.size() >= kFlushAt && !flush()) done_ = true;
  }

  bool flush() {
    if (!buf_.empty() && std::fwrite(buf_.data(), 1, buf_.size(), out_) != buf_.size()) {
      io_error_ = true;
    }
    buf_.clear();
    return !io_error_;
  }

  // ---- vocabulary helpers

  std::string_view pick_host() {
    if (rng_.chance(0.2)) return rng_.pick(kOddHosts);
    return regular_hosts_[rng_.skewed(regular_hosts_.size())];
  }
  std::string_view pick_control() { return kControlIds[rng_.skewed(std::size(kControlIds))]; }
  void put_uuid(std::string& s) {
    put_fixed_hex(s, rng_, 8);
    s += '-';
    put_fixed_hex(s, rng_, 4);
    s += "-4";
    put_fixed_hex(s, rng_, 3);
    s += '-';
    s += "89ab"[rng_.below(4)];
    put_fixed_hex(s, rng_, 3);
    s += '-';
    put_fixed_hex(s, rng_, 12);
  }
  // tower-http's TraceLayer span: `method` and `uri` with Display, `version` with Debug.
  void add_tower_span(Entry& e, std::string_view method, std::string_view uri) {
    Span& req = e.add_span("request");
    req.fields.add("method", method);
    req.fields.add("uri", uri);
    req.fields.add("version", rng_.chance(0.9) ? "HTTP/1.1"sv : "HTTP/2.0"sv);
  }
  bool spans_on() const { return cfg_.spans == Config::Spans::On; }
  void add_request_spans(Entry& e, std::string_view uri, std::string_view host) {
    add_tower_span(e, "POST", uri);
    if (rng_.chance(0.6)) {
      Span& rep = e.add_span("report");
      rep.fields.add("hostname", host);
      put_uuid(rep.fields.add("request_id"));
    }
  }
  void add_report_tail(Entry& e, bool with_signature) {
    e.fields.add("rollout", rng_.pick(kRollouts));
    e.fields.add("agent_version", rng_.pick(kAgentVersions));
    put_uuid(e.fields.add("event_id"));
    if (with_signature) e.fields.add("signature_status", "Some(Verified)");
  }

  // ---- entries

  void build(Shape s) {
    const bool json = is_json(s);
    const bool multiline = multiline_allowed(s);
    if (rng_.chance(cfg_.event_rate)) {
      const u64 r = rng_.below(100);
      if (r < 70) {
        compliance_failure(json);
      } else if (r < 80) {
        runtime_gate_error(json, multiline);
      } else {
        gate_block();
      }
      return;
    }
    // The knobs are fractions of all entries; here, given that this one does not count.
    double left = 1.0 - cfg_.event_rate;
    const auto take = [&](const std::optional<double>& rate) {
      if (!rate || *rate <= 0.0 || left <= 0.0) return false;
      const bool hit = rng_.chance(*rate / left);
      left -= *rate;
      return hit;
    };
    if (take(cfg_.long_rate)) return long_line();
    if (take(cfg_.quiet_rate)) return quiet_report(false);
    if (take(cfg_.version_rate)) return tower_http_record();
    if (!cfg_.long_rate && rng_.chance(0.0001)) {
      giant_line();
      return;
    }
    const u64 r = rng_.below(1000);
    if (r < 280) return http_request();
    if (r < 450) return cfg_.quiet_rate ? heartbeat() : quiet_report(false);
    if (r < 510) return gate_evaluation();
    if (r < 550) return rollout_advanced();
    if (r < 580) return rejected_report();
    if (r < 590) return near_miss_report();
    if (r < 610) return gate_released();
    if (r < 640) return error_decoy();
    if (r < 655 && multiline) return multiline_decoy();
    if (r < 685) return signature_in_span();
    if (r < 690) return cfg_.quiet_rate ? heartbeat() : quiet_report(true);
    if (r < 710) return heartbeat();
    if (r < 713) return escape_in_value();
    target_assigned();
  }

  void compliance_failure(bool json) {
    const std::string_view host = pick_host();
    const std::string_view control = pick_control();
    const bool has_control = !rng_.chance(0.05);
    const bool wire = json && rng_.chance(0.15);
    e_.reset(rng_.chance(0.3) ? Level::Warn : Level::Info,
             rng_.chance(0.3) ? "nixfleet_control_plane::report"sv : "report"sv, "report received");
    if (spans_on() || rng_.chance(0.25)) add_request_spans(e_, "/v1/agent/report", host);
    e_.fields.add("hostname", host);
    const std::string_view event =
        rng_.chance(0.15) ? "ComplianceFailure"sv : "compliance-failure"sv;
    if (wire) {
      e_.fields.add("event", event);
      std::string& d = e_.fields.add("details", Kind::Object);
      d += '{';
      if (has_control) {
        d += "\"control_id\":";
        put_json_string(d, control);
        d += ',';
      }
      d += "\"check\":";
      put_json_string(d, rng_.pick(kChecks));
      d += ",\"severity\":\"high\"}";
    } else if (rng_.chance(0.2)) {
      if (has_control) e_.fields.add("control_id", control);
      e_.fields.add("event", event);
    } else {
      e_.fields.add("event", event);
      if (has_control) e_.fields.add("control_id", control);
    }
    add_report_tail(e_, true);
    e_.counts = Counts::Compliance;
    e_.label_a = has_control ? control : "unknown"sv;
    e_.label_b = host;
  }

  void runtime_gate_error(bool json, bool multiline) {
    const std::string_view host = pick_host();
    const u64 lvl = rng_.below(10);
    e_.reset(lvl < 5   ? Level::Error
             : lvl < 8 ? Level::Warn
                       : Level::Info,
             "report", "report received");
    if (spans_on() || rng_.chance(0.2)) add_request_spans(e_, "/v1/agent/report", host);
    e_.fields.add("hostname", host);
    e_.fields.add("event", rng_.chance(0.2) ? "RuntimeGateError"sv : "runtime-gate-error"sv);
    e_.fields.add("gate", rng_.pick(kKnownGates));
    if (json && rng_.chance(0.15)) {
      std::string& d = e_.fields.add("details", Kind::Object);
      d += "{\"probe\":\"nixfleet-probe.service\",\"error\":";
      put_json_string(d, rng_.pick(kRuntimeGateErrors));
      d += '}';
    }
    add_report_tail(e_, false);
    // The error goes last, so a multi-line value leaves the counting fields on the first line.
    e_.fields.add("error", multiline && rng_.chance(0.1) ? rng_.pick(kMultiLineGateErrors)
                                                         : rng_.pick(kRuntimeGateErrors));
    e_.counts = Counts::RuntimeGate;
  }

  void gate_block() {
    const std::string_view gate = rng_.chance(0.03)
                                      ? rng_.pick(kUnknownGates)
                                      : kKnownGates[rng_.skewed(std::size(kKnownGates))];
    e_.reset(rng_.chance(0.15) ? Level::Warn : Level::Info,
             rng_.chance(0.3) ? "nixfleet_control_plane::dispatch"sv : "dispatch"sv,
             "dispatch: held by fleet-level gate");
    if (rng_.chance(0.2)) {
      Span& loop = e_.add_span("dispatch_loop");
      loop.fields.add_num("tick", rng_.between(1, 200000));
    }
    const bool gate_last = rng_.chance(0.3);
    if (!gate_last) e_.fields.add("gate", gate);
    e_.fields.add("rollout", rng_.pick(kRollouts));
    e_.fields.add("host", pick_host());
    e_.fields.add_num("wave", rng_.between(1, 5));
    e_.fields.add("reason", rng_.pick(kGateReasons));
    if (gate_last) e_.fields.add("gate", gate);
    e_.counts = Counts::GateBlock;
    e_.label_a = gate;
  }

  void http_request() {
    const std::string_view path = rng_.pick(kPaths);
    e_.reset(Level::Debug, "nixfleet_control_plane::http", "http request");
    if (spans_on() || rng_.chance(0.3)) {
      add_tower_span(e_, path == "/metrics" || path == "/healthz" ? "GET"sv : "POST"sv, path);
    }
    e_.fields.add("method", path == "/metrics" || path == "/healthz" ? "GET"sv : "POST"sv);
    e_.fields.add("path", path);
    e_.fields.add_num("status", static_cast<u64>(rng_.pick(kStatuses)));
    e_.fields.add_num("latency_ms", rng_.skewed(900));
    if (rng_.chance(0.5)) {
      std::string& peer = e_.fields.add("peer");
      peer = "10.20.";
      put_u64(peer, rng_.below(8));
      peer += '.';
      put_u64(peer, rng_.between(2, 254));
      peer += ':';
      put_u64(peer, rng_.between(32768, 60999));
    }
  }

  void target_assigned() {
    static constexpr char kNixBase32[] = "0123456789abcdfghijklmnpqrsvwxyz";
    const std::string_view host = pick_host();
    e_.reset(Level::Info, "dispatch", "target assigned");
    e_.fields.add("hostname", host);
    e_.fields.add("rollout", rng_.pick(kRollouts));
    std::string& closure = e_.fields.add("closure");
    closure = "/nix/store/";
    for (int i = 0; i < 32; ++i) closure.push_back(kNixBase32[rng_.below(32)]);
    closure += "-nixos-system-";
    // A store path name cannot hold spaces, quotes or non-ASCII: odd hosts build a generic system.
    const bool plain = std::all_of(host.begin(), host.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    closure += plain && rng_.chance(0.9) ? host : "fleet-node"sv;
    closure += "-24.11.20261118.a1b2c3d";
    e_.fields.add_num("wave", rng_.between(1, 5));
  }

  void quiet_report(bool in_misleading_span) {
    const std::string_view host = pick_host();
    e_.reset(Level::Info, "report", "report received");
    if (in_misleading_span) {
      Span& replay = e_.add_span("replay");
      replay.fields.add("event", "compliance-failure");
      replay.fields.add_num("batch", rng_.between(1, 999));
    } else if (spans_on() || rng_.chance(0.25)) {
      add_request_spans(e_, "/v1/agent/report", host);
    }
    e_.fields.add("hostname", host);
    e_.fields.add("event", rng_.pick(kQuietEvents));
    if (rng_.chance(0.3)) e_.fields.add("control_id", pick_control());  // stray, must not matter
    add_report_tail(e_, true);
  }

  void rejected_report() {
    e_.reset(Level::Warn, "report", "report rejected: bad signature");
    if (spans_on()) add_tower_span(e_, "POST", "/v1/agent/report");
    e_.fields.add("hostname", pick_host());
    e_.fields.add("event", "compliance-failure");
    e_.fields.add("control_id", pick_control());
    e_.fields.add("signature_status", rng_.chance(0.5) ? "Some(Invalid)"sv : "None"sv);
    put_uuid(e_.fields.add("event_id"));
  }

  void near_miss_report() {
    e_.reset(Level::Warn, "report",
             rng_.chance(0.5) ? "report received from unknown host"sv
                              : "report received twice, dropping duplicate"sv);
    if (spans_on()) add_tower_span(e_, "POST", "/v1/agent/report");
    e_.fields.add("hostname", pick_host());
    e_.fields.add("event", rng_.chance(0.5) ? "compliance-failure"sv : "runtime-gate-error"sv);
    e_.fields.add("control_id", pick_control());
    put_uuid(e_.fields.add("event_id"));
  }

  void gate_evaluation() {
    e_.reset(Level::Debug, "nixfleet_control_plane::gates", "evaluating gate");
    e_.fields.add("gate", rng_.pick(kKnownGates));
    e_.fields.add("rollout", rng_.pick(kRollouts));
    e_.fields.add("held", rng_.chance(0.2) ? "true"sv : "false"sv, Kind::Bare);
  }

  void gate_released() {
    e_.reset(Level::Info, "dispatch", "dispatch: released by fleet-level gate");
    e_.fields.add("gate", rng_.pick(kKnownGates));
    e_.fields.add("rollout", rng_.pick(kRollouts));
    e_.fields.add("host", pick_host());
  }

  void rollout_advanced() {
    e_.reset(Level::Info, "nixfleet_control_plane::rollout", "rollout advanced");
    e_.fields.add("rollout", rng_.pick(kRollouts));
    e_.fields.add_num("wave", rng_.between(1, 5));
    e_.fields.add_num("hosts_done", rng_.between(0, 200));
  }

  void error_decoy() {
    e_.reset(rng_.chance(0.7) ? Level::Error : Level::Warn, "nixfleet_control_plane::worker",
             rng_.pick(kErrorMessages));
    if (rng_.chance(0.5)) e_.fields.add("hostname", pick_host());
    e_.fields.add(rng_.chance(0.5) ? "error"sv : "reason"sv, rng_.pick(kErrorTexts));
    if (rng_.chance(0.3)) e_.fields.add("rollout", rng_.pick(kRollouts));
  }

  void multiline_decoy() {
    e_.reset(Level::Error, "report", "report processing failed");
    e_.fields.add("hostname", pick_host());
    put_uuid(e_.fields.add("event_id"));
    e_.fields.add("error", rng_.pick(kMultiLineErrors));
  }

  void signature_in_span() {
    const std::string_view host = pick_host();
    e_.reset(Level::Debug, "nixfleet_control_plane::trust", "verifying signature");
    Span& rep = e_.add_span("report");
    rep.fields.add("hostname", host);
    rep.fields.add("event", "compliance-failure");
    rep.fields.add("control_id", pick_control());
    e_.fields.add("key_id", "fleet-2026");
    e_.fields.add("algorithm", "ed25519");
  }

  void heartbeat() {
    e_.reset(Level::Trace, "nixfleet_control_plane::agents", "heartbeat");
    e_.fields.add("hostname", pick_host());
    e_.fields.add_num("seq", rng_.between(1, 1000000));
  }

  void escape_in_value() {
    e_.reset(Level::Warn, "nixfleet_control_plane::builder", "child process failed");
    e_.fields.add("command", "nix build");
    e_.fields.add("stderr", "\x1b[31;1merror:\x1b[0m builder for compliance-failure check failed");
  }

  // tower-http's TraceLayer at its default levels: one record as the request starts, one as the
  // response goes out, both inside the request span (which says `version`).
  void tower_http_record() {
    const std::string_view path = rng_.pick(kPaths);
    const std::string_view method = path == "/metrics" || path == "/healthz" ? "GET"sv : "POST"sv;
    if (rng_.chance(0.5)) {
      e_.reset(Level::Debug, "tower_http::trace::on_request", "started processing request");
    } else {
      e_.reset(Level::Debug, "tower_http::trace::on_response", "finished processing request");
      std::string& latency = e_.fields.add("latency");
      put_u64(latency, rng_.skewed(900));
      latency += " ms";
      e_.fields.add_num("status", static_cast<u64>(rng_.pick(kStatuses)));
    }
    add_tower_span(e_, method, path);
  }

  // A Debug-printed value of 4-64 KiB (a fleet dump); journalctl -o json shows such a MESSAGE
  // as null. Sometimes it is a non-counting report whose payload is the dump.
  void long_line() {
    const u64 want = rng_.between(4 << 10, 64 << 10);
    if (rng_.chance(0.3)) {
      const std::string_view host = pick_host();
      e_.reset(Level::Info, "report", "report received");
      if (spans_on()) add_request_spans(e_, "/v1/agent/report", host);
      e_.fields.add("hostname", host);
      e_.fields.add("event", rng_.pick(kQuietEvents));
      add_report_tail(e_, true);
    } else {
      e_.reset(Level::Debug, "nixfleet_control_plane::config", "fleet inventory reloaded");
    }
    std::string& dump = e_.fields.add("closures");
    dump = "[";
    while (dump.size() < want) {
      if (dump.size() > 1) dump += ", ";
      dump += "\"/nix/store/";
      put_fixed_hex(dump, rng_, 32);
      dump += "-nixos-system-";
      dump += regular_hosts_[rng_.below(regular_hosts_.size())];
      dump += '"';
    }
    dump += ']';
  }

  // A Debug-printed map of every host's rollout: over 4096 bytes, so journalctl -o json shows null.
  void giant_line() {
    e_.reset(Level::Debug, "nixfleet_control_plane::config", "fleet inventory reloaded");
    std::string& map = e_.fields.add("assignments");
    map = "{";
    const auto put_entry = [&](std::string_view host) {
      if (map.size() > 1) map += ", ";
      map += '"';
      for (char c : host) {  // Rust string escapes
        if (c == '"' || c == '\\') map += '\\';
        map += c;
      }
      map += "\": \"";
      map += rng_.pick(kRollouts);
      map += '"';
    };
    for (const std::string& h : regular_hosts_) put_entry(h);
    for (std::string_view h : kOddHosts) put_entry(h);
    map += '}';
    e_.fields.add_num("count", regular_hosts_.size() + std::size(kOddHosts));
  }

  // ---- lifecycle

  void new_version() {
    if (!version_.empty()) {
      if (rng_.chance(0.3)) {
        ++version_minor_;
        version_patch_ = 0;
      } else {
        ++version_patch_;
      }
    }
    version_ = "0.";
    put_u64(version_, version_minor_);
    version_ += '.';
    put_u64(version_, version_patch_);
    git_commit_.clear();
    put_fixed_hex(git_commit_, rng_, 40);
  }

  void startup() {
    clock_.advance(rng_.between(1000, 90000));
    Shape s = pick_shape();
    e_.reset(Level::Info, "nixfleet_control_plane", "starting control plane");
    e_.fields.add("version", version_);
    e_.fields.add("git_commit", git_commit_);
    e_.fields.add("listen", "0.0.0.0:8443");
    e_.counts = Counts::BuildInfo;
    e_.label_a = version_;
    e_.label_b = git_commit_;
    emit(s);

    clock_.advance(rng_.between(1000, 20000));
    s = pick_shape();
    e_.reset(Level::Info, "nixfleet_control_plane::inventory", "loaded fleet inventory");
    e_.fields.add_num("hosts", regular_hosts_.size() + std::size(kOddHosts));
    e_.fields.add_num("rollouts", std::size(kRollouts));
    emit(s);

    clock_.advance(rng_.between(100, 5000));
    s = pick_shape();
    e_.reset(Level::Info, "nixfleet_control_plane::http", "listening");
    e_.fields.add("addr", "0.0.0.0:8443");
    e_.fields.add("tls", "true", Kind::Bare);
    emit(s);
  }

  void restart() {
    Shape s = pick_shape();
    clock_.advance(rng_.between(1000, 300000));
    e_.reset(Level::Info, "nixfleet_control_plane", "received SIGTERM, shutting down");
    emit(s);
    s = pick_shape();
    clock_.advance(rng_.between(1000, 50000));
    e_.reset(Level::Info, "dispatch", "draining dispatch queue");
    e_.fields.add_num("pending", rng_.below(12));
    emit(s);
    s = pick_shape();
    clock_.advance(rng_.between(1000, 900000));
    e_.reset(Level::Info, "nixfleet_control_plane", "shutdown complete");
    emit(s);
    if (journal_in_use()) {
      emit_systemd("Stopping nixfleet-control-plane.service - NixFleet control plane...");
      emit_systemd("nixfleet-control-plane.service: Deactivated successfully.");
      emit_systemd("Stopped nixfleet-control-plane.service - NixFleet control plane.");
      emit_systemd("nixfleet-control-plane.service: Consumed 4min 12.337s CPU time.");
    }
    new_version();
    journal_.new_process(rng_, version_);
    clock_.advance(rng_.between(500000, 3000000));
    if (journal_in_use())
      emit_systemd("Started nixfleet-control-plane.service - NixFleet control plane.");
    startup();
  }

  const Config& cfg_;
  std::FILE* out_;
  Rng rng_;
  Clock clock_;
  Journal journal_;
  std::vector<std::string> regular_hosts_;
  Entry e_;
  Tally tally_;
  std::string buf_;
  std::string scratch_;
  std::string version_;
  std::string git_commit_;
  u64 version_minor_ = 0;
  u64 version_patch_ = 0;
  bool done_ = false;
  bool io_error_ = false;
};

// ----------------------------------------------------------------------------------------------
// Expected exposition.

void put_label_value(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string render_expected(const Tally& t) {
  std::string out;
  out +=
      "# HELP nixfleet_compliance_failure_events_total ComplianceFailure reports received, per "
      "control and host.\n"
      "# TYPE nixfleet_compliance_failure_events_total counter\n";
  for (const auto& [labels, n] : t.compliance) {
    out += "nixfleet_compliance_failure_events_total{control_id=\"";
    put_label_value(out, labels.first);
    out += "\",host=\"";
    put_label_value(out, labels.second);
    out += "\"} ";
    put_u64(out, n);
    out += '\n';
  }
  out +=
      "# HELP nixfleet_cp_build_info Control plane version, from flags or its log.\n"
      "# TYPE nixfleet_cp_build_info gauge\n"
      "nixfleet_cp_build_info{git_commit=\"";
  put_label_value(out, t.git_commit);
  out += "\",version=\"";
  put_label_value(out, t.version);
  out += "\"} 1\n";
  out +=
      "# HELP nixfleet_gate_block_total Dispatches held by a fleet-level gate, per gate kind.\n"
      "# TYPE nixfleet_gate_block_total counter\n";
  std::map<std::string, u64> gates = t.gates;
  for (std::string_view g : kKnownGates) gates.try_emplace(std::string(g), 0);
  for (const auto& [gate, n] : gates) {
    out += "nixfleet_gate_block_total{gate=\"";
    put_label_value(out, gate);
    out += "\"} ";
    put_u64(out, n);
    out += '\n';
  }
  out +=
      "# HELP nixfleet_runtime_gate_error_events_total RuntimeGateError reports received.\n"
      "# TYPE nixfleet_runtime_gate_error_events_total counter\n"
      "nixfleet_runtime_gate_error_events_total ";
  put_u64(out, t.runtime_gate_errors);
  out += '\n';
  return out;
}

// ----------------------------------------------------------------------------------------------
// Command line.

constexpr std::string_view kUsage =
    "usage: nle_gen_logs --out PATH (--bytes N[K|M|G] | --lines N) [--format FORMAT] [--seed S]\n"
    "                    [--event-rate R] [--expected PATH] [--restarts K] [--crlf]\n"
    "                    [--quiet-rate R] [--version-rate R] [--spans on|off|some] [--long-rate R]\n"
    "  FORMAT: json | flat | text | ansi | journald | mixed (default json)\n";

std::optional<u64> parse_count(std::string_view s, bool allow_suffix) {
  u64 mult = 1;
  if (allow_suffix && !s.empty()) {
    switch (s.back()) {
      case 'k':
      case 'K': mult = 1ULL << 10; break;
      case 'm':
      case 'M': mult = 1ULL << 20; break;
      case 'g':
      case 'G': mult = 1ULL << 30; break;
      default: break;
    }
    if (mult != 1) s.remove_suffix(1);
  }
  u64 v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) return std::nullopt;
  if (v > ~u64{0} / mult) return std::nullopt;
  return v * mult;
}

std::optional<double> parse_rate(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= 0.0 && v <= 1.0)) return std::nullopt;
  return v;
}

// Returns an error message, or nothing when cfg is complete and valid.
std::optional<std::string> parse_args(int argc, char** argv, Config& cfg) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--crlf") {
      cfg.crlf = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") return std::string();
    if (i + 1 >= argc) return "missing value for " + std::string(arg);
    const std::string value = argv[++i];
    if (arg == "--format") {
      static constexpr std::pair<std::string_view, Format> kFormats[] = {
          {"json", Format::Json}, {"flat", Format::Flat},         {"text", Format::Text},
          {"ansi", Format::Ansi}, {"journald", Format::Journald}, {"mixed", Format::Mixed},
      };
      const auto* it = std::find_if(std::begin(kFormats), std::end(kFormats),
                                    [&](const auto& f) { return f.first == value; });
      if (it == std::end(kFormats)) return "unknown format: " + value;
      cfg.format = it->second;
    } else if (arg == "--bytes") {
      cfg.max_bytes = parse_count(value, true);
      if (!cfg.max_bytes) return "bad --bytes: " + value;
    } else if (arg == "--lines") {
      cfg.max_lines = parse_count(value, false);
      if (!cfg.max_lines) return "bad --lines: " + value;
    } else if (arg == "--seed") {
      const auto seed = parse_count(value, false);
      if (!seed) return "bad --seed: " + value;
      cfg.seed = *seed;
    } else if (arg == "--event-rate") {
      const auto rate = parse_rate(value);
      if (!rate) return "bad --event-rate (want 0..1): " + value;
      cfg.event_rate = *rate;
    } else if (arg == "--restarts") {
      const auto k = parse_count(value, false);
      if (!k || *k > 1000) return "bad --restarts: " + value;
      cfg.restarts = static_cast<unsigned>(*k);
    } else if (arg == "--quiet-rate" || arg == "--version-rate" || arg == "--long-rate") {
      const auto rate = parse_rate(value);
      if (!rate) return "bad " + std::string(arg) + " (want 0..1): " + value;
      (arg == "--quiet-rate" ? cfg.quiet_rate : arg == "--version-rate" ? cfg.version_rate : cfg.long_rate) = *rate;
    } else if (arg == "--spans") {
      if (value == "on") cfg.spans = Config::Spans::On;
      else if (value == "off") cfg.spans = Config::Spans::Off;
      else if (value == "some") cfg.spans = Config::Spans::Some;
      else return "bad --spans (want on, off or some): " + value;
    } else if (arg == "--out") {
      cfg.out_path = value;
    } else if (arg == "--expected") {
      cfg.expected_path = value;
    } else {
      return "unknown option: " + std::string(arg);
    }
  }
  if (cfg.out_path.empty()) return std::string("--out is required");
  if (cfg.event_rate + cfg.quiet_rate.value_or(0) + cfg.version_rate.value_or(0) + cfg.long_rate.value_or(0) > 1.0) {
    return std::string("--event-rate, --quiet-rate, --version-rate and --long-rate add up to more than 1");
  }
  if (cfg.max_bytes.has_value() == cfg.max_lines.has_value()) {
    return std::string("give exactly one of --bytes and --lines");
  }
  return std::nullopt;
}

bool write_file(const std::string& path, std::string_view data) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(data.data(), 1, data.size(), f) == data.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (const auto err = parse_args(argc, argv, cfg)) {
    if (err->empty()) {  // --help
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    std::fprintf(stderr, "nle_gen_logs: %s\n%s", err->c_str(), kUsage.data());
    return 2;
  }

  const auto started = std::chrono::steady_clock::now();
  const bool to_stdout = cfg.out_path == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(cfg.out_path.c_str(), "wb");
  if (out == nullptr) {
    std::fprintf(stderr, "nle_gen_logs: cannot open %s: %s\n", cfg.out_path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  std::setvbuf(out, nullptr, _IONBF, 0);  // we write 4 MiB blocks ourselves

  Generator gen(cfg, out);
  bool ok = gen.run();
  ok = (to_stdout ? std::fflush(out) == 0 : std::fclose(out) == 0) && ok;
  if (!ok) {
    std::fprintf(stderr, "nle_gen_logs: write to %s failed\n", cfg.out_path.c_str());
    return 1;
  }

  const Tally& t = gen.tally();
  if (!cfg.expected_path.empty() && !write_file(cfg.expected_path, render_expected(t))) {
    std::fprintf(stderr, "nle_gen_logs: cannot write %s\n", cfg.expected_path.c_str());
    return 1;
  }

  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr,
               "nle_gen_logs: lines=%llu bytes=%llu compliance_failure=%llu (%zu series) "
               "runtime_gate_error=%llu gate_block=%llu build_info=%s/%.12s in %.2fs (%.0f MB/s)\n",
               static_cast<unsigned long long>(t.lines), static_cast<unsigned long long>(t.bytes),
               static_cast<unsigned long long>(t.compliance_total), t.compliance.size(),
               static_cast<unsigned long long>(t.runtime_gate_errors),
               static_cast<unsigned long long>(t.gate_total), t.version.c_str(),
               t.git_commit.c_str(), secs,
               secs > 0 ? static_cast<double>(t.bytes) / 1e6 / secs : 0.0);
  return 0;
}
