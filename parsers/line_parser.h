// Turns one log line (bytes, no newline) into what it means for the counters: events, build info,
// or a reason it was skipped. Pure: no I/O, no clocks, no counters. Every shape of
// shared/LOG-FORMAT.md is detected per line unless a format is forced.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "parsers/event.h"
#include "parsers/timestamp.h"

namespace nle {

enum class InputFormat : std::uint8_t {
  auto_detect,  // any shape below, decided line by line
  json,         // tracing JSON, nested or flattened
  text,         // tracing fmt text, with or without ANSI colours, raw or behind a syslog prefix
  journald,     // `journalctl -o json` / `-o json-seq` records; MESSAGE holds any of the above
};

// "auto", "json", "text", "journald" -> the format; anything else -> nullopt.
std::optional<InputFormat> parse_input_format(std::string_view name);

// What one line meant. Views live until the parser's next parse() call.
struct ParseResult {
  std::span<const Event> events;                 // usually empty; several for a journald entry
                                                 // that carries MESSAGE more than once
  std::optional<BuildInfoFields> build_info;     // the line carried `version` / `git_commit`
  std::optional<SkipReason> skipped;             // set when the line could not be read
  std::string_view journal_cursor;               // `__CURSOR` of a journald JSON record
};

// Cheap test, no parse: can this line hold an event or build info? False means parse() would
// return an empty result unless the parser holds_record(). True lines need parse(). Relevant:
// a GateBlock message; a `report received` message in text (whose fields may go on in the
// record's continuation lines); a tracing JSON `"message":"report received"` only together with a
// counting `event` value spelled out (`compliance-failure`, `ComplianceFailure`,
// `runtime-gate-error`, `RuntimeGateError`), since a JSON line is a whole record; a
// `version` field name (not `agent_version`) whose value is not a request's `HTTP/...`; journald's
// elided MESSAGE, or a byte array spelling one of these in a JSON object's line. A line that is
// not relevant is not read at all, so it is never counted as skipped either, whatever it holds.
bool may_be_relevant(std::string_view line);

// Every line may_be_relevant() accepts contains at least one of these byte strings at a place
// where needle_occurrence_counts() holds, so a scanner may skip lines holding none (while the
// parser does not hold a record) without changing any result. Kept beside may_be_relevant() so
// the two cannot drift apart.
std::span<const std::string_view> relevance_needles();

// `needle` (one of relevance_needles()) sits at `at` in `bytes`, a line or a block of lines: does
// this occurrence make its line a candidate? `version` must be a field name whose value is not
// `HTTP/...` (tower-http's request spans); `report received` must not be a tracing JSON message
// (the counting values are needles of their own); every other needle counts wherever it sits.
// Reads the bytes around the needle, never past a "\n" or outside `bytes`.
bool needle_occurrence_counts(std::string_view bytes, std::size_t at, std::string_view needle);
// Does an occurrence of `needle` where needle_occurrence_counts() holds make may_be_relevant()
// true by itself? So for `version`, `report received`, the gate-held message and the elided
// MESSAGE; not for a counting value (a JSON line needs its message too).
bool needle_makes_relevant(std::string_view needle);
// The same, in a line that is a JSON object (trimmed, it begins with '{') and holds a '[': the
// needles spelled as journald's byte arrays.
bool needle_makes_json_object_relevant(std::string_view needle);
// Is `line` a JSON object (trimmed, it begins with '{') holding a '[', where a byte array may be?
bool may_hold_byte_array(std::string_view line);

// Whether needle_occurrence_counts() may say no for `needle` (else it counts wherever it sits).
bool needle_counts_only_somewhere(std::string_view needle);

// The `__CURSOR` of a journald JSON record, found without parsing the line ("" if none). For
// remembering where a `journalctl -o json` pipe got to, on every line, relevant or not.
std::string_view find_journal_cursor(std::string_view line);

// Parses lines one at a time. Reuses its buffers, so after warm-up a line costs no allocation.
// Not thread-safe: use one parser per thread.
class LineParser {
 public:
  explicit LineParser(InputFormat format = InputFormat::auto_detect);
  ~LineParser();
  LineParser(const LineParser&) = delete;
  LineParser& operator=(const LineParser&) = delete;
  LineParser(LineParser&&) noexcept;
  LineParser& operator=(LineParser&&) noexcept;

  // A text record may span lines: a value with an embedded newline continues on the next
  // lines (journald even stores each as its own entry). So a text line is held until the next
  // line shows whether it continues; parse() then returns the completed record's events along
  // with whatever the new line completes itself (a JSON line is complete at once).
  // `logged_at`: when the transport says the line was logged (the native journal entry's
  // __REALTIME_TIMESTAMP), for events whose line carries no time of its own; a journald JSON
  // record's own __REALTIME_TIMESTAMP is read from the record.
  const ParseResult& parse(std::string_view line, std::optional<LogTimeMicros> logged_at = std::nullopt);
  // parse() for a line whose next line starts_text_record(), with no transport time: a text
  // record this line starts can have no continuation, so it is read now instead of held, and the
  // next line is free to take the same path as any other. The same results as parse() on both.
  const ParseResult& parse_before_text_record(std::string_view line);
  // parse() (or parse_before_text_record() when `before_text_record`) for a line the caller knows
  // may_be_relevant() accepts, such as one where a scan found a needle that needle_makes_relevant():
  // the line is not searched for its needles again. The same results.
  const ParseResult& parse_relevant(std::string_view line, bool before_text_record);
  // parse_relevant(line, true) for a plain text record line (parsers::read_plain_text_record())
  // when the format reads text and no record is held: one pass over the line finds its level,
  // message and fields, without parse()'s separate searches for NULs, colours and the level, or
  // its copy of the record. nullptr, having read nothing, for any other line.
  const ParseResult* parse_plain_text_record(std::string_view line);
  // End of input, or the source caught up with its writer: completes a held text record.
  const ParseResult& finish();
  // A text record is held: the next lines must reach parse(), relevant or not.
  bool holds_record() const;

  // Does `line` begin a record rather than continue a held one? For cutting an input into
  // ranges that parse the same as the whole. Leaves no state behind.
  bool starts_record(std::string_view line);
  // Would parse() take `line` as a text record's first line, so that a record held before it is
  // complete? Narrower than starts_record(): false for JSON-looking and blank lines, whose effect
  // on a held record depends on more than the line, and for lines with a NUL. Ends the views of
  // the last result, as parse() does.
  bool starts_text_record(std::string_view line);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle
