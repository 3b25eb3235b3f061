// Parser rules, one case each: every shape of LOG-FORMAT.md, and every trap it warns about.
#include <catch2/catch.hpp>
#include <simdjson.h>

#include <cstdint>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "parsers/line_parser.h"
#include "parsers/shapes.h"
#include "parsers/timestamp.h"

using nle::EventKind;
using nle::InputFormat;
using nle::LineParser;
using nle::SkipReason;

namespace {

// xorshift64: the same generated lines every run, on every platform.
struct Xorshift64 {
  std::uint64_t state;
  std::size_t below(std::size_t n) {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return static_cast<std::size_t>(state % n);
  }
};

// A parsed event copied out of the parser's scratch space.
struct Seen {
  EventKind kind;
  std::string control_id;
  std::string host;
  std::string gate;
};

void collect(const nle::ParseResult& result, std::vector<Seen>& seen) {
  for (const nle::Event& e : result.events) {
    seen.push_back({e.kind, std::string(e.control_id), std::string(e.host), std::string(e.gate)});
  }
}

// Every event of these lines as one input: each line, then the end of input.
std::vector<Seen> events_of_lines(LineParser& parser, std::initializer_list<std::string_view> lines) {
  std::vector<Seen> seen;
  for (std::string_view line : lines) collect(parser.parse(line), seen);
  collect(parser.finish(), seen);
  return seen;
}

std::vector<Seen> events_of(LineParser& parser, std::string_view line) { return events_of_lines(parser, {line}); }

std::vector<Seen> events_of(std::string_view line, InputFormat format = InputFormat::auto_detect) {
  LineParser parser(format);
  return events_of(parser, line);
}

std::optional<SkipReason> skip_of(std::string_view line, InputFormat format = InputFormat::auto_detect) {
  LineParser parser(format);
  if (auto skipped = parser.parse(line).skipped) return skipped;
  return parser.finish().skipped;
}

// The byte-array form journald uses for a MESSAGE that is not printable UTF-8.
std::string byte_array(std::string_view bytes) {
  std::string out = "[";
  for (unsigned char c : bytes) {
    if (out.size() > 1) out += ',';
    out += std::to_string(c);
  }
  return out + "]";
}

// A JSON string literal for `text`.
std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

const std::string kJsonFailure =
    R"J({"timestamp":"2026-11-20T08:14:03.511203Z","level":"INFO","fields":{"message":"report received","hostname":"web-07","event":"compliance-failure","control_id":"CIS-5.2.1","rollout":"stable@91c2e0","agent_version":"0.9.1","event_id":"3b0f","signature_status":"Some(Verified)"},"target":"report"})J";
const std::string kTextFailure =
    "2026-11-20T08:14:03.511203Z  INFO report: report received hostname=web-07 event=compliance-failure "
    "control_id=CIS-5.2.1 rollout=stable@91c2e0 agent_version=0.9.1 event_id=3b0f... signature_status=Some(Verified)";
// The same line as tracing-subscriber colours it.
const std::string kAnsiFailure =
    "\x1b[2m2026-11-20T08:14:03.511203Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mreport\x1b[0m\x1b[2m:\x1b[0m report received "
    "\x1b[3mhostname\x1b[0m\x1b[2m=\x1b[0mweb-07 \x1b[3mevent\x1b[0m\x1b[2m=\x1b[0mcompliance-failure "
    "\x1b[3mcontrol_id\x1b[0m\x1b[2m=\x1b[0mCIS-5.2.1 \x1b[3mrollout\x1b[0m\x1b[2m=\x1b[0mstable@91c2e0";

void require_failure(const std::vector<Seen>& seen, std::string_view control_id, std::string_view host) {
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].kind == EventKind::compliance_failure);
  CHECK(seen[0].control_id == control_id);
  CHECK(seen[0].host == host);
}

}  // namespace

TEST_CASE("nested tracing JSON compliance failure counts with its control and host") {
  require_failure(events_of(kJsonFailure), "CIS-5.2.1", "web-07");
}

TEST_CASE("flattened tracing JSON is read from the top level") {
  require_failure(
      events_of(R"J({"timestamp":"t","level":"INFO","message":"report received","hostname":"db-1","event":"compliance-failure","control_id":"C1","target":"report"})J"),
      "C1", "db-1");
}

TEST_CASE("plain text compliance failure counts") { require_failure(events_of(kTextFailure), "CIS-5.2.1", "web-07"); }

TEST_CASE("ANSI-coloured text counts like plain text") { require_failure(events_of(kAnsiFailure), "CIS-5.2.1", "web-07"); }

TEST_CASE("runtime gate error counts in every shape") {
  for (const std::string& line :
       {std::string(R"J({"fields":{"message":"report received","hostname":"h","event":"runtime-gate-error"}})J"),
        std::string(R"J({"message":"report received","event":"RuntimeGateError"})J"),
        std::string("2026-11-20T08:14:03Z ERROR report: report received hostname=h event=runtime-gate-error")}) {
    auto seen = events_of(line);
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].kind == EventKind::runtime_gate_error);
  }
}

TEST_CASE("the Rust variant name ComplianceFailure counts") {
  require_failure(events_of(R"J({"fields":{"message":"report received","hostname":"h","event":"ComplianceFailure","control_id":"C"}})J"),
                  "C", "h");
  require_failure(events_of("2026-11-20T08:14:03Z  INFO report: report received hostname=h event=ComplianceFailure control_id=C"),
                  "C", "h");
}

TEST_CASE("gate block counts under its gate, including a gate outside the known five") {
  auto seen = events_of(R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"host-edge"},"target":"dispatch"})J");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].kind == EventKind::gate_block);
  CHECK(seen[0].gate == "host-edge");
  seen = events_of("2026-11-20T08:14:03Z  INFO dispatch: dispatch: held by fleet-level gate gate=maintenance-window rollout=r");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].gate == "maintenance-window");
}

TEST_CASE("a text gate block inside spans finds the message after the target") {
  auto seen = events_of(
      "2026-11-20T08:14:03.511203Z  INFO dispatch{rollout=stable@91c2e0 gate=wave-promotion}:wave{n=2}: "
      "nixfleet_cp::dispatch: dispatch: held by fleet-level gate gate=compliance-wave rollout=stable@91c2e0");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].gate == "compliance-wave");
}

TEST_CASE("span fields in JSON never stand in for the event's own fields") {
  auto seen = events_of(
      R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"host-edge"},"span":{"gate":"wave-promotion","name":"dispatch"},"spans":[{"gate":"wave-promotion","name":"dispatch"}]})J");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].gate == "host-edge");
  CHECK(events_of(R"J({"fields":{"message":"report received","event":"activation-started"},"span":{"event":"compliance-failure"}})J").empty());
}

TEST_CASE("a compliance failure without control_id counts as unknown") {
  require_failure(events_of(R"J({"fields":{"message":"report received","hostname":"h","event":"compliance-failure"}})J"), "unknown", "h");
  require_failure(events_of("2026-11-20T08:14:03Z  INFO report: report received hostname=h event=compliance-failure"), "unknown", "h");
}

TEST_CASE("the agent's wire shape reads control_id from details") {
  require_failure(
      events_of(R"J({"fields":{"message":"report received","hostname":"h","event":"compliance-failure","details":{"control_id":"CIS-1.1","detail":"x"}}})J"),
      "CIS-1.1", "h");
  require_failure(
      events_of(R"J({"fields":{"message":"report received","hostname":"h","event":"compliance-failure","details":"{\"control_id\":\"CIS-1.2\"}"}})J"),
      "CIS-1.2", "h");
  require_failure(
      events_of(R"J(2026-11-20T08:14:03Z  INFO report: report received hostname=h event=compliance-failure details={"control_id":"CIS 1.3","note":"a b=c"})J"),
      "CIS 1.3", "h");
}

TEST_CASE("a whole report logged as one field counts from its event") {
  require_failure(
      events_of(R"J({"fields":{"message":"report received","hostname":"h","report":{"event":"compliance-failure","details":{"control_id":"C9"}}}})J"),
      "C9", "h");
  require_failure(
      events_of(R"J(2026-11-20T08:14:03Z  INFO report: report received hostname=h report={"event":"compliance-failure","details":{"control_id":"C8"}})J"),
      "C8", "h");
}

