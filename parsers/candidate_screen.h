// Stage two of replay's fast path, between the candidate scan (candidate_scan.h) and the parser:
// a cheap look at one candidate line that proves, for the common shapes that never count, that
// the parser would make nothing of it, so simdjson never runs on it. Knows no files, no counters
// and no parser state; says "parse" whenever it is not sure.
//
// What it turns away, all of them tracing JSON lines (nested `fields` or flattened) that start
// the way tracing-subscriber writes them (`{"timestamp":"...","level":"..."`) with a plain
// message: a message other than the two event messages, with no `version` key outside the span
// metadata (tower-http's request spans say `"version":"HTTP/1.1"`, LOG-FORMAT section 4 takes
// build info only from the event's own fields); and a `report received` whose line spells no
// counting event value anywhere outside its spans (activation-*, stale-target, ...). From the
// message to the span tail the line must be strict JSON as tracing writes it (scalar values,
// simple escapes, no control bytes, no blanks, valid UTF-8) with no key the parser acts on
// (`version`, a second `fields`, journald's `MESSAGE`, `__CURSOR`); the span tail is proven to be
// span metadata only by an anchored RE2 pattern of tracing's `"span"`/`"spans"` records. So a
// line the screen turns away is one simdjson reads without error: no invalid_json or
// invalid_utf8 skip is lost. Everything else (escapes such as `\u`, truncated or garbled lines,
// nested values, other tails) goes to the parser.
//
// Text lines (tracing's fmt, plain or coloured), only when the next line is known: a text record
// may continue on the next lines, so a line is turned away only if the next one starts a record
// of its own (the parser would then read this one alone). It must spell neither event message,
// and every ` version=` on it must sit inside span braces (`request{... version=HTTP/1.1}:`),
// as the text reader takes build info only outside them. Or it is a `report received` that
// cannot count: no counting event value spelled anywhere on it (`ompliance`, `untime`), no `\`
// (an escape could spell one), no gate message, and ` version=` only inside span braces before
// the message (after it, every field is read).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "parsers/line_parser.h"

namespace nle {

enum class ScreenVerdict : std::uint8_t {
  parse,         // the parser must see the line
  not_an_event,  // neither event message, and no build info outside the spans
  quiet_report,  // `report received` with no counting event value on the line
  text_no_event, // a text record of one line, neither event message, no build info outside spans
  text_quiet_report,  // a text record of one line, `report received` with no counting event
                      // value, no escapes, no gate message, no build info the reader would take
};

// Not thread-safe: one per thread. It keeps a small cache of span tails already proven by RE2
// (tower-http's spans repeat line after line); the RE2 patterns are built once and shared
// read-only by every screen.
class CandidateScreen {
 public:
  // Screens the lines the parser would read in `format`: JSON lines for auto and json, text
  // lines for auto and text; everything else is "parse".
  explicit CandidateScreen(InputFormat format = InputFormat::auto_detect);
  ~CandidateScreen();
  CandidateScreen(const CandidateScreen&) = delete;
  CandidateScreen& operator=(const CandidateScreen&) = delete;
  CandidateScreen(CandidateScreen&&) noexcept;
  CandidateScreen& operator=(CandidateScreen&&) noexcept;

  // `line` has no newline ("\r" chomped) and comes while the parser holds no text record;
  // `next` is the line after it, if it is known and will reach the parser next (not oversize).
  // Anything but `parse` means LineParser::parse(line), and then whatever parse(next) adds for
  // `line`, would give no event, no build info and no skip reason.
  // `line_was_next`: `line` is the `next` of the previous call, the same bytes where they were
  // then; what that call read of it is not read again.
  ScreenVerdict screen(std::string_view line, const std::string_view* next = nullptr, bool line_was_next = false);
  // After screen(line, &next): LineParser::starts_text_record(next), when screen() read that far
  // (a text `line` it did not turn away for a reason of its own); nullopt otherwise. Spares the
  // caller reading `next` again to learn whether `line` is a record alone.
  std::optional<bool> next_starts_text_record() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// For tests: the byte pass of screen() with each kernel this CPU can run ("avx2", "sse2",
// "scalar"; an unknown name runs the scalar one). Every kernel must agree on every line.
struct ScreenFacts {
  bool forbidden = false;    // a token that makes the line need the parser, in [from, limit)
  bool control = false;     // a byte below 0x20 (invalid inside JSON strings, unusual outside)
  bool non_ascii = false;   // a byte of 0x80 or more: UTF-8 must be checked
  long braces = 0;           // count of '{' minus count of '}'
  long brackets = 0;         // count of '[' minus count of ']'
};
std::span<const std::string_view> screen_facts_kernels();
ScreenFacts screen_facts(std::string_view kernel, std::string_view line, std::size_t from, std::size_t limit,
                         bool report);

}  // namespace nle
