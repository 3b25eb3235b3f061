#include "tests/fuzz/checks.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "exporter/exposition.h"
#include "exporter/registry.h"
#include "parsers/candidate_scan.h"
#include "parsers/candidate_screen.h"
#include "parsers/line_parser.h"
#include "parsers/shapes.h"
#include "server/metrics_server.h"
#include "server/web_config.h"
#include "state/state_file.h"
#include "tests/fuzz/strict_exposition.h"

namespace nle::fuzz {
namespace {

[[noreturn]] void fail(const std::string& what) { throw CheckFailure(what); }

void require(bool condition, const std::string& what) {
  if (!condition) fail(what);
}

// Reads every byte of a view the parser handed out, so a view into freed or foreign memory
// shows up under ASan even when nothing else looks at it.
void touch(std::string_view bytes) {
  volatile unsigned char sink = 0;
  for (char c : bytes) sink = static_cast<unsigned char>(sink ^ static_cast<unsigned char>(c));
  (void)sink;
}

std::vector<std::string_view> split_lines(std::string_view input) {
  std::vector<std::string_view> lines;
  while (!input.empty()) {
    const std::size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// The line parser in one format. What parse() returns must be well formed whatever the bytes,
// and the cheap relevance tests must agree with it: may_be_relevant() false means an empty result
// (unless a record is held), and every relevant line holds one of relevance_needles().

// A plain copy of what one parse() returned, to compare two parsers' answers.
struct Outcome {
  std::vector<std::tuple<EventKind, std::string, std::string, std::string>> events;
  std::optional<std::pair<std::string, std::string>> build_info;
  std::optional<SkipReason> skipped;
  bool operator==(const Outcome&) const = default;
};

Outcome checked_outcome(const ParseResult& result) {
  Outcome outcome;
  for (const Event& event : result.events) {
    require(static_cast<std::size_t>(event.kind) < kEventKindCount, "an event of no known kind");
    touch(event.control_id), touch(event.host), touch(event.gate);
    if (event.kind == EventKind::compliance_failure) {
      require(!event.control_id.empty() && !event.host.empty(), "a compliance failure with an empty label");
    }
    if (event.kind == EventKind::gate_block) require(!event.gate.empty(), "a gate block with an empty gate");
    outcome.events.emplace_back(event.kind, event.control_id, event.host, event.gate);
  }
  if (result.build_info) {
    touch(result.build_info->version), touch(result.build_info->git_commit);
    outcome.build_info.emplace(result.build_info->version, result.build_info->git_commit);
  }
  if (result.skipped) require(static_cast<std::size_t>(*result.skipped) < kSkipReasonCount, "an unknown skip reason");
  touch(result.journal_cursor);
  outcome.skipped = result.skipped;
  return outcome;
}

// A needle at a place where it counts (needle_occurrence_counts()), as the scan must find it.
bool holds_a_needle(std::string_view line) {
  return std::any_of(relevance_needles().begin(), relevance_needles().end(), [&](std::string_view needle) {
    for (std::size_t at = line.find(needle); at != std::string_view::npos; at = line.find(needle, at + 1)) {
      if (needle_occurrence_counts(line, at, needle)) return true;
    }
    return false;
  });
}

// Everything a fresh parser in `format` makes of `lines` read in order, finish() included.
std::vector<Outcome> outcomes_of(InputFormat format, std::initializer_list<std::string_view> lines) {
  LineParser parser(format);
  std::vector<Outcome> all;
  for (std::string_view line : lines) all.push_back(checked_outcome(parser.parse(line)));
  all.push_back(checked_outcome(parser.finish()));
  return all;
}

// The candidate screen's promise (parsers/candidate_screen.h): a line it turns away, read before
// the line after it, changes nothing that the parser makes of the two.
void check_screen(InputFormat format, CandidateScreen& screen, std::string_view line, const std::string_view* next,
                  bool line_was_next) {
  if (screen.screen(line, next, line_was_next) == ScreenVerdict::parse) return;
  if (next == nullptr) {
    const std::vector<Outcome> got = outcomes_of(format, {line});
    require(got[0] == Outcome{} && got[1] == Outcome{}, "the screen turned away a line the parser counts");
    return;
  }
  std::vector<Outcome> both = outcomes_of(format, {line, *next});
  require(both[0] == Outcome{}, "the screen turned away a line the parser counts");
  both.erase(both.begin());
  require(both == outcomes_of(format, {*next}), "a line the screen turned away changed what the next line counts");
}

// The text reader's fast path for plain lines reads what its walk reads, and strip_ansi() removes
// what its walk removes (parsers/shapes.h).
void check_text_reader_paths(std::string_view line) {
  parsers::Arena arena;
  parsers::EventFields fast, walked;
  const parsers::ShapeStatus fast_status = parsers::read_text_line(line, fast, arena);
  const parsers::ShapeStatus walked_status = parsers::read_text_line_by_walk(line, walked, arena);
  require(fast_status == walked_status, "the text reader's plain path and walk disagree on the shape");
  for (auto slot : {&parsers::EventFields::message, &parsers::EventFields::event, &parsers::EventFields::hostname,
                    &parsers::EventFields::control_id, &parsers::EventFields::gate, &parsers::EventFields::version,
                    &parsers::EventFields::git_commit, &parsers::EventFields::event_id, &parsers::EventFields::host,
                    &parsers::EventFields::details_json, &parsers::EventFields::report_json}) {
    require(fast.*slot == walked.*slot, "the text reader's plain path and walk read a field differently");
  }
  require(parsers::strip_ansi(line, arena) == parsers::strip_ansi_by_walk(line, arena),
          "colour removal in AVX2 rounds and by the walk differ");
}

// One T per input format, indexed by it: parsers and screens are built once per fuzz target
// (building one costs more than most inputs).
template <class T>
std::array<T, 4> one_per_format() {
  return {T(InputFormat::auto_detect), T(InputFormat::json), T(InputFormat::text), T(InputFormat::journald)};
}

// A plain text record line read in one pass (LineParser::parse_plain_text_record(), replay's way
// with a candidate the screen kept) gives what parse_relevant(line, true) gives.
void check_one_pass_reading(InputFormat format, std::string_view line) {
  static std::array<LineParser, 4> one_pass = one_per_format<LineParser>();
  static std::array<LineParser, 4> reference = one_per_format<LineParser>();
  LineParser& fast = one_pass[static_cast<std::size_t>(format)];
  LineParser& slow = reference[static_cast<std::size_t>(format)];
  const ParseResult* read = fast.parse_plain_text_record(line);
  if (read == nullptr) return;
  const Outcome got = checked_outcome(*read);
  require(!fast.holds_record(), "a one-pass reading left a record held");
  const Outcome expected = checked_outcome(slow.parse_relevant(line, true));
  (void)slow.finish();
  require(got == expected, "a plain text record read in one pass counts other than parse_relevant()");
}

void check_line_parser(InputFormat format, std::string_view input) {
  // One parser per format for every input, each input ending with finish(); starts_record() must
  // leave no state behind, so it gets its own.
  static std::array<LineParser, 4> parsers = one_per_format<LineParser>();
  static std::array<LineParser, 4> probes = one_per_format<LineParser>();
  LineParser& parser = parsers[static_cast<std::size_t>(format)];
  LineParser& probe = probes[static_cast<std::size_t>(format)];
  static std::array<CandidateScreen, 4> screens = one_per_format<CandidateScreen>();
  CandidateScreen& screen = screens[static_cast<std::size_t>(format)];
  (void)parser.finish();  // after an input that broke a property mid-way
  const std::vector<std::string_view> lines = split_lines(input);
  bool screened_with_next = false;  // the last line screened was screened with the one after it
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string_view line = lines[i];
    const bool relevant = may_be_relevant(line);
    if (relevant) require(holds_a_needle(line), "may_be_relevant() accepts a line without a relevance needle");
    if (format == InputFormat::text) check_text_reader_paths(line);
    if (relevant) check_one_pass_reading(format, line);
    const bool held = parser.holds_record();
    // As replay screens them: each line told whether it was the last screened line's `next`.
    const bool line_was_next = screened_with_next;
    screened_with_next = !held && i + 1 < lines.size();
    if (!held) check_screen(format, screen, line, i + 1 < lines.size() ? &lines[i + 1] : nullptr, line_was_next);
    touch(find_journal_cursor(line));
    (void)probe.starts_record(line);
    const Outcome outcome = checked_outcome(parser.parse(line));
    if (!relevant && !held) {
      require(outcome == Outcome{}, "an irrelevant line, with no record held, gave a result");
    }
  }
  (void)checked_outcome(parser.finish());
  require(!parser.holds_record(), "finish() left a record held");
}

void check_line_parser_auto(std::string_view input) { check_line_parser(InputFormat::auto_detect, input); }
void check_line_parser_json(std::string_view input) { check_line_parser(InputFormat::json, input); }
void check_line_parser_text(std::string_view input) { check_line_parser(InputFormat::text, input); }
void check_line_parser_journald(std::string_view input) { check_line_parser(InputFormat::journald, input); }

// ---------------------------------------------------------------------------------------------
// journald MESSAGE byte arrays. Mode 0: the input is a CP line; journald's byte-array spelling of
// it (`"MESSAGE":[98,121,...]`) must count exactly as the line itself does. Mode 1: the input is
// the inside of the array, any bytes, which must parse or be skipped without harm.

std::string byte_array_record(std::string_view message) {
  std::string record = "{\"__CURSOR\":\"s=1;i=2\",\"MESSAGE\":[";
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (i != 0) record += ',';
    record += std::to_string(static_cast<unsigned>(static_cast<unsigned char>(message[i])));
  }
  record += "]}";
  return record;
}

// Both parsers' answers for a whole input (its parse() and then its finish()).
std::vector<Outcome> outcomes(LineParser& parser, std::string_view line) {
  std::vector<Outcome> all;
  all.push_back(checked_outcome(parser.parse(line)));
  all.push_back(checked_outcome(parser.finish()));
  // Where the record completes (at parse or at finish) may differ; what it counts may not.
  std::vector<Outcome> merged(1);
  for (Outcome& o : all) {
    merged[0].events.insert(merged[0].events.end(), o.events.begin(), o.events.end());
    if (o.build_info) merged[0].build_info = o.build_info;
    if (o.skipped && !merged[0].skipped) merged[0].skipped = o.skipped;
  }
  return merged;
}

void check_journald_message(std::string_view input) {
  if (input.empty()) return;
  const bool raw_array = (static_cast<unsigned char>(input[0]) & 1U) != 0;
  input.remove_prefix(1);
  LineParser journald(InputFormat::journald);
  if (raw_array) {
    const std::string record = "{\"MESSAGE\":[" + std::string(input) + "]}";
    (void)checked_outcome(journald.parse(record));
    (void)checked_outcome(journald.finish());
    return;
  }
  // A MESSAGE may not hold another journald record, which the line alone may be: a line that
  // starts like JSON and names journald's keys, and also any line carrying `"MESSAGE":null`,
  // which the relevance test takes as a record journalctl elided (line_parser.cpp) even without
  // the braces. (Found by this target: `"MESSAGE":null INFO report rec\e[meived event=...` counted
  // as a line, not inside a MESSAGE; testdata/fuzz-regressions/journald_message/.)
  std::string_view trimmed = input.substr(std::min(input.find_first_not_of(std::string_view("\0\x1e \t", 4)), input.size()));
  if (input.find("\"MESSAGE\":null") != std::string_view::npos) return;
  if (!trimmed.empty() && trimmed.front() == '{' &&
      (input.find("MESSAGE") != std::string_view::npos || input.find("__CURSOR") != std::string_view::npos ||
       input.find("\\u") != std::string_view::npos)) {
    return;
  }
  LineParser plain(InputFormat::auto_detect);
  const std::string record = byte_array_record(input);
  const auto from_array = outcomes(journald, record);
  const auto from_line = outcomes(plain, input);
  require(from_array[0].events == from_line[0].events, "a byte-array MESSAGE counts other events than its line");
  require(from_array[0].build_info == from_line[0].build_info,
          "a byte-array MESSAGE gives other build info than its line");
}

// ---------------------------------------------------------------------------------------------
// find_candidate() with every kernel against a plain line-by-line scan. Byte 0 is the line cap,
// byte 1 where the block starts relative to a 64-byte boundary, the rest is the block.

struct Found {
  bool found;
  std::size_t begin, end;
  std::uint64_t lines_before;
  bool operator==(const Found&) const = default;
};

std::vector<Found> reference_scan(std::string_view block, std::size_t cap) {
  std::vector<Found> found;
  std::size_t start = 0;
  std::uint64_t skipped = 0;
  while (start < block.size()) {
    std::size_t nl = block.find('\n', start);
    const bool partial = nl == std::string_view::npos;
    if (partial) nl = block.size();
    const std::string_view line = block.substr(start, nl - start);
    if (holds_a_needle(line) || line.size() > cap) {
      found.push_back({true, start, nl, skipped});
      skipped = 0;
    } else if (!partial) {
      ++skipped;
    }
    start = nl + 1;
  }
  found.push_back({false, block.size(), block.size(), skipped});
  return found;
}

std::vector<Found> kernel_scan(std::string_view kernel, std::string_view block, std::size_t cap) {
  std::vector<Found> found;
  std::size_t from = 0;
  for (;;) {
    const Candidate c = kernel.empty() ? find_candidate(block, from, cap) : find_candidate_with(kernel, block, from, cap);
    found.push_back({c.found, c.line_begin, c.line_end, c.lines_before});
    if (c.found && (c.relevant || c.relevant_if_json_object)) {
      const std::string_view line = block.substr(c.line_begin, c.line_end - c.line_begin);
      require(c.relevant || !may_hold_byte_array(line) || may_be_relevant(line),
              "a candidate marked relevant in a JSON object is a line may_be_relevant() turns away");
      require(!c.relevant || may_be_relevant(line), "a candidate marked relevant is a line may_be_relevant() turns away");
    }
    if (!c.found || c.line_end >= block.size()) break;
    from = c.line_end + 1;
  }
  if (found.back().found) found.push_back({false, block.size(), block.size(), 0});  // ended on a partial line
  return found;
}

void check_candidate_scan(std::string_view input) {
  if (input.size() < 2) return;
  const std::size_t cap = static_cast<unsigned char>(input[0]);
  const std::size_t misalign = static_cast<unsigned char>(input[1]) % 64;
  input.remove_prefix(2);
  // A copy at a chosen distance from a 64-byte boundary, in a buffer of exactly its size, so that
  // ASan sees a kernel reading past the block.
  std::vector<char> storage(misalign + input.size());
  std::copy(input.begin(), input.end(), storage.begin() + static_cast<std::ptrdiff_t>(misalign));
  const std::string_view block(storage.data() + misalign, input.size());
  const std::vector<Found> expected = reference_scan(block, cap);
  require(kernel_scan("", block, cap) == expected, "find_candidate() disagrees with the reference scan");
  for (std::string_view kernel : candidate_scan_kernels()) {
    require(kernel_scan(kernel, block, cap) == expected,
            "kernel " + std::string(kernel) + " disagrees with the reference scan");
  }
}

// ---------------------------------------------------------------------------------------------
// The state-file loader: any bytes are refused with a message or loaded; what loads writes back
// to a file that loads to the same state.

void check_state_file(std::string_view input) {
  std::string error;
  const std::optional<ExporterState> state = parse_state(input, error);
  if (!state) {
    require(!error.empty(), "a refused state file without a message");
    return;
  }
  const std::string written = serialize_state(*state);
  const std::optional<ExporterState> again = parse_state(written, error);
  require(again.has_value(), "a loaded state does not load again once written: " + error);
  // The file lists counters sorted; the input need not have.
  std::vector<CounterState> loaded = state->counters;
  std::stable_sort(loaded.begin(), loaded.end(), [](const CounterState& a, const CounterState& b) {
    return std::tie(a.family, a.label_names, a.label_values) < std::tie(b.family, b.label_names, b.label_values);
  });
  require(again->counters == loaded, "the counters changed on a write and a load");
  require(again->build_info == state->build_info, "the build info changed on a write and a load");
  require(again->journal_cursor == state->journal_cursor && again->stdin_journal_cursor == state->stdin_journal_cursor,
          "a cursor changed on a write and a load");
  require(again->files.size() == state->files.size(), "the file positions changed on a write and a load");
  for (std::size_t i = 0; i < state->files.size(); ++i) {
    const FilePosition& a = state->files[i];
    const FilePosition& b = again->files[i];
    require(a.path == b.path && a.device == b.device && a.inode == b.inode && a.offset == b.offset &&
                a.fingerprint == b.fingerprint && a.fingerprint_bytes == b.fingerprint_bytes,
            "a file position changed on a write and a load");
  }
  require(serialize_state(*again) == written, "writing a loaded state is not stable");
}

// ---------------------------------------------------------------------------------------------
// Exposition: a registry fed events with arbitrary label bytes (exemplars' too), rendered in both
// formats and read back by a strict parser, must give exactly the snapshot's series and exemplars.
// The input is records split by 0xFF: a kind byte, then the label values split by 0xFE.

void check_exposition(std::string_view input) {
  RegistryOptions options;
  options.max_series_per_family = 16;  // small, so that the cap and series_dropped come into play
  options.max_label_bytes = 24;        // small, so that truncation does
  options.clock = [] { return 1714564800.25; };
  Registry registry(options);
  while (!input.empty()) {
    const std::size_t end = std::min(input.find('\xFF'), input.size());
    std::string_view record = input.substr(0, end);
    input.remove_prefix(std::min(end + 1, input.size()));
    if (record.empty()) continue;
    const auto kind_byte = static_cast<unsigned char>(record[0]);
    record.remove_prefix(1);
    const std::size_t split = std::min(record.find('\xFE'), record.size());
    Event event;
    event.kind = static_cast<EventKind>(kind_byte % kEventKindCount);
    event.control_id = record.substr(0, split);
    event.host = record.substr(std::min(split + 1, record.size()));  // a gate block's exemplar too
    event.gate = record;
    // Exemplars: any bytes as the event id, near and over the 128-code-point limit, with and
    // without a log time (negative ones too).
    event.event_id = event.host;
    if (kind_byte & 0x08) {
      event.log_time_micros = (static_cast<std::int64_t>(kind_byte) - 0x40) * 1'000'000'007LL + static_cast<std::int64_t>(split);
    }
    if (kind_byte >= 0xF0) {
      registry.add_self(SelfCounter::http_requests, record);
    } else if (kind_byte >= 0xE0) {
      registry.record_build_info({event.control_id, event.host}, kind_byte);
    } else {
      registry.record(event);
    }
  }
  const Snapshot snapshot = registry.snapshot();
  for (const ExpositionFormat format : {ExpositionFormat::prometheus, ExpositionFormat::openmetrics}) {
    const std::string page = render(snapshot, {format, format == ExpositionFormat::openmetrics});
    std::string error;
    const std::optional<std::vector<ParsedSample>> parsed = parse_exposition_strictly(page, format, error);
    const std::string format_name = format == ExpositionFormat::openmetrics ? "OpenMetrics" : "text 0.0.4";
    require(parsed.has_value(), format_name + " page does not parse: " + error);
    require(*parsed == expected_samples(snapshot, format), format_name + " page gives other series than the snapshot");
  }
}

// ---------------------------------------------------------------------------------------------
// Accept and Accept-Encoding negotiation: any header is answered, and media types, parameter
// names and encodings are case-insensitive, so the header's case changes nothing.

std::string ascii_lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

void check_accept_header(std::string_view input) {
  const ExpositionFormat format = negotiate_format(input);
  require(format == ExpositionFormat::prometheus || format == ExpositionFormat::openmetrics, "no known format");
  const std::string lower = ascii_lower(input);
  require(negotiate_format(lower) == format, "the Accept header's case changed the format picked");
  require(accepts_gzip(lower) == accepts_gzip(input), "the Accept-Encoding header's case changed the gzip answer");
}

// ---------------------------------------------------------------------------------------------
// The web config parser (--web.config.file, written by an admin, but read by a network-facing
// process): any bytes give a config or an error, never an exception or a crash, and what is
// accepted holds only what the parser promises.

void check_web_config(std::string_view input) {
  const WebConfigResult result = parse_web_config(input, "/etc/nixfleet-log-exporter");
  require(result.config.has_value() != !result.error.empty(), "a web config that is neither accepted nor refused");
  if (!result.config) return;
  for (const auto& [user, hash] : result.config->users) {
    require(is_bcrypt_hash(hash), "an accepted user whose password is not a bcrypt hash");
  }
  const TlsServerConfig& tls = result.config->tls;
  require(tls.min_version <= tls.max_version, "an accepted TLS version range that is empty");
  (void)parse_go_duration(input);
  (void)openssl_cipher_name(input);
}

constexpr Target kTargets[] = {
    {"line_parser_auto", check_line_parser_auto},
    {"line_parser_json", check_line_parser_json},
    {"line_parser_text", check_line_parser_text},
    {"line_parser_journald", check_line_parser_journald},
    {"journald_message", check_journald_message},
    {"candidate_scan", check_candidate_scan},
    {"state_file", check_state_file},
    {"exposition", check_exposition},
    {"accept_header", check_accept_header},
    {"web_config", check_web_config},
};

}  // namespace

std::span<const Target> targets() { return kTargets; }

const Target* find_target(std::string_view name) {
  for (const Target& target : kTargets) {
    if (target.name == name) return &target;
  }
  return nullptr;
}

}  // namespace nle::fuzz