TEST_CASE("other report received event values do not count") {
  for (const char* value : {"activation-started", "realise-failed", "stale-target", "trust-error", "compliance-failure-ish", ""}) {
    CHECK(events_of(std::string(R"J({"fields":{"message":"report received","event":")J") + value + R"J("}})J").empty());
  }
}

TEST_CASE("report rejected warnings do not count even with event=compliance-failure") {
  CHECK(events_of(R"J({"fields":{"message":"report rejected: bad signature","hostname":"h","event":"compliance-failure"}})J").empty());
  CHECK(events_of("2026-11-20T08:14:03Z  WARN report: report rejected: bad signature hostname=h event=compliance-failure").empty());
}

TEST_CASE("a longer message that starts with an event message does not count") {
  CHECK(events_of("2026-11-20T08:14:03Z  WARN report: report received twice, dropping duplicate hostname=h event=compliance-failure").empty());
  CHECK(events_of("2026-11-20T08:14:03Z  WARN report: report received from unknown host hostname=h event=compliance-failure").empty());
  CHECK(events_of(R"J({"fields":{"message":"report received twice, dropping duplicate","event":"compliance-failure"}})J").empty());
}

TEST_CASE("free text mentioning event names does not count") {
  CHECK(events_of(R"J({"fields":{"message":"dispatch failed","error":"report received event=compliance-failure; dispatch: held by fleet-level gate gate=host-edge"}})J").empty());
  CHECK(events_of("2026-11-20T08:14:03Z ERROR dispatch: dispatch failed error=report received hostname=h event=compliance-failure").empty());
  // The decoy sits in a later field of a real report line: the line's own event wins.
  CHECK(events_of("2026-11-20T08:14:03Z  INFO report: report received hostname=h event=activation-started error=prior event=compliance-failure").empty());
}

TEST_CASE("a text record is held until the next line shows it is complete") {
  LineParser parser;
  CHECK(parser.parse(kTextFailure).events.empty());
  CHECK(parser.holds_record());
  const auto& completed = parser.parse(kTextFailure);  // the next record completes the first
  CHECK(completed.events.size() == 1);
  CHECK(parser.finish().events.size() == 1);
  CHECK_FALSE(parser.holds_record());
}

TEST_CASE("events of a completed record survive the next record being held") {
  LineParser parser;
  auto entry = [](std::string_view host) {
    return R"J({"__CURSOR":"c","MESSAGE":[)J" + json_string("2026-11-20T08:14:05Z  INFO report: report received hostname=" + std::string(host) +
                                                            " event=compliance-failure control_id=C") + "]}";
  };
  parser.parse(entry("first-host"));
  const auto& result = parser.parse(entry("other"));  // completes the first, holds the second
  REQUIRE(result.events.size() == 1);
  CHECK(result.events[0].host == "first-host");
}

TEST_CASE("fields after a multi-line value count from its continuation lines") {
  LineParser parser;
  auto seen = events_of_lines(parser, {"2026-11-20T08:14:05Z  INFO report: report received hostname=web-16 summary=3 checks failed:",
                                       "- PermitRootLogin yes",
                                       "- MaxAuthTries 10 event=compliance-failure control_id=CIS-4.1 rollout=r",
                                       "2026-11-20T08:14:06Z  INFO http: request done status=200"});
  require_failure(seen, "CIS-4.1", "web-16");
}

TEST_CASE("a multi-line record split over journald entries is joined") {
  LineParser parser;
  auto entry = [](std::string_view message) { return R"J({"__CURSOR":"c","MESSAGE":)J" + json_string(message) + "}"; };
  const std::string first = entry("2026-11-20T08:14:05Z  INFO report: report received hostname=web-16 summary=failed:");
  const std::string second = entry("- MaxAuthTries 10 event=compliance-failure control_id=CIS-4.1");
  const std::string next = entry("2026-11-20T08:14:06Z  INFO http: request done status=200");
  require_failure(events_of_lines(parser, {first, second, next}), "CIS-4.1", "web-16");
}

TEST_CASE("an event message inside a field's free text is not the line's message") {
  CHECK(events_of("2026-11-20T08:14:03Z  WARN dispatch: dispatch: gate evaluation failed gate=disruption-budget "
                  "error=budget query failed: dispatch: held by fleet-level gate gate=disruption-budget")
            .empty());
  CHECK(events_of("2026-11-20T08:14:03Z  WARN dispatch: evaluation failed error=x: report received hostname=h event=compliance-failure").empty());
}

TEST_CASE("a field the exporter does not know still ends the value before it") {
  require_failure(events_of("2026-11-20T08:14:03Z  INFO report: report received hostname=web-16 region=eu event=compliance-failure "
                            "control_id=CIS-4.1 zone=a"),
                  "CIS-4.1", "web-16");
}

TEST_CASE("Debug-quoted strings in JSON are decoded like the same value in text") {
  require_failure(events_of(R"J({"fields":{"message":"report received","hostname":"\"db\\\"1\"","event":"compliance-failure","control_id":"\"CIS-1\""}})J"),
                  "CIS-1", "db\"1");
  auto seen = events_of(R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"\"disruption-budget\""}})J");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].gate == "disruption-budget");
  require_failure(events_of(R"J({"fields":{"message":"report received","hostname":"say \"hi\"","event":"compliance-failure"}})J"),
                  "unknown", "say \"hi\"");
}

TEST_CASE("journalctl's elided MESSAGE is counted as skipped") {
  CHECK(skip_of(R"J({"__CURSOR":"c","MESSAGE":null})J") == SkipReason::message_elided);
}

TEST_CASE("a continuation line of a multi-line message never counts") {
  CHECK(events_of("    report received hostname=h event=compliance-failure control_id=C").empty());
  CHECK(events_of("caused by: report received hostname=h event=compliance-failure").empty());
}

TEST_CASE("Display values keep their spaces up to the next known field") {
  require_failure(
      events_of("2026-11-20T08:14:03Z  INFO report: report received hostname=rack 4 node 7 event=compliance-failure control_id=CIS 5.2.1 (MaxAuthTries=4) rollout=r"),
      "CIS 5.2.1 (MaxAuthTries=4)", "rack 4 node 7");
}

TEST_CASE("Debug-quoted values are decoded with Rust escapes") {
  require_failure(
      events_of(R"J(2026-11-20T08:14:03Z  INFO report: report received hostname="db \"1\" back\\slash w\u{e9}b" event="compliance-failure" control_id="C event=x")J"),
      "C event=x", "db \"1\" back\\slash w\xc3\xa9" "b");
}

TEST_CASE("JSON escapes, surrogate pairs included, are decoded exactly") {
  require_failure(
      events_of(R"J({"fields":{"message":"report received","hostname":"w\u00e9b-\ud83d\ude00 \"q\" \\ \n","event":"compliance-failure","control_id":"C"}})J"),
      "C", "w\xc3\xa9" "b-\xf0\x9f\x98\x80 \"q\" \\ \n");
}

TEST_CASE("journald JSON with a string MESSAGE reads the CP line inside") {
  LineParser parser;
  const std::string record = R"J({"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1","_SYSTEMD_UNIT":"nixfleet-control-plane.service","MESSAGE":)J" +
                             json_string(kTextFailure) + R"J(,"PRIORITY":"6"})J";
  CHECK(parser.parse(record).journal_cursor == "s=1;i=2");
  const auto& result = parser.finish();
  REQUIRE(result.events.size() == 1);
  CHECK(result.events[0].control_id == "CIS-5.2.1");
}

TEST_CASE("journald JSON with a byte-array MESSAGE decodes the coloured line") {
  require_failure(events_of(R"J({"__CURSOR":"c","MESSAGE":)J" + byte_array(kAnsiFailure) + "}"), "CIS-5.2.1", "web-07");
}

TEST_CASE("journald JSON carrying a tracing JSON line counts it") {
  require_failure(events_of(R"J({"__CURSOR":"c","MESSAGE":)J" + json_string(kJsonFailure) + "}"), "CIS-5.2.1", "web-07");
}

TEST_CASE("a journald field that occurs twice is an array of values, each read") {
  auto seen = events_of(R"J({"__CURSOR":"c","MESSAGE":[)J" + json_string(kTextFailure) + "," + byte_array(kAnsiFailure) + "]}");
  CHECK(seen.size() == 2);
}

TEST_CASE("json-seq records lead with a record separator") {
  require_failure(events_of("\x1e" R"J({"__CURSOR":"c","MESSAGE":)J" + json_string(kTextFailure) + "}"), "CIS-5.2.1", "web-07");
}

TEST_CASE("a journalctl -o short syslog prefix is passed over") {
  require_failure(events_of("Nov 20 08:14:03 cp-1 nixfleet-control-plane[812]: " + kTextFailure), "CIS-5.2.1", "web-07");
}

TEST_CASE("a line without timestamp, as journald stores it with time disabled, still counts") {
  require_failure(events_of(" INFO report: report received hostname=h event=compliance-failure control_id=C"), "C", "h");
}

TEST_CASE("build info comes from a startup line's version and git_commit fields") {
  LineParser parser;
  const auto& json = parser.parse(R"J({"fields":{"message":"starting control plane","version":"0.9.3","git_commit":"abc123"}})J");
  REQUIRE(json.build_info);
  CHECK(json.build_info->version == "0.9.3");
  CHECK(json.build_info->git_commit == "abc123");
  parser.parse("2026-11-20T08:14:03Z  INFO nixfleet_cp: starting control plane version=0.9.4 git_commit=def456");
  const auto& text = parser.finish();
  REQUIRE(text.build_info);
  CHECK(text.build_info->version == "0.9.4");
  CHECK(text.build_info->git_commit == "def456");
}

TEST_CASE("build info is read from a coloured startup line") {
  LineParser parser;
  parser.parse(
      "\x1b[2m2026-11-20T08:14:03Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mnixfleet_cp\x1b[0m\x1b[2m:\x1b[0m starting "
      "\x1b[3mversion\x1b[0m\x1b[2m=\x1b[0m1.0.0 \x1b[3mgit_commit\x1b[0m\x1b[2m=\x1b[0mc0ffee1");
  const auto& result = parser.finish();
  REQUIRE(result.build_info);
  CHECK(result.build_info->version == "1.0.0");
  CHECK(result.build_info->git_commit == "c0ffee1");
}

TEST_CASE("agent_version is not the CP's version") {
  CHECK_FALSE(LineParser().parse(kJsonFailure).build_info);
  LineParser text_parser;
  text_parser.parse(kTextFailure);
  CHECK_FALSE(text_parser.finish().build_info);
}

TEST_CASE("truncated JSON is skipped as invalid_json") {
  CHECK(skip_of(kJsonFailure.substr(0, kJsonFailure.size() - 10)) == SkipReason::invalid_json);
  CHECK(events_of(kJsonFailure.substr(0, kJsonFailure.size() - 2)).empty());
}

TEST_CASE("trailing garbage after a JSON object is invalid_json") {
  CHECK(skip_of(kJsonFailure + " trailing") == SkipReason::invalid_json);
}

