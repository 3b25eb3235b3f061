// The state module: the state file's format (round trip, refusals), its atomic write and read,
// and the registry's export and restore that feed it. Files only under a fresh temp directory.

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/exposition.h"
#include "exporter/registry.h"
#include "parsers/event.h"
#include "state/state_file.h"

using nle::BuildInfoState;
using nle::CounterState;
using nle::ExporterState;
using nle::FilePosition;
using nle::Registry;
using nle::RegistryOptions;
using nle::StateRead;

namespace {

constexpr double kTwoTo53Minus1 = 9007199254740991.0;

// A fresh directory per test, removed with what is in it (the tests make no subdirectories).
class TempDir {
 public:
  TempDir() {
    std::string pattern = std::filesystem::temp_directory_path() / "nle-state-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) FAIL("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    for (const std::string& name : entries()) ::unlink((path_ + "/" + name).c_str());
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR* dir = ::opendir(path_.c_str())) {
      while (const dirent* entry = ::readdir(dir)) {
        const std::string name = entry->d_name;
        if (name != "." && name != "..") names.push_back(name);
      }
      ::closedir(dir);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::string path_;
};

std::string read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every kind of value the format must carry exactly.
ExporterState full_state() {
  ExporterState state;
  state.files.push_back(FilePosition{"/var/log/nixfleet/cp.log", 2049, 131, 4096, 0xcbf29ce484222325ULL, 4096});
  // Paths are bytes: Latin-1 from an old system, and an encoded surrogate, are not UTF-8.
  state.files.push_back(FilePosition{"/var/log/caf\xE9/cp.log.1", std::numeric_limits<std::uint64_t>::max(),
                                     std::numeric_limits<std::uint64_t>::max() - 1, 0, 0, 0});
  state.files.push_back(FilePosition{"/tmp/\xED\xA0\x80.log", 0, 1, 17, 0xFFFFFFFFFFFFFFFFULL, 17});
  state.journal_cursor = "s=6b1c0f2d;i=2a;b=9d1f;m=1c9c380;t=5f1e2d3c4b5a6;x=1f2e3d";
  state.stdin_journal_cursor = "s=bad\xFF;i=1";
  state.counters.push_back(CounterState{"nixfleet_compliance_failure_events",
                                        {"control_id", "host"},
                                        {"CIS \"5.2.1\" \\ a\nb\tc\x01",
                                         "h\xC3\xB4te-\xE6\x97\xA5\xE6\x9C\xAC-\xF0\x9F\x98\x80"},
                                        kTwoTo53Minus1,
                                        1714564800.123456789,
                                        nle::Exemplar{"event_id", "3b0f-\"\xE6\x97\xA5\"\n", 1795162652411481}});
  state.counters.push_back(CounterState{"nixfleet_gate_block", {"gate"}, {"host-edge"}, 3, 0.1,
                                        nle::Exemplar{"host", "web-07", std::nullopt}});
  state.counters.push_back(CounterState{"nixfleet_log_exporter_bytes_read", {}, {}, 1e15, 5e-324});
  state.counters.push_back(CounterState{"nixfleet_log_exporter_lines_read", {}, {}, 12, 1.7976931348623157e308});
  state.counters.push_back(CounterState{"nixfleet_runtime_gate_error_events", {}, {}, 0, 1714564800,
                                        nle::Exemplar{"event_id", "before 1970", -1500000}});
  state.build_info = BuildInfoState{"1.4.2 \"rc\"", "9f1c2ab", 17};
  state.written_at = 1714564800;
  state.exporter_version = "0.1.0 (c20df8e1a2b3)";
  return state;
}

void require_same(const ExporterState& a, const ExporterState& b) {
  REQUIRE(a.files.size() == b.files.size());
  for (std::size_t i = 0; i < a.files.size(); ++i) {
    CHECK(a.files[i].path == b.files[i].path);
    CHECK(a.files[i].device == b.files[i].device);
    CHECK(a.files[i].inode == b.files[i].inode);
    CHECK(a.files[i].offset == b.files[i].offset);
    CHECK(a.files[i].fingerprint == b.files[i].fingerprint);
    CHECK(a.files[i].fingerprint_bytes == b.files[i].fingerprint_bytes);
  }
  CHECK(a.journal_cursor == b.journal_cursor);
  CHECK(a.stdin_journal_cursor == b.stdin_journal_cursor);
  CHECK(a.counters == b.counters);
  CHECK(a.build_info == b.build_info);
  CHECK(a.written_at == b.written_at);
  CHECK(a.exporter_version == b.exporter_version);
}

ExporterState parsed(std::string_view text) {
  std::string error;
  std::optional<ExporterState> state = nle::parse_state(text, error);
  INFO(error);
  REQUIRE(state.has_value());
  return *state;
}

std::string parse_error(std::string_view text) {
  std::string error;
  const std::optional<ExporterState> state = nle::parse_state(text, error);
  CHECK_FALSE(state.has_value());
  CHECK_FALSE(error.empty());
  return error;
}

// The serialized full state with the first `from` replaced by `to`.
std::string edited(std::string_view from, std::string_view to) {
  std::string text = nle::serialize_state(full_state());
  const std::size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), to);
  return text;
}

