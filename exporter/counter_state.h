// What the registry hands out to be persisted across restarts and takes back on start: counter
// series with their values and creation times, and the build info learned from the log. Plain
// values; knows nothing of files or of how the state is written down (that is state/).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "exporter/exemplar.h"

namespace nle {

// One counter series. `family` is the name without `_total` ("nixfleet_gate_block"), as in
// Family::name; label_names and label_values pair up by index and are valid UTF-8.
// `value` is an integer (counters count); a double so that it matches Series::value, which means
// it is exact up to 2^53 -- 9 * 10^15 events or bytes.
struct CounterState {
  std::string family;
  std::vector<std::string> label_names;
  std::vector<std::string> label_values;
  double value = 0;
  double created = 0;  // Unix seconds the series began (OpenMetrics `_created`)
  std::optional<Exemplar> exemplar = std::nullopt;  // the latest event counted, as served (Series::exemplar)

  friend bool operator==(const CounterState&, const CounterState&) = default;
};

// The CP's build info as learned from its log (never the --cp-version/--cp-git-commit overrides),
// with the input position it was learned at: the highest order wins.
struct BuildInfoState {
  std::string version;
  std::string git_commit;
  std::uint64_t order = 0;

  friend bool operator==(const BuildInfoState&, const BuildInfoState&) = default;
};

}  // namespace nle
