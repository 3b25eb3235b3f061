// The one place a line becomes counts: parser -> registry. Replay and follow both feed lines
// through a LineIngester, so the two modes cannot disagree on what a line means.
// Not thread-safe: one per thread, each with its own registry (or under the caller's lock).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cmd/commands.h"
#include "exporter/registry.h"
#include "parsers/candidate_screen.h"
#include "parsers/line_parser.h"

namespace nle {

// The registry every mode counts into: the flags' limits and overrides, the exporter's version.
RegistryOptions registry_options(const IngestConfig& config);

class LineIngester {
 public:
  LineIngester(InputFormat format, Registry& registry)
      : parser_(format), registry_(&registry), screen_(format), screening_(true) {}

  // One complete line, newline removed. `order` ranks build-info lines: the highest wins. A line
  // holding no relevance needle, or turned away by the candidate screen, is only counted (as in
  // lines(), so follow and replay take the same stages); the reference path parses every line.
  // `logged_at`: the transport's time for the line (a journal entry's), for exemplars of events
  // whose line carries no time (LineParser::parse).
  void line(std::string_view line, std::uint64_t order, std::optional<LogTimeMicros> logged_at = std::nullopt);
  // A run of whole lines, each ending in "\n" (a "\r" before it is chomped), that starts at byte
  // `offset` of an input whose line orders are `order_base + offset just past the line`. Counts
  // exactly as line() / oversize_line() for each line would, but only lines that may matter reach
  // the parser: the candidate scan (parsers/candidate_scan.h) finds the lines that hold a needle
  // without visiting the others, and the candidate screen (parsers/candidate_screen.h) turns away
  // candidates it proves the parser would make nothing of. Skipped lines are only counted.
  void lines(std::string_view block, std::uint64_t order_base, std::uint64_t offset, std::size_t max_line_bytes);
  // End of input, or the source caught up with its writer: a held multi-line record is complete.
  void end_of_input(std::uint64_t order);
  // A line over --max-line-bytes, already dropped by the splitter.
  void oversize_line(std::uint64_t bytes_without_newline);
  // Adds the bytes a source consumed (newlines included) to bytes_read.
  void bytes(std::uint64_t n) { pending_bytes_ += n; }
  // Moves the line and byte counts gathered so far into the registry.
  void flush();

  void set_registry(Registry& registry) { registry_ = &registry; }
  // Turns the candidate screen off: for the benchmark's per-stage figures.
  void disable_screen() { screening_ = false; }
  // Every line to the parser, through neither the scan nor the screen: the design before them,
  // which the differential tests compare the fast path with.
  void use_reference_path() { reference_ = true, screening_ = false; }
  // What the stages of lines() did so far: candidates the scan found (lines after a held record
  // not included) and how many of them the screen turned away. For the benchmark.
  std::uint64_t candidates() const { return candidates_; }
  std::uint64_t screened_out() const { return screened_out_; }
  // A multi-line text record is held, not yet counted (see LineParser::holds_record).
  bool holds_record() const { return parser_.holds_record(); }
  // CP events and build info lines counted so far: unchanged, the CP's series are unchanged.
  std::uint64_t records() const { return records_; }

 private:
  void record(const ParseResult& result, std::uint64_t order);
  // Keeps a copy of `event` in the batch (its values too: the parser's buffers are reused by the
  // next line), counting the batch first when it is full; false when its values do not fit.
  bool batch(const Event& event);
  void record_batched();

  // Within lines(), events wait here and are counted together (Registry::record(span)), so that
  // the memory loads of their series overlap; counted, in input order, before any event that
  // does not fit and before lines() returns.
  static constexpr std::size_t kBatchEvents = 16;
  static constexpr std::size_t kBatchedValueBytes = 240;  // a report's ids and host, with room
  std::array<Event, kBatchEvents> batch_{};
  std::array<std::array<char, kBatchedValueBytes>, kBatchEvents> batch_values_{};  // batch_[i]'s
  std::size_t batched_ = 0;
  bool in_lines_ = false;

  LineParser parser_;
  Registry* registry_;
  CandidateScreen screen_;
  bool screening_;
  bool reference_ = false;
  std::uint64_t candidates_ = 0;
  std::uint64_t screened_out_ = 0;
  std::uint64_t pending_lines_ = 0;
  std::uint64_t pending_bytes_ = 0;
  std::uint64_t records_ = 0;
};

}  // namespace nle