nle::Event compliance(std::string_view control, std::string_view host) {
  nle::Event event;
  event.kind = nle::EventKind::compliance_failure;
  event.control_id = control;
  event.host = host;
  return event;
}

nle::Event gate_block(std::string_view gate) {
  nle::Event event;
  event.kind = nle::EventKind::gate_block;
  event.gate = gate;
  return event;
}

RegistryOptions options_at(double now, std::size_t cap = 10000) {
  RegistryOptions options;
  options.max_series_per_family = cap;
  options.exporter_version = "0.1.0";
  options.exporter_revision = "c20df8e1a2b3";
  options.clock = [now] { return now; };
  return options;
}

// A registry with some of everything: CP families, self-metrics, build info.
Registry busy_registry() {
  Registry registry(options_at(1000.25));
  registry.record(compliance("CIS-5.2.1", "web-07"));
  // Exemplars: with and without a log time, and one dropped.
  nle::Event named = compliance("CIS-5.2.1", "web-07");
  named.event_id = "3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44";
  named.log_time_micros = 1795162652411481;
  registry.record(named);
  registry.record(compliance("CIS \"1\" \\ \n", "h\xC3\xB4te"));
  nle::Event gate = gate_block("host-edge");
  gate.host = "h\xC3\xB4te";
  registry.record(gate);
  registry.record(gate_block("quorum-wait"));
  nle::Event too_long;  // a runtime gate error
  static const std::string kTooLong(130, 'x');  // over the 128 code points with `event_id`
  too_long.event_id = kTooLong;
  registry.record(too_long);
  registry.add_lines_read(9, 900);
  registry.add_skipped(nle::SkipReason::invalid_json, 2);
  registry.add_self(nle::SelfCounter::rotations);
  registry.add_self(nle::SelfCounter::read_errors, "io_error", 4);
  registry.add_self(nle::SelfCounter::http_requests, "200", 7);
  registry.set_self(nle::SelfGauge::files_watched, 2);
  registry.record_build_info(nle::BuildInfoFields{"1.4.2", "9f1c2ab"}, 5);
  return registry;
}

const CounterState* find_counter(const std::vector<CounterState>& counters, std::string_view family,
                                 const std::vector<std::string>& label_values = {}) {
  for (const CounterState& counter : counters) {
    if (counter.family == family && counter.label_values == label_values) return &counter;
  }
  return nullptr;
}

std::string rendered(const Registry& registry) {
  return nle::render(registry.snapshot(), nle::RenderOptions{nle::ExpositionFormat::openmetrics, true});
}

}  // namespace

// Readable failures: what differs between two counter lists.
namespace Catch {
template <>
struct StringMaker<CounterState> {
  static std::string convert(const CounterState& counter) {
    std::string text = counter.family + "{";
    for (std::size_t i = 0; i < counter.label_names.size() && i < counter.label_values.size(); ++i) {
      text += counter.label_names[i] + "=" + counter.label_values[i] + ",";
    }
    return text + "} " + StringMaker<double>::convert(counter.value) + " @" +
           StringMaker<double>::convert(counter.created);
  }
};
}  // namespace Catch

// ---------------------------------------------------------------------------------------------
// Format

TEST_CASE("every field survives serialize then parse exactly") {
  const ExporterState state = full_state();
  ExporterState back = parsed(nle::serialize_state(state));
  // Counters come back sorted; the full state lists them sorted already.
  require_same(state, back);
}

TEST_CASE("a state with nothing in it round-trips too") {
  const ExporterState empty;
  const std::string text = nle::serialize_state(empty);
  CHECK(text.find("\"build_info\": null") != std::string::npos);
  require_same(empty, parsed(text));
}

TEST_CASE("a path that is not UTF-8 is stored as hex and comes back byte for byte") {
  const std::string text = nle::serialize_state(full_state());
  CHECK(text.find("\"path\": \"/var/log/nixfleet/cp.log\"") != std::string::npos);
  // "/var/log/caf\xE9/cp.log.1" in hex.
  CHECK(text.find("\"path_hex\": \"2f7661722f6c6f672f636166e92f63702e6c6f672e31\"") != std::string::npos);
  CHECK(text.find("\"stdin_journal_cursor_hex\": ") != std::string::npos);
  CHECK(nle::is_valid_utf8(text));
  CHECK(parsed(text).files.at(1).path == "/var/log/caf\xE9/cp.log.1");
}