TEST_CASE("JSON that is not UTF-8 is skipped as invalid_utf8") {
  std::string bad = kJsonFailure;
  bad.replace(bad.find("web-07"), 3, "w\xff\xfe");
  CHECK(skip_of(bad) == SkipReason::invalid_utf8);
}

TEST_CASE("a NUL byte inside a line skips it, leading NULs of a crash do not") {
  std::string with_nul = kTextFailure;
  with_nul[30] = '\0';
  CHECK(skip_of(with_nul) == SkipReason::nul_byte);
  require_failure(events_of(std::string("\0\0\0", 3) + kJsonFailure), "CIS-5.2.1", "web-07");
}

TEST_CASE("text that is not UTF-8 still counts with its bytes as labels") {
  auto seen = events_of("2026-11-20T08:14:03Z  INFO report: report received hostname=h\xe9 event=compliance-failure control_id=C");
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].host == "h\xe9");
}

TEST_CASE("a mention of an event message in no known shape is unrecognised") {
  CHECK(skip_of("report received hostname=h event=compliance-failure") == SkipReason::unrecognised);
  CHECK_FALSE(skip_of("just some line"));
}

TEST_CASE("a forced format reads only its shape") {
  CHECK(events_of(kTextFailure, InputFormat::json).empty());
  CHECK(skip_of(kTextFailure, InputFormat::json) == SkipReason::unrecognised);
  CHECK(events_of(kJsonFailure, InputFormat::text).empty());
  CHECK(events_of(kJsonFailure, InputFormat::journald).empty());
  CHECK(events_of(kJsonFailure, InputFormat::json).size() == 1);
  CHECK(events_of(kAnsiFailure, InputFormat::text).size() == 1);
  CHECK(events_of(R"J({"__CURSOR":"c","MESSAGE":)J" + json_string(kTextFailure) + "}", InputFormat::journald).size() == 1);
  CHECK(events_of(R"J({"__CURSOR":"c","MESSAGE":)J" + json_string(kTextFailure) + "}", InputFormat::json).empty());
}

TEST_CASE("parse_input_format knows the four names") {
  CHECK(nle::parse_input_format("auto") == InputFormat::auto_detect);
  CHECK(nle::parse_input_format("journald") == InputFormat::journald);
  CHECK_FALSE(nle::parse_input_format("yaml"));
}

TEST_CASE("may_be_relevant admits every event line and rejects noise") {
  CHECK(nle::may_be_relevant(kJsonFailure));
  CHECK(nle::may_be_relevant(kAnsiFailure));
  CHECK(nle::may_be_relevant(R"J({"MESSAGE":)J" + byte_array(kAnsiFailure) + "}"));
  CHECK(nle::may_be_relevant(R"J({"fields":{"message":"starting","version":"1"}})J"));
  CHECK_FALSE(nle::may_be_relevant(R"J({"fields":{"message":"http request","path":"/x","agent_version":"1"}})J"));
  CHECK_FALSE(nle::may_be_relevant(R"J({"MESSAGE":)J" + byte_array("\x1b[2mnoise\x1b[0m") + "}"));
}

