// A point-in-time copy of every metric family: what the registry hands out and the exposition
// renders. Plain values, safe to pass between threads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "exporter/exemplar.h"

namespace nle {

enum class MetricType : unsigned char { counter, gauge };

struct Series {
  std::vector<std::string> label_values;  // same order as Family::label_names, valid UTF-8
  double value = 0;
  double created = 0;  // counters: Unix seconds the series began (OpenMetrics `_created`)
  // The CP's counters: the latest event counted, if it can be named (OpenMetrics pages only).
  std::optional<Exemplar> exemplar = std::nullopt;
};

struct Family {
  std::string name;  // counters without the `_total` suffix: "nixfleet_gate_block"
  std::string help;
  MetricType type = MetricType::counter;
  std::vector<std::string> label_names;  // sorted
  std::vector<Series> series;            // sorted by label values
};

using Snapshot = std::vector<Family>;  // sorted by name

}  // namespace nle
