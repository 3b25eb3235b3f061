// A strict reader of the two exposition formats as the exporter writes them (no timestamps;
// exemplars in OpenMetrics only, on counters' _total samples, within 128 code points), for the
// exposition fuzz target: what render() writes must read back to exactly the
// snapshot's series. Stricter than Prometheus where that costs nothing: every sample belongs to the
// family of the TYPE line before it, no series twice, every label value valid UTF-8.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/exposition.h"
#include "exporter/snapshot.h"

namespace nle::fuzz {

// ` # {event_id="..."} 1 1795162652.411481` after a sample's value.
struct ParsedExemplar {
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped, in page order
  double value = 0;
  std::string timestamp;  // as written; "" when there is none
  bool operator==(const ParsedExemplar&) const = default;
};

struct ParsedSample {
  std::string name;  // the sample name: "nixfleet_gate_block_total", "..._created"
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped, in page order
  double value = 0;
  std::optional<ParsedExemplar> exemplar = std::nullopt;
  bool operator==(const ParsedSample& other) const;
};

// The samples of a page in page order, or nullopt with `error` saying which line broke what rule.
std::optional<std::vector<ParsedSample>> parse_exposition_strictly(std::string_view page, ExpositionFormat format,
                                                                   std::string& error);

// What a page rendered from `snapshot` must hold: label values as sanitize_utf8() makes them,
// counters as `_total` (and `_created` and exemplars in OpenMetrics).
std::vector<ParsedSample> expected_samples(const Snapshot& snapshot, ExpositionFormat format);

}  // namespace nle::fuzz
