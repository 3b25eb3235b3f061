// Counters sampled at every step of log time, rendered as one OpenMetrics text with a timestamp
// on each sample: history to backfill into Prometheus (`replay --step`,
// `promtool tsdb create-blocks-from openmetrics`). Knows snapshots and the exposition format;
// not lines, files or clocks: the caller says which boundary each snapshot belongs to.
//
// OpenMetrics wants every family contiguous and every series' samples contiguous and in time
// order, while a log arrives in time order for all series at once. So the sampler keeps only
// each series' changes (a step at which its value differs from the step before) in a
// StepPointStore, which the caller may put on disk; rendering reads the store back in as few
// passes as a memory budget allows and fills in the steps between changes. Memory is bounded by
// the number of series and the budget, never by the number of lines or steps.
// Not thread-safe: one owner.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/snapshot.h"

namespace nle {

// A series' value from step `step` on (until its next point).
struct StepPoint {
  std::uint32_t series = 0;
  std::uint32_t step = 0;
  double value = 0;
};

// Where points wait between sampling and rendering. Errors are values: false, with error() set.
class StepPointStore {
 public:
  virtual ~StepPointStore() = default;
  virtual bool append(std::span<const StepPoint> points) = 0;
  // Hands every point appended so far to `visit`, in the order appended, in pieces of any size.
  // May be called several times.
  virtual bool read(const std::function<void(std::span<const StepPoint>)>& visit) = 0;
  virtual const std::string& error() const = 0;
};

// Keeps the points in memory (tests, small runs).
class MemoryStepPointStore final : public StepPointStore {
 public:
  bool append(std::span<const StepPoint> points) override;
  bool read(const std::function<void(std::span<const StepPoint>)>& visit) override;
  const std::string& error() const override { return error_; }

 private:
  std::vector<StepPoint> points_;
  std::string error_;
};

struct StepSamplerOptions {
  std::int64_t step_micros = 60'000'000;
  // Points held in memory at once while rendering (16 bytes each); more means more passes over
  // the store, never more memory.
  std::size_t render_budget_points = std::size_t{4} << 20;
  // Labels added to every series, such as the `job` and `instance` Prometheus gives the scraped
  // ones (so that rules and dashboards select the history too): names valid (check_extra_label())
  // and none a family's own label.
  std::vector<std::pair<std::string, std::string>> extra_labels;
};

class StepSampler {
 public:
  StepSampler(StepSamplerOptions options, StepPointStore& store);
  ~StepSampler();
  StepSampler(const StepSampler&) = delete;
  StepSampler& operator=(const StepSampler&) = delete;

  // The counters' values at `boundary_micros`, a multiple of the step later than any boundary
  // sampled before; the steps skipped since the last call had the values of that call. Gauge
  // families are ignored. A series first seen here starts at this boundary. Returns false when
  // the store failed (see error()); the sampler is then done.
  bool sample(std::int64_t boundary_micros, const Snapshot& counters);

  // The OpenMetrics text: every family seen (HELP and TYPE even without series), every series at
  // every step from its first boundary to the last boundary sampled, timestamps in seconds,
  // then `# EOF`. Written in pieces through `write`. False when the store failed.
  bool render(const std::function<void(std::string_view)>& write);

  // Boundaries sampled so far: the first and the last (valid when steps() > 0), and how many
  // steps lie between them, both included.
  std::int64_t first_boundary() const;
  std::int64_t last_boundary() const;
  std::uint64_t steps() const;
  const std::string& error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Why `name`=`value` cannot be a label added to every series: "" when it can. A Prometheus label
// name ([a-zA-Z_][a-zA-Z0-9_]*, not the reserved __ prefix) and a value that is valid UTF-8 and not
// empty (an empty value is no label to Prometheus).
std::string check_extra_label(std::string_view name, std::string_view value);

// Unix seconds of a microsecond time as OpenMetrics writes a timestamp: "1795162440",
// "1795162443.5112".
std::string format_timestamp_seconds(std::int64_t micros);

}  // namespace nle
