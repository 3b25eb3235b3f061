#include "parsers/line_parser.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "parsers/relevance.h"
#include "parsers/shapes.h"
#include "parsers/timestamp.h"

namespace nle {
namespace {

using parsers::Arena;
using parsers::EventFields;
using parsers::JsonLine;
using parsers::JsonReader;
using parsers::LineOutput;
using parsers::ShapeStatus;
using parsers::trim_front;

bool contains(std::string_view haystack, std::string_view needle) { return parsers::contains_bytes(haystack, needle); }

// Does some occurrence of `needle` in `line`, at or after `from`, satisfy `counts(begin, end, at)`
// (the byte tests of parsers/relevance.h, which look around the occurrence)?
template <class Counts>
bool any_occurrence(std::string_view line, std::string_view needle, Counts&& counts, std::size_t from = 0) {
  const char* const end = line.data() + line.size();
  for (std::size_t at = parsers::find_bytes(line, needle, from); at != std::string_view::npos;
       at = parsers::find_bytes(line, needle, at + 1)) {
    if (counts(line.data(), end, line.data() + at)) return true;
  }
  return false;
}

bool has_version_field(std::string_view line) {
  return any_occurrence(line, "version", parsers::is_build_info_version_at);
}

// The event messages spelled as journald spells a MESSAGE that is not printable UTF-8: an array
// of byte values, compact (`-o json` today) or with spaces (older systemd).
constexpr std::string_view kEncodedReportReceived = "114,101,112,111,114,116,32,114,101,99,101,105,118,101,100";
constexpr std::string_view kEncodedReportReceivedSpaced =
    "114, 101, 112, 111, 114, 116, 32, 114, 101, 99, 101, 105, 118, 101, 100";
constexpr std::string_view kEncodedGateHeld = "102,108,101,101,116,45,108,101,118,101,108,32,103,97,116,101";
constexpr std::string_view kEncodedGateHeldSpaced =
    "102, 108, 101, 101, 116, 45, 108, 101, 118, 101, 108, 32, 103, 97, 116, 101";
constexpr std::string_view kEncodedVersion = "118,101,114,115,105,111,110";
constexpr std::string_view kEncodedVersionSpaced = "118, 101, 114, 115, 105, 111, 110";
constexpr std::string_view kGateHeldTail = "held by fleet-level gate";

bool has_event_message(std::string_view line) {
  return contains(line, parsers::kReportReceived) || contains(line, kGateHeldTail);
}

// The `event` values that count (LOG-FORMAT section 3), as the CP spells them: serde and Display
// never escape a letter, so a report that counts spells one of them in its bytes.
constexpr std::string_view kCountingValues[] = {"compliance-failure", "ComplianceFailure", "runtime-gate-error",
                                                "RuntimeGateError"};

// A message that may count: a GateBlock's; a `report received` that is not a tracing JSON line's
// message; or a JSON one whose line spells a counting value. Most reports on a busy CP are of
// kinds that never count (activation-*, stale-target, ...): a JSON one is turned away here
// without a parse.
bool may_hold_counting_message(std::string_view line) {
  const std::size_t first = parsers::find_bytes(line, parsers::kReportReceived, 0);
  if (first != std::string_view::npos) {
    const char* const end = line.data() + line.size();
    if (!parsers::is_json_report_message(line.data(), end, line.data() + first)) return true;  // text
    // A counting value next: on a JSON line that counts (most that get here), the search for it
    // ends early, and no other `report received` need be looked for.
    for (std::string_view v : kCountingValues) {
      if (contains(line, v)) return true;
    }
    const auto not_json_message = [](const char* b, const char* e, const char* r) {
      return !parsers::is_json_report_message(b, e, r);
    };
    if (any_occurrence(line, parsers::kReportReceived, not_json_message, first + 1)) return true;
  }
  return contains(line, kGateHeldTail);
}

// An encoded `version` that may be a build-info field once decoded (parsers/relevance.h).
bool has_encoded_version_field(std::string_view line, std::string_view encoded) {
  return any_occurrence(line, encoded, [&](const char* b, const char* e, const char* v) {
    return parsers::encoded_version_counts(b, e, v, v + encoded.size());
  });
}

bool has_encoded_keyword(std::string_view line) {
  return contains(line, kEncodedReportReceived) || contains(line, kEncodedGateHeld) ||
         contains(line, kEncodedReportReceivedSpaced) || contains(line, kEncodedGateHeldSpaced) ||
         has_encoded_version_field(line, kEncodedVersion) || has_encoded_version_field(line, kEncodedVersionSpaced);
}

}  // namespace

std::optional<InputFormat> parse_input_format(std::string_view name) {
  if (name == "auto") return InputFormat::auto_detect;
  if (name == "json") return InputFormat::json;
  if (name == "text") return InputFormat::text;
  if (name == "journald") return InputFormat::journald;
  return std::nullopt;
}

std::string_view find_journal_cursor(std::string_view line) {
  constexpr std::string_view kKey = "\"__CURSOR\"";
  const void* hit = memmem(line.data(), line.size(), kKey.data(), kKey.size());
  if (hit == nullptr) return {};
  std::size_t i = static_cast<std::size_t>(static_cast<const char*>(hit) - line.data()) + kKey.size();
  while (i < line.size() && (line[i] == ' ' || line[i] == ':')) ++i;
  if (i >= line.size() || line[i] != '"') return {};
  // Cursors are `s=...;i=...` in hex and decimal: no quotes or escapes to decode.
  const std::size_t start = i + 1;
  const std::size_t end = line.find('"', start);
  if (end == std::string_view::npos) return {};
  return line.substr(start, end - start);
}

std::span<const std::string_view> relevance_needles() {
  static constexpr std::string_view kNeedles[] = {
      parsers::kReportReceived, kCountingValues[0],           kCountingValues[1], kCountingValues[2],
      kCountingValues[3],       kGateHeldTail,                "version",          "\"MESSAGE\":null",
      kEncodedReportReceived, kEncodedReportReceivedSpaced, kEncodedGateHeld,   kEncodedGateHeldSpaced,
      kEncodedVersion,        kEncodedVersionSpaced,
  };
  return kNeedles;
}

bool needle_occurrence_counts(std::string_view bytes, std::size_t at, std::string_view needle) {
  const char* const end = bytes.data() + bytes.size();
  if (needle == "version") return parsers::is_build_info_version_at(bytes.data(), end, bytes.data() + at);
  if (needle == parsers::kReportReceived) return !parsers::is_json_report_message(bytes.data(), end, bytes.data() + at);
  if (needle == kEncodedVersion || needle == kEncodedVersionSpaced) {
    return parsers::encoded_version_counts(bytes.data(), end, bytes.data() + at, bytes.data() + at + needle.size());
  }
  return true;
}

bool needle_makes_relevant(std::string_view needle) {
  // may_hold_counting_message() says yes to a `report received` that is not a JSON message and to
  // the gate tail wherever it sits; has_version_field() to a counting `version`.
  return needle == "version" || needle == parsers::kReportReceived || needle == kGateHeldTail ||
         needle == "\"MESSAGE\":null";
}

bool needle_makes_json_object_relevant(std::string_view needle) {
  // has_encoded_keyword() says yes to each of them wherever needle_occurrence_counts() does.
  return needle == kEncodedReportReceived || needle == kEncodedReportReceivedSpaced || needle == kEncodedGateHeld ||
         needle == kEncodedGateHeldSpaced || needle == kEncodedVersion || needle == kEncodedVersionSpaced;
}

bool needle_counts_only_somewhere(std::string_view needle) {
  return needle == "version" || needle == parsers::kReportReceived || needle == kEncodedVersion ||
         needle == kEncodedVersionSpaced;
}

bool may_be_relevant(std::string_view line) {
  if (may_hold_counting_message(line) || has_version_field(line)) return true;
  if (contains(line, "\"MESSAGE\":null")) return true;  // elided by journalctl: counted as skipped
  // Byte arrays only appear in journald records, which are JSON objects: in any other line (a
  // coloured one has a `[` in every escape) the digits spell nothing.
  return may_hold_byte_array(line) && has_encoded_keyword(line);
}

bool may_hold_byte_array(std::string_view line) {
  const std::string_view object = trim_front(line);
  return !object.empty() && object.front() == '{' && std::memchr(line.data(), '[', line.size()) != nullptr;
}

// Cache-line aligned, as CandidateScreen::Impl: each of replay's threads has one, written per line.
struct alignas(128) LineParser::Impl {
  InputFormat format;
  Arena arena;
  JsonReader json;
  JsonLine outer;
  JsonLine inner;
  EventFields text_fields;
  LineOutput out;
  ParseResult result;
  // A text record whose continuation lines may still come. Only relevant records are held:
  // an irrelevant one cannot become relevant, since its message is on its first line.
  std::string held;
  bool holding = false;
  static constexpr std::size_t kMaxHeldBytes = 1 << 20;
  // The held record's time when its own text has none: the one its transport gave (the journald
  // record it came in, or parse()'s logged_at).
  std::optional<LogTimeMicros> held_fallback_time;
  // The journald record whose MESSAGE is being read, for its __REALTIME_TIMESTAMP; else empty.
  std::string_view journald_record;
  // parse()'s logged_at: the transport's time for the line being read.
  std::optional<LogTimeMicros> logged_at;
  // During parse_before_text_record(): a text record the line starts is complete.
  bool next_starts_text_record = false;

