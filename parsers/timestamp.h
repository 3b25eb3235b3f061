// When a log line says it was logged: the time from the line itself, for replaying a log into
// history (`replay --step`). Pure: no I/O, no clock. Knows the shapes of shared/LOG-FORMAT.md,
// not what the line means for the counters (that is LineParser's job).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace nle {

// Unix time in microseconds (the precision of tracing's timestamps and of journald's).
using LogTimeMicros = std::int64_t;

// The time a line was logged, or nullopt when it carries none (a continuation line, `journalctl
// -o cat` of a CP that logs without time, a syslog prefix with no year and nothing behind it).
//   journald JSON (`-o json`, `-o json-seq`)  "__REALTIME_TIMESTAMP":"<microseconds>"
//   tracing JSON, nested or flattened       "timestamp":"<RFC 3339>" (the first such member)
//   tracing text, ANSI colours or not        <RFC 3339> at the start of the line
//   behind `journalctl -o short`'s prefix    the CP line's own time (the prefix has no year);
//                                            `-o short-iso` starts with an RFC 3339 time itself
// RFC 3339 here: YYYY-MM-DD, `T` or a space, hh:mm:ss, an optional fraction (digits past the
// microsecond are dropped), then `Z` or an offset `+hh:mm` / `+hhmm` (none: UTC).
std::optional<LogTimeMicros> line_timestamp(std::string_view line);

// An RFC 3339 time at the start of `text` (as above); nullopt when `text` does not begin with one.
std::optional<LogTimeMicros> parse_rfc3339_prefix(std::string_view text);

}  // namespace nle