TEST_CASE("label values with quotes, backslashes, newlines and non-ASCII are escaped and read back") {
  const std::string text = nle::serialize_state(full_state());
  CHECK(text.find(R"("CIS \"5.2.1\" \\ a\nb\tc\u0001")") != std::string::npos);
  CHECK(text.find("h\xC3\xB4te-") != std::string::npos);  // non-ASCII as UTF-8, not \u escapes
  const ExporterState back = parsed(text);
  CHECK(back.counters.at(0).label_values.at(0) == "CIS \"5.2.1\" \\ a\nb\tc\x01");
}

TEST_CASE("a label value that is not UTF-8 is written repaired, never as invalid JSON") {
  ExporterState state;
  state.counters.push_back(CounterState{"nixfleet_gate_block", {"gate"}, {"bad\xFF"}, 1, 0});
  const std::string text = nle::serialize_state(state);
  CHECK(nle::is_valid_utf8(text));
  CHECK(parsed(text).counters.at(0).label_values.at(0) == "bad\xEF\xBF\xBD");
}

TEST_CASE("one counter series or file position per line keeps the file diffable") {
  const std::string text = nle::serialize_state(full_state());
  // 3 files, 5 counters, 13 other lines: braces, brackets, and the other members.
  CHECK(std::count(text.begin(), text.end(), '\n') == 3 + 5 + 13);
  CHECK(text.back() == '\n');
}

TEST_CASE("counter values are written as exact integers up to 2^53 and beyond") {
  ExporterState state;
  state.counters.push_back(CounterState{"a", {}, {}, kTwoTo53Minus1, 0});
  state.counters.push_back(CounterState{"b", {}, {}, 9007199254740992.0, 0});
  state.counters.push_back(CounterState{"c", {}, {}, 18446744073709551616.0, 0});  // a uint64 near its top
  const std::string text = nle::serialize_state(state);
  CHECK(text.find("\"value\": 9007199254740991,") != std::string::npos);
  CHECK(text.find("\"value\": 9007199254740992,") != std::string::npos);
  CHECK(text.find("\"value\": 18446744073709551615,") != std::string::npos);
  CHECK(parsed(text).counters == state.counters);
}

TEST_CASE("created times round-trip exactly as the shortest decimal") {
  std::mt19937_64 random(42);
  std::uniform_real_distribution<double> recent(1.5e9, 2.0e9);
  ExporterState state;
  for (int i = 0; i < 2000; ++i) {
    double created = recent(random);
    if (i % 4 == 1) created = std::bit_cast<double>(random() & 0x7FEFFFFFFFFFFFFFULL);  // any finite magnitude
    if (i % 4 == 2) created = -created;
    state.counters.push_back(CounterState{"f" + std::to_string(1000 + i), {}, {}, 1, created});
  }
  const std::string text = nle::serialize_state(state);
  CHECK(text.find("\"created\": 0.1}") == std::string::npos);
  CHECK(parsed(text).counters == state.counters);
  CHECK(nle::serialize_state(full_state()).find("\"created\": 1714564800.1234567, \"exemplar\"") != std::string::npos);
}

TEST_CASE("output is deterministic: counters sorted whatever order they come in") {
  ExporterState forward = full_state();
  ExporterState reversed = forward;
  std::reverse(reversed.counters.begin(), reversed.counters.end());
  CHECK(nle::serialize_state(forward) == nle::serialize_state(reversed));
  const ExporterState back = parsed(nle::serialize_state(reversed));
  CHECK(back.counters == forward.counters);
}

TEST_CASE("files keep the caller's order, which resume reads as priority") {
  ExporterState state = full_state();
  std::reverse(state.files.begin(), state.files.end());
  CHECK(parsed(nle::serialize_state(state)).files.front().path == "/tmp/\xED\xA0\x80.log");
}

TEST_CASE("written_at is an ISO 8601 UTC time for humans") {
  ExporterState state;
  state.written_at = 1714564800;
  CHECK(nle::serialize_state(state).find("\"written_at\": \"2024-05-01T12:00:00Z\"") != std::string::npos);
  state.written_at = 951782400;  // a leap day
  CHECK(nle::serialize_state(state).find("\"written_at\": \"2000-02-29T00:00:00Z\"") != std::string::npos);
  CHECK(parsed(nle::serialize_state(state)).written_at == 951782400);
}

// ---------------------------------------------------------------------------------------------
// Refusals

TEST_CASE("a state file of a future version is refused with a clear message") {
  CHECK(parse_error(edited("\"version\": 2,", "\"version\": 3,")) ==
        "unsupported state file version 3 (this exporter reads 1 to 2)");
  // Checked before anything else: a future layout need not match ours at all.
  CHECK(parse_error(R"({"format": "nixfleet-log-exporter-state", "version": 3, "files": 7})") ==
        "unsupported state file version 3 (this exporter reads 1 to 2)");
  CHECK(parse_error(edited("\"version\": 2,", "\"version\": 0,")) ==
        "unsupported state file version 0 (this exporter reads 1 to 2)");
}

// What a version-1 exporter wrote (the layout before exemplars), byte for byte.
constexpr std::string_view kVersion1File = R"STATE({
  "format": "nixfleet-log-exporter-state",
  "version": 1,
  "written_at": "2024-05-01T12:00:00Z",
  "exporter_version": "0.1.0 (ac5807c)",
  "journal_cursor": "",
  "stdin_journal_cursor": "",
  "build_info": null,
  "files": [
    {"path": "/var/log/nixfleet/cp.log", "device": 2049, "inode": 131, "offset": 4096, "fingerprint": "cbf29ce484222325", "fingerprint_bytes": 4096}
  ],
  "counters": [
    {"family": "nixfleet_compliance_failure_events", "labels": {"control_id": "CIS-5.2.1", "host": "web-07"}, "value": 3, "created": 1714564800.25},
    {"family": "nixfleet_gate_block", "labels": {"gate": "host-edge"}, "value": 2, "created": 1714564800.25}
  ]
}
)STATE";

