// Owns the counters: the CP's event counters, the build info series and the exporter's own
// self-metrics, and hands out sorted snapshots. Knows nothing of parsing, files or HTTP.
// Not thread-safe: one owner at a time (a mutex in cmd/ for follow, one registry per thread and
// merge() for parallel replay).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/counter_state.h"
#include "exporter/snapshot.h"
#include "parsers/event.h"

namespace nle {

// The smallest label value cap: room for a truncated value's marker and some of its prefix.
inline constexpr std::size_t kMinMaxLabelBytes = 64;

struct RegistryOptions {
  std::size_t max_series_per_family = 10000;  // new label sets beyond this are refused and counted
  // Label values longer than this many bytes (as UTF-8) are truncated (see Registry); below
  // kMinMaxLabelBytes counts as kMinMaxLabelBytes.
  std::size_t max_label_bytes = 256;
  std::optional<std::string> cp_version;      // --cp-version: wins over the log
  std::optional<std::string> cp_git_commit;   // --cp-git-commit: wins over the log
  // nixfleet_log_exporter_build_info's labels, as `--version` prints them ("unknown" when empty).
  std::string exporter_version = "unknown";
  std::string exporter_revision = "unknown";
  std::string exporter_branch = "unknown";
  std::string exporter_compiler = "unknown";  // what Go exporters call goversion: "GNU 12.2.0"
  std::string exporter_platform = "unknown";  // "linux/x86_64"
  std::function<double()> clock;              // Unix seconds for `_created`; empty: system clock
};

// Self-metric counters that are not tied to a parsed line; the label, where the family has one,
// is given with the increment.
enum class SelfCounter : std::uint8_t {
  truncations,    // nixfleet_log_exporter_truncations_total
  rotations,      // nixfleet_log_exporter_rotations_total
  read_errors,    // nixfleet_log_exporter_read_errors_total{reason}
  http_requests,  // nixfleet_log_exporter_http_requests_total{code}
};

enum class SelfGauge : std::uint8_t {
  files_watched,  // nixfleet_log_exporter_files_watched
};

// What a snapshot holds: every family, always, even one without series yet (a HELP and TYPE
// alone is valid in both formats, and promtool accepts it). Present from the start at 0: the
// runtime gate error counter, the six known gates, events{kind} and lines_skipped{reason} for
// every kind and reason, lines_read, bytes_read, truncations, rotations and files_watched; both
// build infos are always 1. Appearing with their first count: compliance failures, other gates,
// read_errors{reason}, http_requests{code}, series_dropped{family} and
// label_values_truncated{label}. One family is left out of snapshots until its first count, HELP
// and TYPE included, so that pages of logs without such an event stay as they were:
// exemplars_dropped{family}.
// The cap refuses new label sets in the families labelled by values from outside (compliance
// failures, gate blocks, read_errors, http_requests); series present from the start count towards
// it but are never refused. Each refused count adds to series_dropped{family="<name>_total"}.
//
// Label values are bounded too, so that the registry's memory and the page's size are bounded by
// the flags whatever the log holds (max_series_per_family x max_label_bytes per family): a value
// longer than max_label_bytes (after invalid UTF-8 became U+FFFD) is replaced by
// truncate_label_value()'s bounded, marked form, and each such value counted adds to
// label_values_truncated{label}. The event still counts, so family totals stay exact; distinct long
// values stay distinct series (the marker holds a hash of the whole value), under the series cap
// like any other. Logged build info values are bounded the same way; restored ones are bounded
// without being counted again.
class Registry {
 public:
  explicit Registry(RegistryOptions options = {});
  ~Registry();
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;

  // Counts one CP event. Label values are bytes as logged; invalid UTF-8 becomes U+FFFD.
  // Exemplars: each series of the CP's three families holds one for the latest event counted in
  // it (input order, not log time): label `event_id` (reports) or `host` (gate blocks), the event's
  // log time. An event that cannot be named leaves its series with none, since an older one would
  // name the wrong event: no event_id or host on the line (not counted), or a label set over
  // kExemplarMaxCodePoints (counted in exemplars_dropped{family="<name>_total"}, once per event).
  // Held exemplars are thus bounded by the same limit.
  void record(const Event& event);
  // Starts loading what record(event) will read (its series' index slot), so that a later
  // record(events) holding it waits less on memory. Changes no count; not required.
  void prefetch(const Event& event) const;
  // record(event) for each event, in order, with the loads of the whole batch overlapped: for
  // replay, where the events of many lines are at hand before any is counted.
  void record(std::span<const Event> events);
  // A CP line carried build info; `order` is its position in the input (the highest wins, a tie
  // goes to the later call). Flags given in RegistryOptions still win.
  void record_build_info(const BuildInfoFields& fields, std::uint64_t order);

  void add_lines_read(std::uint64_t lines, std::uint64_t bytes);
  void add_skipped(SkipReason reason, std::uint64_t n = 1);
  void add_self(SelfCounter counter, std::string_view label = {}, std::uint64_t n = 1);
  void set_self(SelfGauge gauge, double value);

  // Adds every count of `other` into this one (parallel replay); build info by order. `other` is
  // taken to have read the input after this one: a series it counted takes its exemplar (or its
  // lack of one), so merging ranges in input order keeps the latest event's.
  void merge(const Registry& other);

  Snapshot snapshot() const;

  // The state to persist across a restart: every counter series (the CP's families and the
  // exporter's own counters; not the gauges, not nixfleet_cp_build_info) with its value,
  // created time and exemplar, sorted by family then label values.
  std::vector<CounterState> export_counters() const;
  // The build info learned from the log, if any (the flag overrides are configuration, not state).
  std::optional<BuildInfoState> export_build_info() const;
  // Sets the counters to saved values (a restart; meant for a fresh registry, before any line).
  // Each saved series is set, not added to, with its saved created time and exemplar (a saved
  // exemplar record() would not have made is left out, not counted); series not in the list
  // keep theirs. A saved series is not restored when its family is unknown, its label names are
  // not the family's (in any order), a label value is empty, or its value is negative or not a
  // number; and when it is a new label set beyond the family's series cap, in which case its value
  // is added to series_dropped{family} (after the saved series_dropped itself has been set).
  // Returns how many saved series were not restored, for all of these reasons together.
  // The build info goes through the same rule as record_build_info: the caller numbers the lines
  // of the new run after build_info->order, or the saved build info outranks the new lines.
  std::size_t restore(const std::vector<CounterState>& counters, const std::optional<BuildInfoState>& build_info);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The bounded form of a label value longer than `max_bytes` (at least kMinMaxLabelBytes): the
// longest prefix of its UTF-8 (invalid bytes as U+FFFD) that ends on a whole character, then the
// marker "…[truncated:HHHHHHHHHHHHHHHH]" with the FNV-1a 64 hash of all the original bytes; at
// most `max_bytes` long, valid UTF-8. Pure.
std::string truncate_label_value(std::string_view value, std::size_t max_bytes);

}  // namespace nle