  explicit Impl(InputFormat f) : format(f) {}

  void skip(SkipReason reason) {
    if (!out.skipped) out.skipped = reason;
  }

  void complete_held() {
    if (!holding) return;
    holding = false;
    // Into the arena first: the events' views must outlive a new record held in this same call.
    read_text_record(arena.put(held));
  }

  // When the transport says the line in hand was logged: its journald record, else parse()'s logged_at.
  std::optional<LogTimeMicros> transport_time() const {
    return journald_record.empty() ? logged_at : line_timestamp(journald_record);
  }

  // Gives the events classify() added since `first` the time `line` was logged, else `fallback`'s.
  // Only lines that count get here, so the timestamp costs nothing on the others.
  template <class Fallback>
  void stamp_log_time(std::size_t first, std::string_view line, Fallback&& fallback) {
    if (out.events.size() == first) return;
    std::optional<LogTimeMicros> time = line_timestamp(line);
    if (!time) time = fallback();
    for (std::size_t i = first; i < out.events.size(); ++i) out.events[i].log_time_micros = time;
  }

  // A whole text record (its continuation lines joined with "\n").
  // `body`: text_record_body(text) when the caller has it, else npos.
  void read_text_record(std::string_view text, std::size_t body = std::string_view::npos) {
    text_fields = {};
    if (parsers::read_text_line(text, text_fields, arena, body) == ShapeStatus::fields) {
      classify_text_record(text);
    } else if (has_event_message(text)) {
      skip(SkipReason::unrecognised);
    }
  }