TEST_CASE("a version 1 state file, from before exemplars, still loads and restores its counts") {
  const ExporterState state = parsed(kVersion1File);
  REQUIRE(state.counters.size() == 2);
  CHECK_FALSE(state.counters[0].exemplar.has_value());
  CHECK(state.files.at(0).offset == 4096);
  Registry registry(options_at(5000));
  CHECK(registry.restore(state.counters, state.build_info) == 0);
  const std::vector<CounterState> counters = registry.export_counters();
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"})->value == 3);
  CHECK(find_counter(counters, "nixfleet_gate_block", {"host-edge"})->value == 2);
  // Written back, it is version 2.
  CHECK(nle::serialize_state(state).find("\"version\": 2,") != std::string::npos);
}

TEST_CASE("an exemplar is one line with its counter, its time an integer or null") {
  const std::string text = nle::serialize_state(full_state());
  CHECK(text.find("\"value\": 3, \"created\": 0.1, \"exemplar\": {\"labels\": {\"host\": \"web-07\"}, "
                  "\"timestamp_micros\": null}}") != std::string::npos);
  CHECK(text.find("\"exemplar\": {\"labels\": {\"event_id\": \"before 1970\"}, \"timestamp_micros\": -1500000}}") !=
        std::string::npos);
  CHECK(parse_error(edited("{\"host\": \"web-07\"}", "{\"host\": \"web-07\", \"gate\": \"x\"}")) ==
        "counters[1].exemplar.labels: expected exactly one label");
  CHECK(parse_error(edited("{\"host\": \"web-07\"}", "{}")) == "counters[1].exemplar.labels: expected exactly one label");
  CHECK(parse_error(edited("\"timestamp_micros\": null", "\"timestamp_micros\": \"1\"")) ==
        "counters[1].exemplar.timestamp_micros: expected an integer, got a string");
  CHECK(parse_error(edited("\"timestamp_micros\": null", "\"timestamp_micros\": 1.5")) ==
        "counters[1].exemplar.timestamp_micros: expected an integer, got a number with a fraction or exponent");
  CHECK(parse_error(edited(", \"timestamp_micros\": null", "")) == "counters[1].exemplar.timestamp_micros: missing");
  CHECK(parse_error(edited("{\"host\": \"web-07\"}", "{\"host\": 7}")) ==
        "counters[1].exemplar.labels.host: expected a string, got an integer");
}

TEST_CASE("a JSON file of another format is refused") {
  CHECK(parse_error(R"({"version": 1})").find("not a nixfleet-log-exporter state file") == 0);
  CHECK(parse_error(edited("\"nixfleet-log-exporter-state\"", "\"fluent-bit\"")).find("not a nixfleet") == 0);
  CHECK(parse_error("[1, 2]") == "state file: expected an object, got an array");
}

TEST_CASE("corrupt JSON is refused") {
  CHECK(parse_error(edited("\"files\": [", "\"files\": [,")).find("not valid JSON") == 0);
  CHECK(parse_error(edited("\"version\": 2,", "\"version\": 2,,")).find("not valid JSON") == 0);
  CHECK(parse_error(edited("\"format\"", "\"form\xFF\"")).find("not valid JSON") == 0);  // not UTF-8
  CHECK(parse_error(nle::serialize_state(full_state()) + "{}").find("not valid JSON") == 0);
  std::string zeroed = nle::serialize_state(full_state());  // a disk block of zeros
  std::fill_n(zeroed.begin() + 100, 64, '\0');
  CHECK(parse_error(zeroed).find("not valid JSON") == 0);
}

TEST_CASE("a truncated state file is refused at every cut") {
  const std::string text = nle::serialize_state(full_state());
  const std::size_t last_brace = text.rfind('}');
  for (std::size_t length = 0; length <= last_brace; ++length) {
    INFO("cut at " << length);
    parse_error(std::string_view(text).substr(0, length));
  }
  CHECK(parse_error("") == "the state file is empty");
  CHECK(parse_error(" \n") == "the state file is empty");
}