TEST_CASE("a tracing JSON report is relevant only when it spells a counting event value") {
  const std::string head = R"J({"timestamp":"2026-11-20T08:14:03Z","level":"INFO","fields":{"message":"report received",)J";
  CHECK(nle::may_be_relevant(head + R"J("hostname":"h","event":"compliance-failure"}})J"));
  CHECK(nle::may_be_relevant(head + R"J("hostname":"h","event":"RuntimeGateError"}})J"));
  CHECK_FALSE(nle::may_be_relevant(head + R"J("hostname":"h","event":"activation-started","agent_version":"0.9.1"}})J"));
  // Garbled but of a kind that never counts: not read, so not counted as skipped either.
  CHECK_FALSE(nle::may_be_relevant(head + R"J("event":stale-target}})J"));
  LineParser parser;
  CHECK(parser.parse(head + R"J("event":stale-target}})J").skipped == std::nullopt);
  CHECK(parser.parse(head + R"J("event":compliance-failure}})J").skipped == nle::SkipReason::invalid_json);
  // Flattened the same.
  CHECK_FALSE(nle::may_be_relevant(R"J({"level":"INFO","message":"report received","event":"stale-target"})J"));
  // Text keeps every report: its fields may go on in the record's next lines.
  CHECK(nle::may_be_relevant("2026-11-20T08:14:03Z  INFO report: report received hostname=h summary=two lines:"));
  // journald's escaped JSON the same (the MESSAGE is tested again once decoded).
  CHECK_FALSE(nle::may_be_relevant(R"J({"MESSAGE":"{\"fields\":{\"message\":\"report received\",\"event\":\"x\"}}"})J"));
  CHECK(nle::may_be_relevant(
      R"J({"MESSAGE":"{\"fields\":{\"message\":\"report received\",\"event\":\"compliance-failure\"}}"})J"));
}

TEST_CASE("a request's protocol version is not the control plane's") {
  const std::string spans = R"J(,"span":{"method":"GET","uri":"/v1/x","version":"HTTP/1.1","name":"request"}})J";
  CHECK_FALSE(nle::may_be_relevant(R"J({"fields":{"message":"finished processing request","latency":"3 ms"})J" + spans));
  CHECK_FALSE(nle::may_be_relevant("2026-11-20T08:14:03Z  INFO request{method=GET uri=/v1/x version=HTTP/1.1}: "
                                   "tower_http::trace::on_response: finished processing request latency=3 ms"));
  CHECK_FALSE(nle::may_be_relevant("\x1b[2m2026-11-20T08:14:03Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[1mrequest\x1b[0m{\x1b[3mversion"
                                   "\x1b[0m\x1b[2m=\x1b[0mHTTP/2.0}: finished"));
  CHECK_FALSE(nle::may_be_relevant(R"J({"MESSAGE":"{\"span\":{\"version\":\"HTTP/1.1\"}}"})J"));
  // journald's byte arrays (coloured lines) alike, compact or spaced.
  CHECK_FALSE(nle::may_be_relevant(R"J({"MESSAGE":)J" +
                                   byte_array("\x1b[2mT\x1b[0m request{\x1b[3mversion\x1b[0m\x1b[2m=\x1b[0mHTTP/1.1}: done") + "}"));
  CHECK_FALSE(nle::may_be_relevant(R"J({"MESSAGE":)J" + byte_array("\x1b[3magent_version\x1b[0m=0.9.1") + "}"));
  CHECK(nle::may_be_relevant(R"J({"MESSAGE":)J" + byte_array("\x1b[2mT\x1b[0m starting \x1b[3mversion\x1b[0m\x1b[2m=\x1b[0m0.9.3") + "}"));
  CHECK_FALSE(nle::may_be_relevant(R"J({"MESSAGE":[118, 101, 114, 115, 105, 111, 110, 61, 72, 84, 84, 80, 47, 49]})J"));
  CHECK(nle::may_be_relevant(R"J({"MESSAGE":[118, 101, 114, 115, 105, 111, 110, 61, 48, 46, 57]})J"));
  CHECK(nle::may_be_relevant(R"J({"fields":{"message":"starting control plane","version":"0.9.3"})J" + spans));
  CHECK(nle::may_be_relevant("2026-11-20T08:14:03Z  INFO nixfleet: starting control plane version=0.9.3 git_commit=a"));
  // An event-level `version` that says HTTP is no build info, on a line read for another reason too.
  LineParser parser;
  const auto& result = parser.parse(R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"quarantine",)J"
                                    R"J("version":"HTTP/1.1"}})J");
  CHECK(result.events.size() == 1);
  CHECK_FALSE(result.build_info.has_value());
}

TEST_CASE("one parser reads many lines, views valid until the next parse") {
  LineParser parser;
  for (int i = 0; i < 1000; ++i) {
    const std::string host = "host-" + std::to_string(i);
    auto seen = events_of(parser, R"J({"fields":{"message":"report received","hostname":")J" + host + R"J(","event":"compliance-failure"}})J");
    REQUIRE(seen.size() == 1);
    REQUIRE(seen[0].host == host);
  }
}

TEST_CASE("the journald cursor is found on any record without a parse") {
  CHECK(nle::find_journal_cursor(R"J({"__CURSOR":"s=0e7f;i=1a","MESSAGE":"noise"})J") == "s=0e7f;i=1a");
  CHECK(nle::find_journal_cursor(R"J({ "__CURSOR" : "s=1;i=2", "MESSAGE" : "x" })J") == "s=1;i=2");
  CHECK(nle::find_journal_cursor("plain text line").empty());
  CHECK(nle::find_journal_cursor(R"J({"__CURSOR":"unterminated)J").empty());
}

// ---------------------------------------------------------------------------------------------
// When a line was logged (replay --step)

namespace {
constexpr nle::LogTimeMicros kLoggedAt = 1795162443511203;  // 2026-11-20T08:14:03.511203Z
}

TEST_CASE("tracing JSON gives its timestamp member, nested or flattened") {
  CHECK(nle::line_timestamp(kJsonFailure) == kLoggedAt);
  CHECK(nle::line_timestamp(R"({"level":"INFO","timestamp":"2026-11-20T08:14:03.511203Z","message":"x"})") == kLoggedAt);
}

TEST_CASE("journald JSON gives __REALTIME_TIMESTAMP, not the time inside MESSAGE") {
  const std::string record =
      R"({"__REALTIME_TIMESTAMP":"1795162443511353","MESSAGE":"{\"timestamp\":\"2020-01-01T00:00:00Z\"}"})";
  CHECK(nle::line_timestamp(record) == 1795162443511353);
  CHECK(nle::line_timestamp("\x1e" + record) == 1795162443511353);  // -o json-seq
  // A MESSAGE holding the CP's JSON, escaped, is no "timestamp" member of the record.
  CHECK_FALSE(nle::line_timestamp(R"({"MESSAGE":"{\"timestamp\":\"2026-11-20T08:14:03Z\"}"})"));
}

TEST_CASE("text gives the RFC 3339 time it starts with, coloured or not") {
  CHECK(nle::line_timestamp(kTextFailure) == kLoggedAt);
  CHECK(nle::line_timestamp(kAnsiFailure) == kLoggedAt);
}

TEST_CASE("behind journalctl -o short's prefix the CP line's own time counts") {
  CHECK(nle::line_timestamp("Nov 20 08:14:03 cp-01 nixfleet-control-plane[1187]: 2026-11-20T08:14:03.511203Z  INFO "
                            "report: report received") == kLoggedAt);
  CHECK(nle::line_timestamp("Nov 20 08:14:03 cp-01 nixfleet-control-plane[1187]: \x1b[2m2026-11-20T08:14:03.511203Z"
                            "\x1b[0m \x1b[32m INFO\x1b[0m x") == kLoggedAt);
  // The prefix alone has no year: no time rather than a guessed one.
  CHECK_FALSE(nle::line_timestamp("Nov 20 08:14:03 cp-01 nixfleet-control-plane[1187]: INFO report: report received"));
  // -o short-iso begins with a time of its own.
  CHECK(nle::line_timestamp("2026-11-20T08:14:03+0000 cp-01 nixfleet-control-plane[1187]: x") == kLoggedAt - 511203);
}

TEST_CASE("RFC 3339 offsets, fractions and dates are read exactly") {
  CHECK(nle::parse_rfc3339_prefix("2026-11-20T09:14:03.511203+01:00") == kLoggedAt);
  CHECK(nle::parse_rfc3339_prefix("2026-11-20T03:14:03.511203-0500") == kLoggedAt);
  CHECK(nle::parse_rfc3339_prefix("2026-11-20 08:14:03.511203Z") == kLoggedAt);
  CHECK(nle::parse_rfc3339_prefix("2026-11-20T08:14:03.5112039Z") == kLoggedAt);  // past microseconds: dropped
  CHECK(nle::parse_rfc3339_prefix("2026-11-20T08:14:03.5Z") == kLoggedAt - 11203);
  CHECK(nle::parse_rfc3339_prefix("2024-02-29T00:00:00Z") == 1709164800LL * 1000000);  // leap day
  CHECK(nle::parse_rfc3339_prefix("1969-12-31T23:59:59Z") == -1000000);
  // The last date read is remembered: one date, another, the first again, and a bad time on a
  // remembered date, each read as if alone.
  CHECK(nle::parse_rfc3339_prefix("2026-11-20T08:14:03.511203Z") == kLoggedAt);
  CHECK(nle::parse_rfc3339_prefix("2024-02-29T00:00:00Z") == 1709164800LL * 1000000);
  CHECK(nle::parse_rfc3339_prefix("2026-11-20T08:14:03.511203Z") == kLoggedAt);
  CHECK_FALSE(nle::parse_rfc3339_prefix("2026-11-20T25:14:03Z"));
  CHECK_FALSE(nle::parse_rfc3339_prefix("2026-11-20"));
  CHECK(nle::parse_rfc3339_prefix("2026-11-21T08:14:03.511203Z") == kLoggedAt + 86400LL * 1000000);
}

TEST_CASE("lines without a time give none") {
  CHECK_FALSE(nle::line_timestamp(""));
  CHECK_FALSE(nle::line_timestamp("    at continuation of a multi-line value"));
  CHECK_FALSE(nle::line_timestamp("2026-11-20T08:14:03Zebra"));
  CHECK_FALSE(nle::line_timestamp("2026-13-20T08:14:03Z"));
  CHECK_FALSE(nle::line_timestamp("2026-11-20T08:14"));
  CHECK_FALSE(nle::line_timestamp(R"({"timestamp":"yesterday"})"));
  CHECK_FALSE(nle::line_timestamp(R"({"__REALTIME_TIMESTAMP":"12x"})"));
}

// ---------------------------------------------------------------------------------------------
// Exemplar inputs: event_id, a gate block's host, and the event's log time

namespace {

// What names an event for an exemplar, copied out of the parser's scratch space.
struct Named {
  EventKind kind;
  std::string event_id;
  std::string host;
  std::optional<std::int64_t> log_time_micros;
  bool operator==(const Named&) const = default;
};

std::vector<Named> named_of_lines(std::initializer_list<std::string_view> lines,
                                  InputFormat format = InputFormat::auto_detect) {
  LineParser parser(format);
  std::vector<Named> named;
  const auto collect_named = [&](const nle::ParseResult& result) {
    for (const nle::Event& e : result.events) {
      named.push_back({e.kind, std::string(e.event_id), std::string(e.host), e.log_time_micros});
    }
  };
  for (std::string_view line : lines) collect_named(parser.parse(line));
  collect_named(parser.finish());
  return named;
}

std::vector<Named> named_of(std::string_view line) { return named_of_lines({line}); }

constexpr std::int64_t k081403 = 1795162443511203;  // 2026-11-20T08:14:03.511203Z
const std::string kNamedText =
    "2026-11-20T08:14:03.511203Z  INFO report: report received hostname=web-07 event=compliance-failure "
    "control_id=CIS-5.2.1 event_id=3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44 signature_status=Some(Verified)";

}  // namespace

TEST_CASE("a report's event_id and log time are read in every shape, identically") {
  const Named expected{EventKind::compliance_failure, "3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44", "web-07", k081403};
  const std::string nested =
      R"J({"timestamp":"2026-11-20T08:14:03.511203Z","level":"INFO","fields":{"message":"report received","hostname":"web-07","event":"compliance-failure","control_id":"CIS-5.2.1","event_id":"3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44"},"target":"report"})J";
  const std::string flattened =
      R"J({"timestamp":"2026-11-20T08:14:03.511203Z","level":"INFO","message":"report received","hostname":"web-07","event":"compliance-failure","control_id":"CIS-5.2.1","event_id":"3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44","target":"report"})J";
  const std::string ansi =
      "\x1b[2m2026-11-20T08:14:03.511203Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mreport\x1b[0m\x1b[2m:\x1b[0m report received "
      "\x1b[3mhostname\x1b[0m\x1b[2m=\x1b[0mweb-07 \x1b[3mevent\x1b[0m\x1b[2m=\x1b[0mcompliance-failure "
      "\x1b[3mevent_id\x1b[0m\x1b[2m=\x1b[0m3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44 \x1b[3mcontrol_id\x1b[0m\x1b[2m=\x1b[0mCIS-5.2.1";
  const std::string debug_quoted =
      "2026-11-20T08:14:03.511203Z  INFO report: report received hostname=web-07 event=compliance-failure "
      "event_id=\"3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44\" control_id=CIS-5.2.1";
  const std::string journald_record =  // the CP line's own time wins over the record's
      R"J({"__CURSOR":"c","__REALTIME_TIMESTAMP":"1795162443999999","MESSAGE":)J" + json_string(kNamedText) + "}";
  for (const std::string& line : {nested, flattened, kNamedText, ansi, debug_quoted, journald_record,
                                  "Nov 20 08:14:03 cp-1 nixfleet-control-plane[812]: " + kNamedText}) {
    INFO(line);
    CHECK(named_of(line) == std::vector<Named>{expected});
  }
}

TEST_CASE("a report without event_id names nothing; its runtime gate error and wire shapes do") {
  CHECK(named_of("2026-11-20T08:14:03Z  INFO report: report received hostname=h event=compliance-failure control_id=C")
            .at(0)
            .event_id.empty());
  CHECK(named_of(R"J({"fields":{"message":"report received","event":"runtime-gate-error","event_id":"rge-7"}})J").at(0) ==
        Named{EventKind::runtime_gate_error, "rge-7", "", std::nullopt});
  // A whole report logged as one field: its own event_id, where the line has none.
  CHECK(named_of(R"J({"fields":{"message":"report received","report":"{\"event\":\"compliance-failure\",\"hostname\":\"h\",\"event_id\":\"in-report\",\"details\":{\"control_id\":\"C\"}}"}})J")
            .at(0)
            .event_id == "in-report");
  // The identifier ends at the first space, like event and gate: free text after it is not part of it.
  CHECK(named_of("2026-11-20T08:14:03Z  INFO report: report received event=runtime-gate-error event_id=abc trailing words")
            .at(0)
            .event_id == "abc");
}

TEST_CASE("a gate block names its host from hostname, else host, else nothing") {
  CHECK(named_of("2026-11-20T08:14:03.511203Z  INFO dispatch: dispatch: held by fleet-level gate gate=host-edge "
                 "hostname=web-09 rollout=r")
            .at(0) == Named{EventKind::gate_block, "", "web-09", k081403});
  CHECK(named_of(R"J({"timestamp":"2026-11-20T08:14:03.511203Z","fields":{"message":"dispatch: held by fleet-level gate","gate":"host-edge","host":"db 1"}})J")
            .at(0)
            .host == "db 1");
  CHECK(named_of(R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"host-edge","host":"b","hostname":"a"}})J")
            .at(0)
            .host == "a");
  // The CP's usual gate block line carries no host at all: no exemplar, never "unknown".
  CHECK(named_of("2026-11-20T08:14:03Z  INFO dispatch: dispatch: held by fleet-level gate gate=host-edge rollout=r")
            .at(0)
            .host.empty());
}