  // The events and build info of the text record `text`, whose fields are in text_fields.
  void classify_text_record(std::string_view text) {
    json.resolve_nested_json(text_fields, arena);
    const std::size_t first = out.events.size();
    parsers::classify(text_fields, out);
    stamp_log_time(first, text, [&] { return held_fallback_time; });
  }

  // One CP line: tracing JSON, or a line of a text record. `inside_journald` is true for a
  // journald MESSAGE, which may not hold another journald record.
  // `relevant`: may_be_relevant(line) is known to be true (so a line with no colours to strip
  // need not be searched again).
  void read_cp_line(std::string_view line, bool inside_journald, bool relevant) {
    line = trim_front(line);
    if (line.empty()) return;
    if (std::memchr(line.data(), '\0', line.size()) != nullptr) {
      complete_held();
      return skip(SkipReason::nul_byte);
    }
    const bool looks_json = line.front() == '{';
    const bool want_json = format == InputFormat::json || format == InputFormat::journald ||
                           (format == InputFormat::auto_detect && looks_json);
    if (want_json && (looks_json || !inside_journald)) {
      if (!looks_json) {
        complete_held();
        if (has_event_message(line)) skip(SkipReason::unrecognised);
        return;
      }
      read_json_line(line, inside_journald);
      return;
    }

    // Text. A forced text format still reads a JSON-looking line as text: it will not match.
    std::string_view text = line;
    const bool coloured = std::memchr(text.data(), '\x1b', text.size()) != nullptr;
    if (coloured) text = parsers::strip_ansi(text, arena);
    if (const std::size_t body = parsers::text_record_body(text); body != std::string_view::npos) {
      complete_held();
      // A record is relevant if its raw bytes are (as parse() tests a line when no record is
      // held) and, when coloured, its text without colours is too: the same test whether or not
      // a record was held before it, so a line counts the same after any line. Trimming the
      // front changes no needle (blanks and NULs are in none of them).
      if (!relevant && !may_be_relevant(line)) return;
      if (coloured && !may_be_relevant(text)) return;
      held_fallback_time.reset();
      // Only a transport that has a time of its own needs the line's checked now.
      if ((inside_journald || logged_at) && !line_timestamp(text)) held_fallback_time = transport_time();
      if (next_starts_text_record && !inside_journald) {
        // No continuation can follow: the record is complete now, as the next line would find it.
        read_text_record(arena.put(text), body);
        return;
      }
      held.assign(text);
      holding = true;
    } else if (holding) {
      if (held.size() + 1 + text.size() <= kMaxHeldBytes) {
        held += '\n';
        held.append(text);
      }
    } else if (has_event_message(text)) {
      skip(SkipReason::unrecognised);  // a continuation whose record we never saw
    }
  }