TEST_CASE("a member of the wrong type is refused, naming it") {
  CHECK(parse_error(edited("\"offset\": 4096", "\"offset\": \"4096\"")) ==
        "files[0].offset: expected a non-negative integer, got a string");
  CHECK(parse_error(edited("\"device\": 2049", "\"device\": -1")) ==
        "files[0].device: expected a non-negative integer, got an integer");
  CHECK(parse_error(edited("\"inode\": 131", "\"inode\": 131.0")) ==
        "files[0].inode: expected a non-negative integer, got a number with a fraction or exponent");
  CHECK(parse_error(edited("\"value\": 3,", "\"value\": 3.5,")) ==
        "counters[1].value: expected a non-negative integer, got a number with a fraction or exponent");
  CHECK(parse_error(edited("\"value\": 3,", "\"value\": -3,")) ==
        "counters[1].value: expected a non-negative integer, got an integer");
  CHECK(parse_error(edited("\"created\": 0.1", "\"created\": \"0.1\"")) ==
        "counters[1].created: expected a number, got a string");
  CHECK(parse_error(edited("{\"gate\": \"host-edge\"}", "[\"host-edge\"]")) ==
        "counters[1].labels: expected an object, got an array");
  CHECK(parse_error(edited("{\"gate\": \"host-edge\"}", "{\"gate\": 1}")) ==
        "counters[1].labels.gate: expected a string, got an integer");
  CHECK(parse_error(edited("{\"gate\": \"host-edge\"}", "{\"gate\": \"a\", \"gate\": \"b\"}")) ==
        "counters[1].labels.gate: duplicate label name");
  CHECK(parse_error(edited("\"fingerprint\": \"cbf29ce484222325\"", "\"fingerprint\": 42")) ==
        "files[0].fingerprint: expected a string, got an integer");
  CHECK(parse_error(edited("\"fingerprint\": \"cbf29ce484222325\"", "\"fingerprint\": \"0xcbf29ce4\"")) ==
        "files[0].fingerprint: expected up to 16 hex digits");
  CHECK(parse_error(edited("\"fingerprint_bytes\": 4096", "\"fingerprint_bytes\": 4294967296")) ==
        "files[0].fingerprint_bytes: too large");
  CHECK(parse_error(edited("\"path_hex\": \"2f", "\"path_hex\": \"zz")) == "files[1].path_hex: not hex digits");
  CHECK(parse_error(edited("\"path_hex\": \"2f", "\"path_hex\": \"2")) ==
        "files[1].path_hex: odd number of hex digits");
  CHECK(parse_error(edited("\"files\": [", "\"files\": {\"a\": [")).find("not valid JSON") == 0);
  CHECK(parse_error(edited("\"build_info\": {", "\"build_info\": [{")).find("not valid JSON") == 0);
  CHECK(parse_error(edited("\"order\": 17}", "\"order\": true}")) ==
        "build_info.order: expected a non-negative integer, got a boolean");
  CHECK(parse_error(edited("\"journal_cursor\": \"s=", "\"journal_cursor\": null, \"x\": \"")) ==
        "journal_cursor: expected a string, got null");
  CHECK(parse_error(edited("\"written_at\": \"2024-05-01T12:00:00Z\"", "\"written_at\": \"2024-02-30T12:00:00Z\"")) ==
        "written_at: expected a UTC time like 2024-05-01T12:00:00Z");
  CHECK(parse_error(edited("\"version\": 2,", "\"version\": \"1\",")) ==
        "version: expected a non-negative integer, got a string");
}

TEST_CASE("a missing member is refused, naming it") {
  CHECK(parse_error(edited("\"inode\": 131, ", "")) == "files[0].inode: missing");
  CHECK(parse_error(edited("\"journal_cursor\": ", "\"journal_cursor_old\": ")) == "journal_cursor: missing");
  CHECK(parse_error(edited("\"counters\": [", "\"counters_old\": [")) == "counters: missing");
  CHECK(parse_error(edited("\"path\": \"/var/log/nixfleet/cp.log\", ",
                           "\"path\": \"/var/log/nixfleet/cp.log\", \"path_hex\": \"2f\", ")) ==
        "files[0].path: both \"path\" and \"path_hex\"");
}

TEST_CASE("unknown members are ignored, leaving room for optional additions") {
  const ExporterState back = parsed(edited("\"files\": [", "\"future\": {\"x\": [1]},\n  \"files\": ["));
  require_same(full_state(), back);
}

// ---------------------------------------------------------------------------------------------
// Files

TEST_CASE("a missing state file is reported as missing, not as an error") {
  TempDir dir;
  std::string contents = "untouched";
  std::string error;
  CHECK(nle::read_state_file(dir.file("state.json"), contents, error) == StateRead::missing);
  CHECK(error.empty());
}

TEST_CASE("a state file path that is a directory is an error naming it") {
  TempDir dir;
  std::string contents;
  std::string error;
  CHECK(nle::read_state_file(dir.path(), contents, error) == StateRead::error);
  CHECK(error == "state file " + dir.path() + " is not a regular file");
}

TEST_CASE("a written state file reads back and parses to the same state") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  const std::string text = nle::serialize_state(full_state());
  std::string error;
  REQUIRE(nle::write_state_file(path, text, error));
  std::string contents;
  REQUIRE(nle::read_state_file(path, contents, error) == StateRead::ok);
  CHECK(contents == text);
  require_same(full_state(), parsed(contents));
}

TEST_CASE("an atomic write replaces the old content and leaves no temp file behind") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  std::string error;
  REQUIRE(nle::write_state_file(path, std::string(100000, 'a'), error));
  REQUIRE(nle::write_state_file(path, "short", error));
  CHECK(read_whole(path) == "short");
  CHECK(dir.entries() == std::vector<std::string>{"state.json"});
  // A temp file a crash left behind is reused and gone after the next write.
  { std::ofstream(dir.file("state.json.tmp")) << "half written"; }
  REQUIRE(nle::write_state_file(path, "third", error));
  CHECK(read_whole(path) == "third");
  CHECK(dir.entries() == std::vector<std::string>{"state.json"});
}

