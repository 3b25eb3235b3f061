// Renders a snapshot as Prometheus text 0.0.4 or OpenMetrics 1.0, and the escaping both need.
// Pure functions of their input; output is deterministic and always valid UTF-8.
#pragma once

#include <string>
#include <string_view>

#include "exporter/snapshot.h"

namespace nle {

enum class ExpositionFormat : unsigned char { prometheus, openmetrics };

inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr std::string_view kOpenMetricsContentType =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct RenderOptions {
  ExpositionFormat format = ExpositionFormat::prometheus;
  bool include_created = false;  // OpenMetrics `_created` samples for counters
};

// OpenMetrics pages carry each counter series' exemplar after its `_total` value
// (`... 3 # {event_id="3b0f"} 1 1795162652.411481`); text 0.0.4 has none, so its pages are the
// same with or without exemplars.
std::string render(const Snapshot& snapshot, const RenderOptions& options);

// Label value escaping, both formats: backslash, double quote, newline.
// Both escapers also sanitize (below) first, so what they return is always valid UTF-8.
std::string escape_label_value(std::string_view value);
// HELP escaping: backslash and newline; OpenMetrics also escapes the double quote.
std::string escape_help(std::string_view help, ExpositionFormat format);
// Replaces every invalid UTF-8 sequence by U+FFFD (maximal-subpart rule, as WHATWG decoders).
std::string sanitize_utf8(std::string_view bytes);
// The same, appended to `out`: allocates nothing when `out` has the capacity (the registry's
// hot path sanitizes into a reused buffer).
void append_sanitized_utf8(std::string& out, std::string_view bytes);
bool is_valid_utf8(std::string_view bytes);
// Code points of sanitize_utf8(bytes) (each invalid sequence one U+FFFD), without building it.
std::size_t utf8_code_points(std::string_view bytes);

}  // namespace nle
