// The vocabulary that flows from the parsers to the registry: one counted event, the build info
// a line may carry, and why a line was skipped. Plain data; knows nothing of counters or I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace nle {

enum class EventKind : std::uint8_t { compliance_failure, runtime_gate_error, gate_block };
inline constexpr std::size_t kEventKindCount = 3;

// "compliance_failure", "runtime_gate_error", "gate_block": the `kind` label of self-metrics.
std::string_view event_kind_name(EventKind kind);

// One event that counts. Views point into the parsed line or the parser's scratch space and stay
// valid until that parser's next parse() call.
struct Event {
  EventKind kind = EventKind::runtime_gate_error;
  std::string_view control_id;  // compliance_failure: the control, "unknown" when the line has none
  // compliance_failure: the reporting host, "unknown" when absent (a label). gate_block: the
  // line's `hostname` (else `host`) field, empty when it has none (an exemplar, never a label).
  std::string_view host;
  std::string_view gate;        // gate_block: the gate kind
  // What names this one event for an exemplar (exporter/exemplar.h); found only on lines that count.
  std::string_view event_id;    // reports: the CP's `event_id`, empty when the line has none
  // When it was logged, in Unix microseconds: the CP line's own time, else the journal entry's
  // __REALTIME_TIMESTAMP (a journald JSON record's, or the time LineParser::parse was given);
  // nullopt when there is neither.
  std::optional<std::int64_t> log_time_micros;
};

// `version` / `git_commit` fields seen on a CP line (a startup line, say). A field the line
// lacks is empty.
struct BuildInfoFields {
  std::string_view version;
  std::string_view git_commit;
};

// Why a line that might have held an event was not read. The order is the label order.
enum class SkipReason : std::uint8_t {
  invalid_json,   // looked like JSON (tracing or journald) and did not parse
  invalid_utf8,   // JSON that is not UTF-8, which no CP or journald writes
  nul_byte,       // a NUL byte inside the line: a crash's hole in the file
  oversize,       // longer than --max-line-bytes; dropped without being buffered
  unrecognised,   // mentions an event's message but is no shape the contract describes
  message_elided, // journald printed MESSAGE as null (journalctl elides big fields without --all)
};
inline constexpr std::size_t kSkipReasonCount = 6;

// "invalid_json", ...: the `reason` label of nixfleet_log_exporter_lines_skipped_total.
std::string_view skip_reason_name(SkipReason reason);

}  // namespace nle