TEST_CASE("a write for process crashes only (no fsync) is just as atomic and as whole") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  std::string error;
  using nle::StateDurability;
  REQUIRE(nle::write_state_file(path, "old", error, StateDurability::process_crash));
  REQUIRE(::link(path.c_str(), dir.file("before").c_str()) == 0);
  REQUIRE(nle::write_state_file(path, std::string(100000, 'n'), error, StateDurability::process_crash));
  CHECK(read_whole(dir.file("before")) == "old");
  CHECK(read_whole(path) == std::string(100000, 'n'));
  REQUIRE(nle::write_state_file(path, "flushed", error, StateDurability::power_loss));
  CHECK(read_whole(path) == "flushed");
  CHECK(dir.entries() == std::vector<std::string>{"before", "state.json"});
  // Failures are reported the same way: a directory that does not exist.
  CHECK_FALSE(nle::write_state_file(dir.file("absent/state.json"), "x", error, StateDurability::process_crash));
  CHECK(error.find("absent/state.json.tmp") != std::string::npos);
}

TEST_CASE("the old state stays whole while a new one is written") {
  // The rename is the only moment `path` changes: a hard link taken before the write still holds
  // the old bytes, which would not be so if the file had been rewritten in place.
  TempDir dir;
  const std::string path = dir.file("state.json");
  std::string error;
  REQUIRE(nle::write_state_file(path, "old", error));
  REQUIRE(::link(path.c_str(), dir.file("before").c_str()) == 0);
  REQUIRE(nle::write_state_file(path, "new", error));
  CHECK(read_whole(dir.file("before")) == "old");
  CHECK(read_whole(path) == "new");
}

TEST_CASE("writing into a directory that does not exist fails with an error naming the path") {
  TempDir dir;
  const std::string path = dir.file("no-such-dir/state.json");
  std::string error;
  CHECK_FALSE(nle::write_state_file(path, "x", error));
  CHECK(error.find(path) != std::string::npos);
  CHECK(error.find("No such file or directory") != std::string::npos);
  CHECK(dir.entries().empty());
}

TEST_CASE("a relative state file path is written in the working directory") {
  TempDir dir;
  char previous[4096];
  REQUIRE(::getcwd(previous, sizeof previous) != nullptr);
  REQUIRE(::chdir(dir.path().c_str()) == 0);
  std::string error;
  const bool written = nle::write_state_file("state.json", "here", error);
  REQUIRE(::chdir(previous) == 0);
  CHECK(written);
  CHECK(read_whole(dir.file("state.json")) == "here");
}

// ---------------------------------------------------------------------------------------------
// One exporter per state file

std::string in_use_message(const std::string& path, std::string_view pid_part) {
  return "the state file " + path + " is in use by another nixfleet-log-exporter (" + std::string(pid_part) +
         "lock " + path + ".lock held); run one exporter per state file";
}

TEST_CASE("a second lock on a state file is refused while the first is held, and taken after") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  const std::string our_pid = "pid " + std::to_string(::getpid()) + ", ";
  std::string error;
  std::optional<nle::StateFileLock> first = nle::lock_state_file(path, error);
  REQUIRE(first);
  CHECK(error.empty());

  // The same process opening the lock file again conflicts too: flock locks belong to the open
  // file, not the process, which is what lets this test stand in for a second exporter.
  std::string refused;
  CHECK_FALSE(nle::lock_state_file(path, refused));
  CHECK(refused == in_use_message(path, our_pid));

  // Moved, it is still held.
  std::optional<nle::StateFileLock> moved = std::move(first);
  refused.clear();
  CHECK_FALSE(nle::lock_state_file(path, refused));
  CHECK(refused == in_use_message(path, our_pid));

  moved->release();
  std::optional<nle::StateFileLock> second = nle::lock_state_file(path, error);
  CHECK(second);
  second.reset();  // the destructor lets go as well
  CHECK(nle::lock_state_file(path, error));
}

TEST_CASE("the lock file holds the holder's pid, is emptied on release and stays on disk") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  std::string error;
  {
    std::optional<nle::StateFileLock> lock = nle::lock_state_file(path, error);
    REQUIRE(lock);
    CHECK(nle::state_lock_path(path) == path + ".lock");
    CHECK(read_whole(path + ".lock") == std::to_string(::getpid()) + "\n");
    // Locking reads or creates no state file.
    CHECK(dir.entries() == std::vector<std::string>{"state.json.lock"});
  }
  CHECK(read_whole(path + ".lock").empty());
  CHECK(dir.entries() == std::vector<std::string>{"state.json.lock"});
}