TEST_CASE("a journald record whose line has no time gives the record's __REALTIME_TIMESTAMP") {
  const std::string untimed = " INFO report: report received hostname=h event=compliance-failure control_id=C event_id=e1";
  CHECK(named_of(R"J({"__CURSOR":"c","__REALTIME_TIMESTAMP":"1795162443000007","MESSAGE":)J" + json_string(untimed) + "}")
            .at(0)
            .log_time_micros == 1795162443000007);
  const std::string untimed_json = R"J({"fields":{"message":"report received","event":"runtime-gate-error","event_id":"e2"}})J";
  CHECK(named_of(R"J({"__CURSOR":"c","__REALTIME_TIMESTAMP":"1795162443000008","MESSAGE":)J" + json_string(untimed_json) +
                 "}")
            .at(0)
            .log_time_micros == 1795162443000008);
  // Neither: the exemplar goes without a timestamp.
  CHECK_FALSE(named_of(untimed).at(0).log_time_micros.has_value());
}

TEST_CASE("a record split over journald entries takes the time of the entry it began in") {
  auto entry = [](std::string_view realtime, std::string_view message) {
    return R"J({"__CURSOR":"c","__REALTIME_TIMESTAMP":")J" + std::string(realtime) + R"J(","MESSAGE":)J" +
           json_string(message) + "}";
  };
  const std::string first = entry("1795162445000001", " INFO report: report received hostname=web-16 summary=failed:");
  const std::string second = entry("1795162445000002", "- MaxAuthTries 10 event=compliance-failure event_id=e3 control_id=C");
  const std::string next = entry("1795162446000003", " INFO http: request done status=200");
  CHECK(named_of_lines({first, second, next}) ==
        std::vector<Named>{{EventKind::compliance_failure, "e3", "web-16", 1795162445000001}});
  // A timed line keeps its own time, whatever entry completes it.
  const std::string timed = entry("1", "2026-11-20T08:14:03.511203Z  INFO report: report received hostname=web-16 x=y:");
  CHECK(named_of_lines({timed, second, next}).at(0).log_time_micros == k081403);
}

TEST_CASE("a line without a time takes the time its transport gives, as the native journal does") {
  constexpr std::int64_t kEntryTime = 1795162443000009;
  const std::string untimed = " INFO report: report received hostname=h event=runtime-gate-error event_id=e4";
  LineParser parser;
  std::vector<std::optional<std::int64_t>> times;
  const auto collect_times = [&](const nle::ParseResult& result) {
    for (const nle::Event& e : result.events) times.push_back(e.log_time_micros);
  };
  collect_times(parser.parse(untimed, kEntryTime));
  collect_times(parser.parse(R"J({"fields":{"message":"report received","event":"runtime-gate-error"}})J", kEntryTime + 1));
  collect_times(parser.parse(kNamedText, kEntryTime + 2));  // the line's own time wins
  collect_times(parser.parse(untimed));                     // neither: none
  collect_times(parser.finish());
  CHECK(times == std::vector<std::optional<std::int64_t>>{kEntryTime, kEntryTime + 1, k081403, std::nullopt});
}

namespace {

// Everything one input gave, in order: each event (kind, labels, log time), build info line and
// skip reason, as text, so that two ways of feeding the same lines can be compared.
struct Stream {
  std::vector<std::string> items;
  void add(const nle::ParseResult& result) {
    for (const nle::Event& e : result.events) {
      items.push_back("event " + std::to_string(static_cast<int>(e.kind)) + " " + std::string(e.control_id) + "|" +
                      std::string(e.host) + "|" + std::string(e.gate) + "|" + std::string(e.event_id) + "|" +
                      std::to_string(e.log_time_micros.value_or(-1)));
    }
    if (result.build_info) {
      items.push_back("build " + std::string(result.build_info->version) + "|" + std::string(result.build_info->git_commit));
    }
    if (result.skipped) items.push_back("skip " + std::to_string(static_cast<int>(*result.skipped)));
  }
};

// The lines as parse() alone reads them, and as the block path feeds them: a line whose next line
// starts_text_record() (and no record held) through parse_before_text_record().
std::pair<Stream, Stream> both_ways(const std::vector<std::string>& lines, InputFormat format) {
  Stream held, alone;
  LineParser reference(format);
  for (const std::string& line : lines) held.add(reference.parse(line));
  held.add(reference.finish());
  LineParser parser(format);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const bool next_starts = i + 1 < lines.size() && parser.starts_text_record(lines[i + 1]);
    alone.add(!parser.holds_record() && next_starts ? parser.parse_before_text_record(lines[i]) : parser.parse(lines[i]));
  }
  alone.add(parser.finish());
  return {held, alone};
}

}  // namespace

TEST_CASE("a record read at once before a text record start counts as the held one does") {
  std::vector<std::string> lines;
  for (const char* name : {"/golden/text.log", "/golden/ansi.log", "/golden/mixed.log", "/golden/malformed.log",
                           "/golden/journald.log", "/golden/labels.log", "/sample/cp.log"}) {
    std::ifstream in(std::string(NLE_TESTDATA_DIR) + name, std::ios::binary);
    REQUIRE(in);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
  }
  // Next lines that end a record and lines that do not: continuations, blanks, JSON, a NUL, and a
  // record whose next line starts one only once its colours are gone.
  const std::string nul_line = std::string("2026-11-20T08:14:05Z  INFO x") + '\0' + " y";
  for (const std::string& next : {std::string("    0: continuation control_id=C9"), std::string(""), std::string("   "),
                                  std::string(R"J({"fields":{"message":"report received","event":"ComplianceFailure"}})J"),
                                  nul_line, std::string("\x1b[2m2026-11-20T08:14:06Z\x1b[0m \x1b[32m INFO\x1b[0m next"),
                                  std::string("report received event=compliance-failure")}) {
    lines.push_back(kTextFailure);
    lines.push_back(next);
    lines.push_back(kAnsiFailure);
    lines.push_back(next);
    lines.push_back(kTextFailure);
  }
  std::size_t reads_at_once = 0;
  LineParser probe;
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) reads_at_once += probe.starts_text_record(lines[i + 1]) ? 1 : 0;
  CHECK(reads_at_once > 100);
  for (InputFormat format : {InputFormat::auto_detect, InputFormat::text, InputFormat::json, InputFormat::journald}) {
    const auto [held, alone] = both_ways(lines, format);
    CHECK(held.items.size() > (format == InputFormat::json ? 0U : 20U));
    CHECK(held.items == alone.items);
  }
}

TEST_CASE("starts_text_record is true only for lines that end a held record") {
  LineParser parser;
  CHECK(parser.starts_text_record(kTextFailure));
  CHECK(parser.starts_text_record(kAnsiFailure));
  CHECK_FALSE(parser.starts_text_record("    0: report received hostname=web-07"));
  CHECK_FALSE(parser.starts_text_record(""));
  CHECK_FALSE(parser.starts_text_record(R"J({"fields":{"message":"x"}})J"));
  CHECK_FALSE(parser.starts_text_record(std::string("2026-11-20T08:14:05Z  INFO x") + '\0'));
  // Each of them true or false, parse() of a held record then says the same.
  for (const std::string& next : {kTextFailure, std::string("    0: more")}) {
    LineParser held;
    held.parse(kTextFailure);
    REQUIRE(held.holds_record());
    const bool completed = held.parse(next).events.size() == 1;
    CHECK(completed == parser.starts_text_record(next));
  }
}

namespace {

// The level rule of text_shape.cpp spelled plainly: among the first three space-separated tokens,
// a level with something after it; failing that, the same after a syslog prefix's first ": "
// (within the first 256 bytes).
std::size_t plain_level_end(std::string_view s) {
  const auto in = [](std::string_view t) -> std::size_t {
    std::size_t i = 0;
    for (int token = 0; token < 3; ++token) {
      while (i < t.size() && t[i] == ' ') ++i;
      const std::size_t start = i;
      while (i < t.size() && t[i] != ' ') ++i;
      if (i == start) return std::string_view::npos;
      const std::string_view word = t.substr(start, i - start);
      if (i < t.size() && (word == "TRACE" || word == "DEBUG" || word == "INFO" || word == "WARN" || word == "ERROR")) {
        return i;
      }
    }
    return std::string_view::npos;
  };
  if (const std::size_t at = in(s); at != std::string_view::npos) return at;
  const std::size_t colon = s.substr(0, std::min<std::size_t>(s.size(), 256)).find(": ");
  if (colon == std::string_view::npos) return std::string_view::npos;
  const std::size_t at = in(s.substr(colon + 2));
  return at == std::string_view::npos ? at : colon + 2 + at;
}

}  // namespace

TEST_CASE("the level token is found as the plain rule finds it, wherever the tokens end") {
  // Tokens of every length around the 64-byte window the fast path reads, with runs of spaces.
  const std::vector<std::string> words = {"INFO", "WARN", "ERROR", "DEBUG", "TRACE", "INF", "INFOO", "ERRORS",
                                          "2026-11-20T08:14:03.511203Z", "x", "Nov", "host", "cp[12]:", "\tINFO",
                                          std::string(20, 'a'), std::string(40, 'b'), std::string(63, 'c')};
  Xorshift64 random{88172645463325252ULL};
  const auto next = [&](std::size_t n) { return random.below(n); };
  std::size_t found = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string line(next(3), ' ');
    const std::size_t tokens = 1 + next(5);
    for (std::size_t t = 0; t < tokens; ++t) {
      if (t > 0) line += std::string(1 + next(3), ' ');
      line += words[next(words.size())];
    }
    if (next(2) == 0) line += " report: report received hostname=web-07 event=compliance-failure control_id=C";
    if (next(4) == 0) line += std::string(next(40), ' ');
    INFO("[" << line << "]");
    const std::size_t expected = plain_level_end(line);
    REQUIRE(nle::parsers::text_record_body(line) == expected);
    REQUIRE(nle::parsers::is_text_record_start(line) == (expected != std::string_view::npos));
    found += expected != std::string_view::npos ? 1 : 0;
  }
  CHECK(found > 2000);
}

