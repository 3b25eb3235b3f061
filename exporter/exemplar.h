// An OpenMetrics exemplar: the one event that last incremented a counter series, named by a
// label (`event_id` for reports, `host` for gate blocks) so that an alert leads to its log line.
// Plain values and the spec's size rule; knows nothing of parsing, files or HTTP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nle {

// OpenMetrics 1.0: "The combined length of the label names and values of an Exemplar's LabelSet
// MUST NOT exceed 128 UTF-8 character code points."
inline constexpr std::size_t kExemplarMaxCodePoints = 128;

// Its value is always 1 (one event), so only the label and the time are kept.
struct Exemplar {
  std::string label_name;   // "event_id" or "host"
  std::string label_value;  // valid UTF-8, non-empty; name and value within kExemplarMaxCodePoints
  // When the event was logged (its log's time, not when it was read), Unix microseconds;
  // nullopt when the log line had none: OpenMetrics makes the exemplar's timestamp optional.
  std::optional<std::int64_t> timestamp_micros;

  friend bool operator==(const Exemplar&, const Exemplar&) = default;
};

// Whether a label set of this one name and value is within kExemplarMaxCodePoints, counting code
// points as utf8_code_points() (exporter/exposition.h) does. Allocates nothing.
bool exemplar_label_fits(std::string_view name, std::string_view value);

}  // namespace nle