  void read_json_line(std::string_view line, bool inside_journald) {
    JsonLine& json_line = inside_journald ? inner : outer;
    const ShapeStatus status = json.read(line, json_line, arena);
    if (status != ShapeStatus::fields) {
      complete_held();  // whatever it was, it continues no text record
      if (status == ShapeStatus::invalid_json) skip(SkipReason::invalid_json);
      else if (status == ShapeStatus::invalid_utf8) skip(SkipReason::invalid_utf8);
      else if (has_event_message(line)) skip(SkipReason::unrecognised);
      return;
    }
    if (json_line.journald) {
      if (inside_journald || format == InputFormat::json) {
        if (has_event_message(line)) skip(SkipReason::unrecognised);
        return;
      }
      out.journal_cursor = json_line.cursor;
      if (json_line.message_elided) skip(SkipReason::message_elided);
      journald_record = line;
      for (std::string_view message : json_line.messages) {
        if (holding) read_cp_line(message, true, false);
        else if (may_be_relevant(message)) read_cp_line(message, true, true);
      }
      journald_record = {};
      return;
    }
    complete_held();  // a tracing JSON line is a record of its own
    if (format == InputFormat::journald && !inside_journald) {
      if (has_event_message(line)) skip(SkipReason::unrecognised);
      return;
    }
    const std::size_t first = out.events.size();
    parsers::classify(json_line.fields, out);
    stamp_log_time(first, line, [&] { return transport_time(); });
  }

  void begin() {
    arena.reset();
    out.events.clear();
    out.build_info.reset();
    out.skipped.reset();
    out.journal_cursor = {};
  }

  const ParseResult& end() {
    result.events = std::span<const Event>(out.events.data(), out.events.size());
    result.build_info = out.build_info;
    result.skipped = out.skipped;
    result.journal_cursor = out.journal_cursor;
    return result;
  }

  const ParseResult& parse(std::string_view line, std::optional<LogTimeMicros> line_logged_at,
                           bool next_is_text_record = false, bool known_relevant = false) {
    begin();
    logged_at = line_logged_at;
    next_starts_text_record = next_is_text_record;
    if (holding) read_cp_line(line, false, false);
    else if (known_relevant || may_be_relevant(line)) read_cp_line(line, false, true);
    next_starts_text_record = false;
    return end();
  }

  const ParseResult* parse_plain_text_record(std::string_view line) {
    if (holding || !(format == InputFormat::auto_detect || format == InputFormat::text)) return nullptr;
    text_fields = {};  // scratch: read_text_record() starts the same way
    if (!parsers::read_plain_text_record(line, text_fields)) return nullptr;
    // What parse_relevant(line, true) does with it: read_cp_line() finds a text record (no NUL,
    // no colours, a level), complete at once, with no transport time to fall back on.
    begin();
    logged_at.reset();
    held_fallback_time.reset();
    classify_text_record(line);
    return &end();
  }

  const ParseResult& finish() {
    begin();
    logged_at.reset();
    complete_held();
    return end();
  }

  // Lines read_cp_line() reads as a new text record, whatever the format: so a record held
  // before such a line is complete. Not a line with a NUL: it ends a held record too, but is
  // counted as skipped only then, so whether a record was held before it must not change.
  bool starts_text_record(std::string_view line) {
    line = trim_front(line);
    if (line.empty() || line.front() == '{') return false;
    if (std::memchr(line.data(), '\0', line.size()) != nullptr) return false;
    arena.reset();
    return parsers::text_starts_record(line, arena);
  }