TEST_CASE("a lock held by a process that wrote no pid is refused without naming one") {
  TempDir dir;
  const std::string path = dir.file("state.json");
  // A plain flock on PATH.lock, as a holder has between locking and writing its pid: refused all
  // the same, and a pid is named only when the file holds one.
  const int other = ::open((path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(other >= 0);
  REQUIRE(::flock(other, LOCK_EX | LOCK_NB) == 0);
  std::string error;
  CHECK_FALSE(nle::lock_state_file(path, error));
  CHECK(error == in_use_message(path, ""));
  REQUIRE(::pwrite(other, "not a pid\n", 10, 0) == 10);
  CHECK_FALSE(nle::lock_state_file(path, error));
  CHECK(error == in_use_message(path, ""));
  REQUIRE(::pwrite(other, "4242\n", 5, 0) == 5);
  REQUIRE(::ftruncate(other, 5) == 0);
  CHECK_FALSE(nle::lock_state_file(path, error));
  CHECK(error == in_use_message(path, "pid 4242, "));
  ::close(other);
  CHECK(nle::lock_state_file(path, error));
}

TEST_CASE("locking a state file in a directory that does not exist fails naming the path") {
  TempDir dir;
  const std::string path = dir.file("no-such-dir/state.json");
  std::string error;
  CHECK_FALSE(nle::lock_state_file(path, error));
  CHECK(error == "cannot open the lock file " + path + ".lock for the state file " + path +
                     ": No such file or directory");
  CHECK(dir.entries().empty());
}

TEST_CASE("a state file path that names a directory is refused before anything is created") {
  TempDir dir;
  std::string error;
  CHECK_FALSE(nle::lock_state_file(dir.path() + "/", error));
  CHECK(error == "state file path \"" + dir.path() + "/\" does not name a file");
  CHECK(dir.entries().empty());
}

// ---------------------------------------------------------------------------------------------
// Registry export and restore

TEST_CASE("registry export, restore and export again is identical and renders identically") {
  const Registry before = busy_registry();
  Registry after(options_at(5000));  // a later start: its own created times must not show
  CHECK(after.restore(before.export_counters(), before.export_build_info()) == 0);
  after.set_self(nle::SelfGauge::files_watched, 2);
  CHECK(after.export_counters() == before.export_counters());
  CHECK(after.export_build_info() == before.export_build_info());
  CHECK(rendered(after) == rendered(before));
  // And through the file format as well.
  ExporterState state;
  state.counters = before.export_counters();
  state.build_info = before.export_build_info();
  const ExporterState back = parsed(nle::serialize_state(state));
  Registry again(options_at(9000));
  CHECK(again.restore(back.counters, back.build_info) == 0);
  again.set_self(nle::SelfGauge::files_watched, 2);
  CHECK(rendered(again) == rendered(before));
}

TEST_CASE("export holds every counter series, sorted, and no gauge or build info") {
  const std::vector<CounterState> counters = busy_registry().export_counters();
  CHECK(std::is_sorted(counters.begin(), counters.end(), [](const CounterState& a, const CounterState& b) {
    return a.family != b.family ? a.family < b.family : a.label_values < b.label_values;
  }));
  const CounterState* compliance_series = find_counter(counters, "nixfleet_compliance_failure_events",
                                                       {"CIS-5.2.1", "web-07"});
  REQUIRE(compliance_series != nullptr);
  CHECK(compliance_series->label_names == std::vector<std::string>{"control_id", "host"});
  CHECK(compliance_series->value == 2);
  CHECK(compliance_series->created == 1000.25);
  REQUIRE(find_counter(counters, "nixfleet_log_exporter_http_requests", {"200"}) != nullptr);
  CHECK(find_counter(counters, "nixfleet_log_exporter_bytes_read")->value == 900);
  for (const CounterState& counter : counters) {
    CHECK(counter.family.find("build_info") == std::string::npos);
    CHECK(counter.family != "nixfleet_log_exporter_files_watched");
  }
}

TEST_CASE("exported build info is the one learned from the log, never the flags") {
  RegistryOptions options = options_at(1);
  options.cp_version = "from-flag";
  Registry registry(options);
  CHECK_FALSE(registry.export_build_info().has_value());
  registry.record_build_info(nle::BuildInfoFields{"1.4.2", "9f1c2ab"}, 5);
  CHECK(registry.export_build_info() == BuildInfoState{"1.4.2", "9f1c2ab", 5});
}

TEST_CASE("restore keeps the saved created times") {
  const Registry before = busy_registry();
  Registry after(options_at(5000));
  after.restore(before.export_counters(), before.export_build_info());
  after.record(compliance("CIS-5.2.1", "web-07"));  // an existing series: its time stays
  after.record(compliance("CIS-9", "web-01"));      // a new one: now
  const std::vector<CounterState> counters = after.export_counters();
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"})->created == 1000.25);
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"})->value == 3);
  CHECK(find_counter(counters, "nixfleet_gate_block", {"host-edge"})->created == 1000.25);
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-9", "web-01"})->created == 5000);
}

TEST_CASE("restore of a series beyond the cap is counted as dropped") {
  std::vector<CounterState> saved;
  for (int i = 0; i < 4; ++i) {
    saved.push_back(CounterState{"nixfleet_compliance_failure_events", {"control_id", "host"},
                                 {"CIS-" + std::to_string(i), "web"}, 10.0 + i, 100});
  }
  saved.push_back(CounterState{"nixfleet_log_exporter_series_dropped", {"family"},
                               {"nixfleet_compliance_failure_events_total"}, 5, 100});
  Registry registry(options_at(5000, 2));  // --max-series lowered between runs
  CHECK(registry.restore(saved, std::nullopt) == 2);
  const std::vector<CounterState> counters = registry.export_counters();
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-0", "web"})->value == 10);
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-1", "web"})->value == 11);
  CHECK(find_counter(counters, "nixfleet_compliance_failure_events", {"CIS-2", "web"}) == nullptr);
  // The saved drops (5), then the events of the two series that did not fit (12 + 13).
  CHECK(find_counter(counters, "nixfleet_log_exporter_series_dropped", {"nixfleet_compliance_failure_events_total"})
            ->value == 5 + 12 + 13);
}

TEST_CASE("restore ignores unknown families and label sets that do not fit, and counts them") {
  const std::vector<CounterState> saved = {
      {"nixfleet_no_such_family", {}, {}, 1, 1},
      {"nixfleet_gate_block", {"kind"}, {"host-edge"}, 1, 1},                            // wrong label name
      {"nixfleet_gate_block", {"gate", "host"}, {"host-edge", "a"}, 1, 1},               // one too many
      {"nixfleet_gate_block", {"gate"}, {""}, 1, 1},                                     // empty value
      {"nixfleet_gate_block", {"gate"}, {"host-edge"}, -1, 1},                           // negative
      {"nixfleet_gate_block", {"gate"}, {"host-edge"}, std::nan(""), 1},                 // not a number
      {"nixfleet_compliance_failure_events", {"host", "host"}, {"a", "b"}, 1, 1},        // repeated name
      {"nixfleet_compliance_failure_events", {"host", "control_id"}, {"web", "CIS"}, 4, 7},  // any order fits
  };
  Registry registry(options_at(5000));
  CHECK(registry.restore(saved, std::nullopt) == 7);
  const std::vector<CounterState> counters = registry.export_counters();
  CHECK(find_counter(counters, "nixfleet_gate_block", {"host-edge"})->value == 0);
  const CounterState* reordered = find_counter(counters, "nixfleet_compliance_failure_events", {"CIS", "web"});
  REQUIRE(reordered != nullptr);
  CHECK(reordered->value == 4);
  CHECK(reordered->created == 7);
}

TEST_CASE("a restored build info is outranked only by a later line") {
  Registry registry(options_at(1));
  registry.restore({}, BuildInfoState{"1.4.2", "9f1c2ab", 17});
  registry.record_build_info(nle::BuildInfoFields{"1.3.0", "old"}, 3);  // numbered from 0 again: loses
  CHECK(registry.export_build_info() == BuildInfoState{"1.4.2", "9f1c2ab", 17});
  registry.record_build_info(nle::BuildInfoFields{"1.5.0", "new"}, 18);
  CHECK(registry.export_build_info() == BuildInfoState{"1.5.0", "new", 18});
}

TEST_CASE("restored exemplars are served at once; one the family would not make is left out, its count kept") {
  const Registry before = busy_registry();
  const std::vector<CounterState> saved = before.export_counters();
  const CounterState* named = find_counter(saved, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"});
  REQUIRE(named != nullptr);
  CHECK(named->exemplar == nle::Exemplar{"event_id", "3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44", 1795162652411481});
  CHECK(find_counter(saved, "nixfleet_gate_block", {"host-edge"})->exemplar == nle::Exemplar{"host", "h\xC3\xB4te", {}});
  CHECK_FALSE(find_counter(saved, "nixfleet_runtime_gate_error_events")->exemplar.has_value());
  CHECK(find_counter(saved, "nixfleet_log_exporter_exemplars_dropped", {"nixfleet_runtime_gate_error_events_total"})
            ->value == 1);

  std::vector<CounterState> edited_counters = saved;
  for (CounterState& counter : edited_counters) {
    if (counter.family == "nixfleet_compliance_failure_events" && counter.exemplar) {
      counter.exemplar->label_name = "host";  // not the family's exemplar label
    }
    if (counter.family == "nixfleet_gate_block" && counter.exemplar) counter.exemplar->label_value = std::string(125, 'h');
    if (counter.family == "nixfleet_log_exporter_lines_read") counter.exemplar = nle::Exemplar{"", "x", 1};
  }
  Registry after(options_at(5000));
  CHECK(after.restore(edited_counters, std::nullopt) == 0);
  const std::vector<CounterState> restored = after.export_counters();
  const CounterState* compliance_series = find_counter(restored, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"});
  CHECK(compliance_series->value == 2);
  CHECK_FALSE(compliance_series->exemplar.has_value());
  CHECK_FALSE(find_counter(restored, "nixfleet_gate_block", {"host-edge"})->exemplar.has_value());
  CHECK_FALSE(find_counter(restored, "nixfleet_log_exporter_lines_read")->exemplar.has_value());
  // What was saved as is comes back as is, on the first page.
  Registry again(options_at(5000));
  CHECK(again.restore(saved, std::nullopt) == 0);
  CHECK(rendered(again).find("web-07\"} 2 # {event_id=\"3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44\"} 1 1795162652.411481\n") !=
        std::string::npos);
}