namespace {

// Every slot of EventFields as text ("-" when unset), to compare two readings of a line.
std::string describe(const nle::parsers::EventFields& f) {
  std::string out;
  for (const std::optional<std::string_view>* slot :
       {&f.message, &f.event, &f.hostname, &f.control_id, &f.gate, &f.version, &f.git_commit, &f.event_id, &f.host,
        &f.details_control_id, &f.details_hostname, &f.report_event, &f.report_hostname, &f.report_control_id,
        &f.report_event_id, &f.details_json, &f.report_json}) {
    out += *slot ? "[" + std::string(**slot) + "]" : std::string("-");
    out += ' ';
  }
  return out;
}

// What one parse gave, as text: its events, build info and skip reason.
std::string describe(const nle::ParseResult& r) {
  std::string out;
  for (const nle::Event& e : r.events) {
    out += std::to_string(static_cast<int>(e.kind)) + "[" + std::string(e.control_id) + "|" + std::string(e.host) + "|" +
           std::string(e.gate) + "|" + std::string(e.event_id) + "|" +
           (e.log_time_micros ? std::to_string(*e.log_time_micros) : std::string("-")) + "] ";
  }
  if (r.build_info) out += "build[" + std::string(r.build_info->version) + "|" + std::string(r.build_info->git_commit) + "] ";
  if (r.skipped) out += "skip" + std::to_string(static_cast<int>(*r.skipped));
  return out;
}

}  // namespace

TEST_CASE("the text reader's plain-line path reads every field as the walk does") {
  // Lines built from pieces that move the plain path's edges: names before and after the message,
  // names across 64-byte blocks and longer than 64 bytes, '=' and ": " inside values, names with
  // digits and dots, identifier-valued fields with spaces after them, and the odd quote or brace
  // that sends a line to the walk.
  const std::vector<std::string> heads = {"2026-11-20T08:14:03.511203Z  INFO ", "INFO ", "Nov 20 08:14:03 cp nixfleet[7]: WARN ",
                                          "2026-11-20T08:14:03Z ERROR ", "  DEBUG "};
  const std::vector<std::string> targets = {"report: ", "", "nixfleet_control_plane::dispatch: ", "a: b: ", "x=1: ",
                                            "span{id=3}: report: ", "t:x: "};
  const std::vector<std::string> messages = {"report received", "dispatch: held by fleet-level gate", "starting control plane",
                                             "report received twice", "report received:", "", "report  received"};
  const std::vector<std::string> names = {"hostname", "event", "control_id", "gate", "version", "git_commit", "event_id",
                                          "host", "details", "report", "rollout", "agent_version", "a.b", "_x", "9x", "X1",
                                          std::string(70, 'n'), std::string(61, 'm'), "hostname2", "ev"};
  const std::vector<std::string> values = {"web-07", "compliance-failure", "runtime-gate-error", "CIS-5.2.1", "quarantine",
                                           "0.9.3", "a b c", "x=y", "k: v", "", " ", "Some(Verified)", "a=b c=d",
                                           "edge@77d0c4", std::string(50, 'v'), "p:q", "\"quoted\"", "{\"control_id\":\"C\"}",
                                           "ñandú", "1 2=3"};
  Xorshift64 random{0x9E3779B97F4A7C15ULL};
  const auto pick = [&](std::size_t n) { return random.below(n); };
  std::size_t read_plain = 0, with_message_plain = 0, read_in_one_pass = 0, counted_in_one_pass = 0;
  nle::LineParser one_pass(nle::InputFormat::auto_detect), reference(nle::InputFormat::auto_detect);
  for (int round = 0; round < 40000; ++round) {
    std::string line = heads[pick(heads.size())] + targets[pick(targets.size())] + messages[pick(messages.size())];
    const std::size_t fields = pick(12);
    for (std::size_t k = 0; k < fields; ++k) {
      line += std::string(1 + (pick(6) == 0 ? 1 : 0), ' ');
      line += names[pick(names.size())] + "=" + values[pick(values.size())];
    }
    if (pick(4) == 0) line += std::string(pick(3), ' ');
    nle::parsers::Arena arena;
    nle::parsers::EventFields fast, plain, walked;
    const auto fast_status = nle::parsers::read_text_line(line, fast, arena);
    const auto walked_status = nle::parsers::read_text_line_by_walk(line, walked, arena);
    INFO("[" << line << "]");
    REQUIRE(fast_status == walked_status);
    REQUIRE(describe(fast) == describe(walked));
    if (const auto plain_status = nle::parsers::read_text_line_if_plain(line, plain, arena)) {
      REQUIRE(*plain_status == walked_status);
      REQUIRE(describe(plain) == describe(walked));
      ++read_plain;
      with_message_plain += plain.message ? 1 : 0;
    }
    // The parser's one-pass reading of a plain record line (what replay uses for a candidate the
    // screen kept) gives what parse_relevant() gives it, timestamp and all.
    if (nle::may_be_relevant(line)) {
      if (const nle::ParseResult* read = one_pass.parse_plain_text_record(line)) {
        const std::string got = describe(*read);
        REQUIRE(got == describe(reference.parse_relevant(line, true)));
        ++read_in_one_pass;
        counted_in_one_pass += read->events.empty() ? 0 : 1;
      }
    }
  }
#if defined(__x86_64__)
  // Most lines took the fast path (the rest hold a quote or a brace), many of them with a message;
  // a good share of the relevant ones were read in one pass, and some of those counted. The fast
  // path needs AVX2 (without it every line takes the walk, and there is nothing to compare).
  if (__builtin_cpu_supports("avx2")) {
    CHECK(read_plain > 20000);
    CHECK(with_message_plain > 4000);
    CHECK(read_in_one_pass > 4000);
    CHECK(counted_in_one_pass > 1000);
  }
#endif
}

TEST_CASE("colours are removed in AVX2 rounds exactly as by the walk from escape to escape") {
  // Lines built from tracing's colours, other CSI sequences, sequences cut short and bytes that
  // look like parts of one, in every alignment to the 32-byte rounds and up to the line's end.
  const std::vector<std::string> pieces = {
      "\x1b[2m", "\x1b[0m", "\x1b[32m", "\x1b[1m", "\x1b[3m", "\x1b[38;5;208m", "\x1b[1;31m", "\x1b[ q",
      "\x1b[?25h", "\x1b[K", "\x1b[", "\x1b", "\x1b[9", "\x1b[99", "\x1b[123m", "\x1b]0;t\x07", "\x1b\x1b[2m",
      "[", "m", "0", "42", "9m", "report received", " hostname=", "web-07", "=", " ", "\xc3\xa9", std::string(1, '\0'),
      "2026-11-20T08:14:03.511203Z", std::string(40, 'x')};
  std::mt19937 rng(20261203);
  const auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::size_t removed_some = 0;
  for (int round = 0; round < 20000; ++round) {
    std::string line;
    const std::size_t count = pick(40);
    for (std::size_t k = 0; k < count; ++k) line += pieces[pick(pieces.size())];
    if (pick(3) == 0) line.resize(pick(line.size() + 1));  // cut anywhere, mid-sequence too
    nle::parsers::Arena arena;
    const std::string_view walked = nle::parsers::strip_ansi_by_walk(line, arena);
    INFO("[" << line << "]");
    REQUIRE(nle::parsers::strip_ansi(line, arena) == walked);
    removed_some += walked.size() < line.size() ? 1 : 0;
  }
  CHECK(removed_some > 10000);
  nle::parsers::Arena arena;
  CHECK(nle::parsers::strip_ansi("\x1b[2m2026\x1b[0m \x1b[32m INFO\x1b[0m a\x1b[38;5;1mb\x1b[", arena) ==
        "2026  INFO ab\x1b[");
}

namespace {

bool is_json_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// decode_journald_byte_array() as it was before its fast path: byte by byte, one branch a digit.
// What it accepts, rejects and returns is the definition the fast path must keep.
simdjson::error_code reference_decode_byte_array(std::string_view raw, nle::parsers::Arena& arena,
                                                 std::string_view& out) {
  const std::size_t n = raw.size();
  std::size_t i = 0;
  if (n == 0 || raw[0] != '[') return simdjson::INCORRECT_TYPE;
  char* bytes = arena.reserve(n / 2 + 1);
  std::size_t count = 0;
  ++i;
  while (i < n && is_json_blank(raw[i])) ++i;
  if (i < n && raw[i] == ']') {
    ++i;
  } else {
    for (;;) {
      if (i >= n || raw[i] < '0' || raw[i] > '9') return simdjson::INCORRECT_TYPE;
      unsigned value = 0;
      const std::size_t digits_start = i;
      while (i < n && raw[i] >= '0' && raw[i] <= '9') {
        value = value * 10 + static_cast<unsigned>(raw[i] - '0');
        if (value > 255) return simdjson::NUMBER_OUT_OF_RANGE;
        ++i;
      }
      if (raw[digits_start] == '0' && i - digits_start > 1) return simdjson::NUMBER_ERROR;
      bytes[count++] = static_cast<char>(value);
      while (i < n && is_json_blank(raw[i])) ++i;
      if (i < n && raw[i] == ',') {
        ++i;
        while (i < n && is_json_blank(raw[i])) ++i;
        continue;
      }
      if (i < n && raw[i] == ']') {
        ++i;
        break;
      }
      return simdjson::INCORRECT_TYPE;
    }
  }
  while (i < n && is_json_blank(raw[i])) ++i;
  if (i != n) return simdjson::TAPE_ERROR;
  out = std::string_view(bytes, count);
  return simdjson::SUCCESS;
}

// The same input through both decoders; its own copy, so nothing after it can be read.
void require_same_decoding(std::string_view raw) {
  const std::string copy(raw);
  nle::parsers::Arena arena;
  std::string_view expected = "unset", actual = "unset";
  const int expected_error = reference_decode_byte_array(copy, arena, expected);
  const int actual_error = nle::parsers::decode_journald_byte_array(copy, arena, actual);
  INFO("array: " << copy);
  REQUIRE(actual_error == expected_error);
  REQUIRE(actual == expected);
}

std::string random_byte_array(std::mt19937& rng, std::size_t length) {
  std::string bytes(length, '\0');
  for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
  return byte_array(bytes);
}

}  // namespace