  bool starts_record(std::string_view line) {
    arena.reset();
    line = trim_front(line);
    if (line.empty()) return false;
    if (line.front() == '{') {
      if (json.read(line, outer, arena) != ShapeStatus::fields || !outer.journald || outer.messages.empty()) return true;
      line = trim_front(outer.messages.front());
      if (line.empty()) return false;
      if (line.front() == '{') return true;
    }
    if (std::memchr(line.data(), '\x1b', line.size()) != nullptr) line = parsers::strip_ansi(line, arena);
    return parsers::is_text_record_start(line);
  }
};

LineParser::LineParser(InputFormat format) : impl_(std::make_unique<Impl>(format)) {}
LineParser::~LineParser() = default;
LineParser::LineParser(LineParser&&) noexcept = default;
LineParser& LineParser::operator=(LineParser&&) noexcept = default;

const ParseResult& LineParser::parse(std::string_view line, std::optional<LogTimeMicros> logged_at) {
  return impl_->parse(line, logged_at);
}
const ParseResult& LineParser::parse_before_text_record(std::string_view line) {
  return impl_->parse(line, std::nullopt, true);
}
const ParseResult& LineParser::parse_relevant(std::string_view line, bool before_text_record) {
  return impl_->parse(line, std::nullopt, before_text_record, true);
}
const ParseResult* LineParser::parse_plain_text_record(std::string_view line) {
  return impl_->parse_plain_text_record(line);
}
const ParseResult& LineParser::finish() { return impl_->finish(); }
bool LineParser::holds_record() const { return impl_->holding; }
bool LineParser::starts_record(std::string_view line) { return impl_->starts_record(line); }
bool LineParser::starts_text_record(std::string_view line) { return impl_->starts_text_record(line); }

namespace parsers {

std::string_view trim_front(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == '\0' || s[i] == '\x1e' || s[i] == ' ' || s[i] == '\t')) ++i;
  return s.substr(i);
}

std::string_view Arena::put(std::string_view bytes) {
  char* dst = reserve(bytes.size());
  if (!bytes.empty()) std::memcpy(dst, bytes.data(), bytes.size());
  return {dst, bytes.size()};
}

char* Arena::reserve(std::size_t size) {
  while (block_ < blocks_.size() && sizes_[block_] - used_ < size) {
    ++block_;
    used_ = 0;
  }
  if (block_ == blocks_.size()) {
    const std::size_t block_size = size > (64u << 10) ? size : (64u << 10);
    blocks_.push_back(std::make_unique<char[]>(block_size));
    sizes_.push_back(block_size);
    used_ = 0;
  }
  char* dst = blocks_[block_].get() + used_;
  used_ += size;
  return dst;
}

namespace {

std::string_view first_present(std::initializer_list<const std::optional<std::string_view>*> candidates,
                               std::string_view otherwise = "unknown") {
  for (const auto* c : candidates) {
    if (c->has_value() && !(*c)->empty()) return **c;
  }
  return otherwise;
}

}  // namespace

void classify(const EventFields& f, LineOutput& out) {
  // A request's protocol (`HTTP/1.1`, Debug-quoted in text) is never the CP's version: the
  // relevance test turns such a field away unread (line_parser.h), so it is not build info on a
  // line that is read for another reason either.
  const bool protocol = f.version && (f.version->starts_with("HTTP/") || f.version->starts_with("\"HTTP/"));
  if (f.version && !f.version->empty() && !protocol) {
    out.build_info = BuildInfoFields{*f.version, f.git_commit.value_or(std::string_view{})};
  }
  if (!f.message) return;
  if (*f.message == kReportReceived) {
    const std::optional<std::string_view>& event = f.event ? f.event : f.report_event;
    if (!event) return;
    if (*event == "compliance-failure" || *event == "ComplianceFailure") {
      Event e;
      e.kind = EventKind::compliance_failure;
      e.control_id = first_present({&f.control_id, &f.details_control_id, &f.report_control_id});
      e.host = first_present({&f.hostname, &f.details_hostname, &f.report_hostname});
      e.event_id = first_present({&f.event_id, &f.report_event_id}, {});
      out.events.push_back(e);
    } else if (*event == "runtime-gate-error" || *event == "RuntimeGateError") {
      Event e;
      e.kind = EventKind::runtime_gate_error;
      e.event_id = first_present({&f.event_id, &f.report_event_id}, {});
      out.events.push_back(e);
    }
  } else if (*f.message == kGateHeld) {
    Event e;
    e.kind = EventKind::gate_block;
    e.gate = first_present({&f.gate});
    e.host = first_present({&f.hostname, &f.host}, {});
    out.events.push_back(e);
  }
}

}  // namespace parsers
}  // namespace nle