TEST_CASE("the byte-array decoder's fast path decodes exactly what the careful loop decodes") {
  std::mt19937 rng(20261120);
  const std::vector<std::string_view> fixed = {
      "",      "[",      "]",     "[]",      "[ ]",     "[]  ",   "[] x",   "[,]",    "[1,]",   "[,1]",
      "[1,,2]", "[00]",  "[01]",  "[0]",     "[255]",   "[256]",  "[999]",  "[1000]", "[0255]", "[-1]",
      "[1.5]",  "[1e2]", "[1E2]", "[ 1 ]",   "[1 ,2]",  "[1, 2]", "[1\t,\n2\r]", "[1]x", "[1]]",  "[1",
      "[1,",    "[[1]]", "[\"1\"]", "[true]", "[null]", "{1}",    "[1}",    "[1] \n", "[1]\t ", "[+1]",
  };
  for (std::string_view raw : fixed) require_same_decoding(raw);

  // Valid arrays of every byte, from empty to longer than many windows, and each cut short.
  for (std::size_t length : {0, 1, 2, 3, 15, 16, 17, 20, 31, 63, 64, 65, 100, 257, 1000, 3000}) {
    const std::string raw = random_byte_array(rng, length);
    require_same_decoding(raw);
    require_same_decoding(raw + "   ");
    if (length <= 100) {
      for (std::size_t cut = 0; cut < raw.size(); ++cut) require_same_decoding(std::string_view(raw).substr(0, cut));
    }
  }
  {
    std::string all_bytes;
    for (int b = 0; b < 256; ++b) all_bytes += static_cast<char>(b);
    require_same_decoding(byte_array(all_bytes));
  }

  // Damage at every position of short arrays, and at random positions of longer ones.
  const std::vector<std::string> damages = {" ", "\t", "\n", "\r", "0", "00", "256", "999", "1000", "-", "-1",
                                            ".", ".5", "e2", "E", "+", ",", ",,", "]", "[", "x", "\"", "}",
                                            std::string(1, '\0'), "\xff"};
  for (std::size_t length : {1, 3, 20}) {
    const std::string raw = random_byte_array(rng, length);
    for (std::size_t at = 0; at <= raw.size(); ++at) {
      for (const std::string& damage : damages) {
        require_same_decoding(raw.substr(0, at) + damage + raw.substr(at));
        if (at < raw.size()) require_same_decoding(raw.substr(0, at) + damage + raw.substr(at + 1));
      }
    }
  }
  for (int round = 0; round < 3000; ++round) {
    std::string raw = random_byte_array(rng, rng() % 400);
    const int changes = 1 + static_cast<int>(rng() % 3);
    for (int c = 0; c < changes; ++c) {
      const std::size_t at = rng() % (raw.size() + 1);
      const std::string& damage = damages[rng() % damages.size()];
      if (rng() % 2 && at < raw.size()) {
        raw.replace(at, 1, damage);
      } else {
        raw.insert(at, damage);
      }
    }
    require_same_decoding(raw);
    require_same_decoding(std::string_view(raw).substr(0, rng() % (raw.size() + 1)));
  }

  // Elements of every spelling from 0 to 1099, with and without a leading zero, side by side.
  std::string numbers = "[";
  for (int v = 0; v < 1100; ++v) {
    std::string element = std::to_string(v);
    numbers += element + ",";
    std::string one = "[7," + element + ",7]";
    require_same_decoding(one);
    require_same_decoding("[7,0" + element + ",7]");
    require_same_decoding("[" + element + "]");
  }
  numbers.back() = ']';
  require_same_decoding(numbers);
}

TEST_CASE("a MESSAGE byte array decoded before simdjson reads the line counts as simdjson's own reading") {
  // `"MESSAGE": [` (a blank before the array) is the same JSON, which the reader leaves to simdjson
  // alone: each record must give the same events, build info and skips both ways.
  const std::string coloured = "\x1b[2m2026-11-20T08:14:03.511203Z\x1b[0m \x1b[32m INFO\x1b[0m report: report received "
                               "\x1b[3mhostname\x1b[0m\x1b[2m=\x1b[0mweb-07 event=compliance-failure control_id=CIS-1";
  const std::string startup = "2026-11-20T08:14:03Z  INFO cp: starting control plane version=0.9.3 git_commit=ab12";
  std::vector<std::string> arrays = {byte_array(coloured), byte_array(startup), byte_array(kTextFailure),
                                     byte_array(std::string(100, 'x')), byte_array(""), "[1,2,3]"};
  // Arrays simdjson's path rejects or reads otherwise: every one must be left to it.
  const std::string good = byte_array(coloured);
  for (const std::string& damage : {std::string("256"), std::string("01"), std::string("1.5"), std::string("-1"),
                                    std::string("1e2"), std::string(" 7 "), std::string("\"a\""), std::string("[1]"),
                                    std::string("null"), std::string("\xff")}) {
    arrays.push_back(good.substr(0, good.size() / 2) + damage + "," + good.substr(good.size() / 2 + 1));
  }
  arrays.push_back(good.substr(0, good.size() - 1));           // no `]`
  arrays.push_back(good + "x");                                  // garbage after it
  arrays.push_back("[" + good + "," + byte_array(startup) + "]");  // several MESSAGE values
  std::vector<std::pair<std::string, std::string>> records;  // (predecoded, reference)
  for (const std::string& array : arrays) {
    records.emplace_back(R"J({"__CURSOR":"s=1","MESSAGE":)J" + array + R"J(,"_PID":"7"})J",
                         R"J({"__CURSOR":"s=1","MESSAGE": )J" + array + R"J(,"_PID":"7"})J");
    // The key spelled after an escaped quote is another key: its array is not the MESSAGE.
    records.emplace_back(R"J({"x\"MESSAGE":)J" + array + R"J(,"MESSAGE":)J" + byte_array(startup) + "}",
                         R"J({"x\"MESSAGE": )J" + array + R"J(,"MESSAGE": )J" + byte_array(startup) + "}");
    records.emplace_back(R"J({"MESSAGE":)J" + array + R"J(,"MESSAGE":)J" + byte_array(kTextFailure) + "}",
                         R"J({"MESSAGE": )J" + array + R"J(,"MESSAGE": )J" + byte_array(kTextFailure) + "}");
  }
  std::size_t counted = 0;
  for (const auto& [predecoded, reference] : records) {
    INFO(predecoded);
    for (InputFormat format : {InputFormat::auto_detect, InputFormat::journald}) {
      const auto [a, ignored_a] = both_ways({predecoded, predecoded}, format);
      const auto [b, ignored_b] = both_ways({reference, reference}, format);
      CHECK(a.items == b.items);
      counted += a.items.size();
    }
  }
  CHECK(counted > 50);
}

namespace {

// Everything JsonReader::read() made of a line, as text, so that two spellings of one JSON line
// can be compared field by field.
std::string json_reading(std::string_view line) {
  nle::parsers::JsonReader reader;
  nle::parsers::Arena arena;
  nle::parsers::JsonLine out;
  const auto status = reader.read(line, out, arena);
  std::string text = "status " + std::to_string(static_cast<int>(status));
  if (status != nle::parsers::ShapeStatus::fields) return text;
  const nle::parsers::EventFields& f = out.fields;
  for (const auto& [name, slot] : std::initializer_list<std::pair<const char*, const std::optional<std::string_view>*>>{
           {"message", &f.message},
           {"event", &f.event},
           {"hostname", &f.hostname},
           {"control_id", &f.control_id},
           {"gate", &f.gate},
           {"version", &f.version},
           {"git_commit", &f.git_commit},
           {"event_id", &f.event_id},
           {"host", &f.host},
           {"details_control_id", &f.details_control_id},
           {"details_hostname", &f.details_hostname},
           {"report_event", &f.report_event},
           {"report_hostname", &f.report_hostname},
           {"report_control_id", &f.report_control_id},
           {"report_event_id", &f.report_event_id},
           {"details_json", &f.details_json},
           {"report_json", &f.report_json}}) {
    if (*slot) text += std::string("|") + name + "=" + std::string(**slot);
  }
  text += out.journald ? "|journald" : "";
  text += out.message_elided ? "|elided" : "";
  text += "|cursor=" + std::string(out.cursor);
  for (std::string_view message : out.messages) text += "|MESSAGE=" + std::string(message);
  return text;
}

// `line` with characters of its strings, keys and values alike, written as \u escapes (`"ab"` to
// `"\u0061b"`): the same JSON. `escape(i, n)` picks the printable ASCII characters at index i of n
// in a string's raw text; escapes already there stay as written.
template <class Pick>
std::string with_escapes(std::string_view line, Pick escape) {
  std::string out;
  std::size_t i = 0;
  while (i < line.size()) {
    if (line[i] != '"') {
      out += line[i++];
      continue;
    }
    std::size_t end = i + 1;
    while (end < line.size() && line[end] != '"') end += line[end] == '\\' ? 2 : 1;
    if (end >= line.size()) return out + std::string(line.substr(i));  // unclosed: as written
    const std::string_view raw = line.substr(i + 1, end - i - 1);
    out += '"';
    for (std::size_t k = 0; k < raw.size(); ++k) {
      const unsigned char c = static_cast<unsigned char>(raw[k]);
      if (c == '\\') {
        const std::size_t length = k + 1 < raw.size() && raw[k + 1] == 'u' ? 6 : 2;  // \uXXXX or \n
        out += raw.substr(k, length);
        k += length - 1;
      } else if (c >= 0x20 && c < 0x7f && escape(k, raw.size())) {
        constexpr std::string_view kHex = "0123456789abcdef";
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '"';
    i = end + 1;
  }
  return out;
}

// JSON lines of every shape the reader takes, each string from none to 40 bytes long around the
// 16-byte steps the in-place read takes, with the golden and real JSON inputs.
std::vector<std::string> json_reader_corpus() {
  const std::string long_host = "host-" + std::string(40, 'h');
  std::vector<std::string> lines = {
      kJsonFailure,
      R"J({"timestamp":"t","level":"INFO","message":"report received","hostname":"web-07","event":"compliance-failure","control_id":"C-1","target":"report"})J",
      R"J({"fields":{"message":"report received","hostname":")J" + long_host +
          R"J(","event":"compliance-failure","control_id":"","a_key_longer_than_sixteen_bytes":"x"}})J",
      R"J({"fields":{"message":"report received","hostname":"\"db\\\"1\"","event":"compliance-failure","control_id":"\u00e9"}})J",
      R"J({"fields":{"message":"report received","hostname":"hôte-ü \"q\" \\ x","event":"compliance-failure","control_id":12}})J",
      R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"quarantine","host":"web-1","flag":true,"n":null,"o":{"k":[1,2]}}})J",
      R"J({"fields":{"message":"starting control plane","version":"0.9.3","git_commit":"f5f1a323a877658cebdd8a1dfef5a9bed87e8f8a"}})J",
      R"J({"fields":{"message":"report received","event":"compliance-failure","details":{"control_id":"D-1","hostname":"d-host","x":"y"}}})J",
      R"J({"fields":{"message":"report received","details":"{\"control_id\":\"D-2\",\"hostname\":\"d2\"}","event":"compliance-failure"}})J",
      R"J({"fields":{"message":"report received","report":{"event":"compliance-failure","hostname":"r-1","details":{"control_id":"R-1"},"event_id":"e"}}})J",
      R"J({"fields":{"message":"report received","report":"{\"event\":\"runtime-gate-error\",\"hostname\":\"r-2\"}"}})J",
      R"J({"fields":{"message":"report received","event":"compliance-failure"},"span":{"method":"POST","uri":"/v1/agent/report","version":"HTTP/2.0","name":"request"},"spans":[{"name":"request"}]})J",
      R"J({"fields":{"message":"x"},"fields":{"message":"y","hostname":"second"}})J",
      R"J({"message":"flat","fields":"not an object","hostname":"h"})J",
      R"J({"__CURSOR":"s=1;i=2","MESSAGE":)J" + json_string(kTextFailure) + R"J(,"_HOSTNAME":"cp-1","PRIORITY":"6"})J",
      R"J({"__CURSOR":"s=1","MESSAGE":)J" + json_string(kJsonFailure) + "}",
      R"J({"__CURSOR":"s=1","MESSAGE":)J" + byte_array(kTextFailure) + "}",
      R"J({"__CURSOR":"s=1","MESSAGE":)J" + byte_array("hi") + "}",
      R"J({"__CURSOR":"s=1","MESSAGE":[)J" + json_string(kTextFailure) + "," + byte_array(kAnsiFailure) + "]}",
      R"J({"__CURSOR":"s=1","MESSAGE":null})J",
      R"J({"__CURSOR":"","MESSAGE":""})J",
  };
  for (std::size_t n = 0; n <= 40; ++n) {
    lines.push_back(R"J({"fields":{"message":"report received","hostname":")J" + std::string(n, 'a') +
                    R"J(","event":"compliance-failure","control_id":")J" + std::string(2 * n, '\\') +
                    R"J("}})J");
  }
  for (const char* name : {"/golden/json.log", "/golden/flat.log", "/golden/journald.log", "/golden/labels.log",
                           "/golden/mixed.log", "/golden/malformed.log", "/real/json.log", "/real/flat.log"}) {
    std::ifstream in(std::string(NLE_TESTDATA_DIR) + name, std::ios::binary);
    REQUIRE(in);
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty() && line.front() == '{') lines.push_back(line);
    }
  }
  return lines;
}

}  // namespace

TEST_CASE("a JSON line reads the same whether its strings are read in place or unescaped by simdjson") {
  // A string without a backslash is read where it lies in the document; one with any escape goes
  // through simdjson's unescaping. Escaping characters of every string sends the same JSON down
  // the other path: all of it, its first or last character, or one past a 16-byte step.
  std::size_t with_fields = 0;
  for (const std::string& line : json_reader_corpus()) {
    INFO(line);
    const std::string plain = json_reading(line);
    with_fields += plain.starts_with("status 0|") ? 1 : 0;
    CHECK(json_reading(with_escapes(line, [](std::size_t, std::size_t) { return true; })) == plain);
    CHECK(json_reading(with_escapes(line, [](std::size_t k, std::size_t) { return k == 0; })) == plain);
    CHECK(json_reading(with_escapes(line, [](std::size_t k, std::size_t n) { return k + 1 == n; })) == plain);
    CHECK(json_reading(with_escapes(line, [](std::size_t k, std::size_t) { return k == 17; })) == plain);
  }
  CHECK(with_fields > 100);
}

TEST_CASE("a JSON line cut short anywhere is invalid, never half its fields") {
  for (const std::string& line : json_reader_corpus()) {
    if (json_reading(line).starts_with("status 0|") == false) continue;
    for (std::size_t n = 0; n < line.size(); ++n) {
      INFO(line.substr(0, n));
      const std::string reading = json_reading(line.substr(0, n));
      CHECK((reading == "status 2" || reading == "status 3"));
    }
  }
}

TEST_CASE("a bad escape fails a JSON line where simdjson unescapes it: in any key, or a value that is read") {
  using nle::parsers::ShapeStatus;
  const auto status_of = [](std::string_view line) {
    nle::parsers::JsonReader reader;
    nle::parsers::Arena arena;
    nle::parsers::JsonLine out;
    return reader.read(line, out, arena);
  };
  CHECK(status_of(R"J({"fields":{"mess\qage":"report received"}})J") == ShapeStatus::invalid_json);
  CHECK(status_of(R"J({"fields":{"unread\q":"x"}})J") == ShapeStatus::invalid_json);
  CHECK(status_of(R"J({"fields":{"hostname":"a\qb"}})J") == ShapeStatus::invalid_json);
  CHECK(status_of(R"J({"fields":{"hostname":"a\ud800b"}})J") == ShapeStatus::invalid_json);
  CHECK(status_of(R"J({"__CURSOR":"c\q","MESSAGE":"m"})J") == ShapeStatus::invalid_json);
  CHECK(status_of(R"J({"__CURSOR":"c","MESSAGE":"m\q"})J") == ShapeStatus::invalid_json);
  // A value no field of ours reads is skipped as written, as simdjson skips it.
  CHECK(status_of(R"J({"fields":{"rollout":"a\qb","hostname":"h"}})J") == ShapeStatus::fields);
  CHECK(status_of("{\"fields\":{\"hostname\":\"a\xff\"}}") == ShapeStatus::invalid_utf8);
  CHECK(status_of("{\"fields\":{\"host\xc3\":\"a\"}}") == ShapeStatus::invalid_utf8);
}

TEST_CASE("strings read from a JSON line stay valid while the reader reads the next lines") {
  // Strings read in place are views of the line's copy in the arena: a later line, read into the
  // same arena, must not move or overwrite them (journald's messages are read line by line while
  // the record's own strings are still in use).
  nle::parsers::JsonReader reader;
  nle::parsers::Arena arena;
  nle::parsers::JsonLine first, second;
  REQUIRE(reader.read(kJsonFailure, first, arena) == nle::parsers::ShapeStatus::fields);
  const std::string record = R"J({"__CURSOR":"s=9","MESSAGE":"plain message","MESSAGE":"an \"escaped\" one"})J";
  REQUIRE(reader.read(record, second, arena) == nle::parsers::ShapeStatus::fields);
  for (int i = 0; i < 100; ++i) {
    nle::parsers::JsonLine later;
    REQUIRE(reader.read(R"J({"fields":{"message":"other","hostname":"zzzzzzzzzzzzzzzzzz","control_id":"y"}})J", later,
                        arena) == nle::parsers::ShapeStatus::fields);
  }
  CHECK(first.fields.hostname == "web-07");
  CHECK(first.fields.control_id == "CIS-5.2.1");
  CHECK(first.fields.message == "report received");
  CHECK(second.cursor == "s=9");
  REQUIRE(second.messages.size() == 2);
  CHECK(second.messages[0] == "plain message");
  CHECK(second.messages[1] == "an \"escaped\" one");
}
