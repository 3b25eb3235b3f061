// `replay`: read inputs to their end, print the counters, exit. A large plain file is cut into
// newline-aligned ranges read in parallel, each thread with its own parser and registry, merged
// at the end; compressed files and stdin are read in one stream. With --step every input is read
// in one stream, in order, line by line, and the CP's counters are sampled each time the log's
// own time passes a step boundary (exporter/step_sampler.h keeps and renders the samples).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cmd/commands.h"
#include "cmd/ingest.h"
#include "cmd/progress.h"
#include "exporter/registry.h"
#include "exporter/step_sampler.h"
#include "parsers/timestamp.h"
#include "source/byte_reader.h"
#include "source/line_splitter.h"

namespace nle {
namespace {

// Reads of 256 KiB stay in a core's L2 cache between the copy out of the page cache and the scan.
constexpr std::size_t kReadChunk = 256 << 10;
// Below this a file is not worth the threads' start-up and merge.
constexpr std::uint64_t kParallelMinBytes = 64ull << 20;

// Test hooks, read from the environment so the differential tests can drive the real binary
// (they are not flags: nothing a user should tune). NLE_REPLAY_REFERENCE=1 feeds every line
// through the LineSplitter and the parser (the slow, obviously correct path);
// NLE_REPLAY_READ_BYTES=N reads N bytes at a time (tiny values make lines straddle reads);
// NLE_REPLAY_PARALLEL_MIN_BYTES=N cuts files of N bytes or more into ranges; NLE_REPLAY_SCREEN=0
// turns the candidate screen off (scan, then parse every candidate); NLE_REPLAY_STAGE_COUNTS=1
// prints how many lines each stage passed on (for bench/).
struct ReplayTuning {
  bool reference = false;
  bool screen = true;
  bool stage_counts = false;
  std::size_t read_bytes = kReadChunk;
  std::uint64_t parallel_min_bytes = kParallelMinBytes;
};

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(value, &end, 10);
  return end != nullptr && *end == '\0' && n > 0 ? n : fallback;
}

const ReplayTuning& tuning() {
  static const ReplayTuning t = [] {
    ReplayTuning r;
    r.reference = env_number("NLE_REPLAY_REFERENCE", 0) != 0;
    const char* screen = std::getenv("NLE_REPLAY_SCREEN");
    r.screen = screen == nullptr || std::string_view(screen) != "0";
    r.stage_counts = env_number("NLE_REPLAY_STAGE_COUNTS", 0) != 0;
    r.read_bytes = static_cast<std::size_t>(std::min<std::uint64_t>(env_number("NLE_REPLAY_READ_BYTES", kReadChunk), 64ull << 20));
    r.parallel_min_bytes = env_number("NLE_REPLAY_PARALLEL_MIN_BYTES", kParallelMinBytes);
    return r;
  }();
  return t;
}

// Lines each stage of the fast path passed on, summed over every ingester (NLE_REPLAY_STAGE_COUNTS).
std::atomic<std::uint64_t> g_candidates{0};
std::atomic<std::uint64_t> g_screened_out{0};

LineIngester make_ingester(InputFormat format, Registry& registry) {
  LineIngester ingester(format, registry);
  if (tuning().reference) ingester.use_reference_path();
  if (!tuning().screen) ingester.disable_screen();
  return ingester;
}

void add_stage_counts(const LineIngester& ingester) {
  g_candidates += ingester.candidates();
  g_screened_out += ingester.screened_out();
}

// Turns the bytes of one input, read in pieces of any size, into a LineIngester's lines. The
// complete lines of each piece go to LineIngester::lines() in one block (the candidate scan);
// a line cut by the end of a piece goes through a LineSplitter, which holds, bounds, chomps
// and reports it exactly as the reference path does. In reference mode every byte goes
// through the splitter and every line to the parser. Offsets are the input's own.
class LineFeeder {
 public:
  LineFeeder(LineIngester& ingester, std::size_t max_line_bytes, std::uint64_t order_base, std::uint64_t start)
      : ingester_(ingester), splitter_(max_line_bytes), order_base_(order_base) {
    splitter_.reset(start);
  }

  void feed(std::string_view data) {
    ingester_.bytes(data.size());
    auto on_line = [this](std::string_view line) { ingester_.line(line, order_base_ + splitter_.complete_offset()); };
    auto on_oversize = [this](std::uint64_t bytes) { ingester_.oversize_line(bytes); };
    if (tuning().reference) return splitter_.feed(data, on_line, on_oversize);
    std::size_t pos = 0;
    if (splitter_.fed_offset() != splitter_.complete_offset()) {
      // The end of a line begun in an earlier piece.
      const void* nl = std::memchr(data.data(), '\n', data.size());
      if (nl == nullptr) return splitter_.feed(data, on_line, on_oversize);
      pos = static_cast<std::size_t>(static_cast<const char*>(nl) - data.data()) + 1;
      splitter_.feed(data.substr(0, pos), on_line, on_oversize);
    }
    const std::uint64_t offset = splitter_.complete_offset();
    const void* last = ::memrchr(data.data() + pos, '\n', data.size() - pos);
    std::size_t end = pos;
    if (last != nullptr) {
      end = static_cast<std::size_t>(static_cast<const char*>(last) - data.data()) + 1;
      ingester_.lines(data.substr(pos, end - pos), order_base_, offset, splitter_.max_line_bytes());
    }
    splitter_.reset(offset + (end - pos));
    if (end < data.size()) splitter_.feed(data.substr(end), on_line, on_oversize);
  }

  // End of input: a last line without a newline is a line too. Returns the end offset.
  std::uint64_t finish() {
    splitter_.finish([this](std::string_view line) { ingester_.line(line, order_base_ + splitter_.complete_offset()); },
                     [this](std::uint64_t bytes) { ingester_.oversize_line(bytes); });
    return splitter_.complete_offset();
  }

 private:
  LineIngester& ingester_;
  LineSplitter splitter_;
  std::uint64_t order_base_;
};
// Build-info order: input index in the high bits, byte offset in the low ones.
constexpr int kOrderOffsetBits = 44;

struct RangeResult {
  bool ok = true;
  std::string error;
};

// Reads bytes [begin, end) of a plain file; `end` past the size reads to EOF. The range starts
// at a line start and ends just after a newline (or at EOF).
RangeResult ingest_range(int fd, std::uint64_t begin, std::uint64_t end, std::uint64_t order_base,
                         const IngestConfig& config, LineIngester& ingester, const std::string& path,
                         ProgressMeter& progress) {
  RangeResult result;
  const std::size_t chunk = tuning().read_bytes;
  std::unique_ptr<char[]> buffer(new char[chunk]);
  LineFeeder feeder(ingester, config.max_line_bytes, order_base, begin);
  std::uint64_t offset = begin;
  while (offset < end) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, end - offset));
    const ssize_t got = ::pread(fd, buffer.get(), want, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      result.ok = false;
      result.error = path + ": " + std::strerror(errno);
      return result;
    }
    if (got == 0) break;
    offset += static_cast<std::uint64_t>(got);
    progress.add(static_cast<std::uint64_t>(got));
    feeder.feed(std::string_view(buffer.get(), static_cast<std::size_t>(got)));
  }
  feeder.finish();
  ingester.end_of_input(order_base + offset);
  ingester.flush();
  return result;
}

// The first line start at or after `offset` (just past a newline), or `size` if none.
std::uint64_t next_line_start(int fd, std::uint64_t offset, std::uint64_t size) {
  if (offset == 0) return 0;
  char window[64 << 10];
  std::uint64_t at = offset - 1;  // a newline right before `offset` makes `offset` a line start
  while (at < size) {
    const ssize_t got = ::pread(fd, window, sizeof window, static_cast<off_t>(at));
    if (got <= 0) return size;
    const void* nl = std::memchr(window, '\n', static_cast<std::size_t>(got));
    if (nl != nullptr) return at + static_cast<std::uint64_t>(static_cast<const char*>(nl) - window) + 1;
    at += static_cast<std::uint64_t>(got);
  }
  return size;
}

// The first record start at or after `offset`: a range must not begin on the continuation
// line of a multi-line record, or the two halves would be read as two records. Gives up
// after a bounded search (a pathological run of continuation lines) and cuts there.
std::uint64_t next_record_start(int fd, std::uint64_t offset, std::uint64_t size, LineParser& probe) {
  if (offset == 0) return 0;  // whatever the file begins with is read by the first range
  std::uint64_t at = next_line_start(fd, offset, size);
  char line[4096];
  for (int tries = 0; tries < 10000 && at < size; ++tries) {
    const ssize_t got = ::pread(fd, line, sizeof line, static_cast<off_t>(at));
    if (got <= 0) return size;
    const char* nl = static_cast<const char*>(std::memchr(line, '\n', static_cast<std::size_t>(got)));
    const std::size_t length = nl ? static_cast<std::size_t>(nl - line) : static_cast<std::size_t>(got);
    if (probe.starts_record(std::string_view(line, length))) return at;
    at = next_line_start(fd, at + 1, size);
  }
  return at;
}

// Reads one plain file with `threads` threads; returns false on a read error.
bool ingest_parallel(int fd, std::uint64_t size, unsigned threads, std::uint64_t order_base,
                     const IngestConfig& config, Registry& registry, const std::string& path, ProgressMeter& progress,
                     std::string& error) {
  std::vector<std::uint64_t> starts;
  LineParser probe(config.input_format);
  for (unsigned i = 0; i < threads; ++i) starts.push_back(next_record_start(fd, size / threads * i, size, probe));
  starts.push_back(UINT64_MAX);  // the last range reads on to EOF, should the file have grown

  std::vector<Registry> registries;
  std::vector<RangeResult> results(threads);
  for (unsigned i = 0; i < threads; ++i) registries.emplace_back(registry_options(config));
  {
    std::vector<std::jthread> workers;
    for (unsigned i = 0; i < threads; ++i) {
      if (starts[i] >= starts[i + 1]) continue;
      workers.emplace_back([&, i] {
        LineIngester ingester = make_ingester(config.input_format, registries[i]);
        results[i] = ingest_range(fd, starts[i], starts[i + 1], order_base, config, ingester, path, progress);
        add_stage_counts(ingester);
      });
    }
  }
  bool ok = true;
  for (unsigned i = 0; i < threads; ++i) {
    registry.merge(registries[i]);
    if (!results[i].ok && ok) {
      ok = false;
      error = results[i].error;
    }
  }
  return ok;
}

// Reads one input as a stream (stdin, gzip, small files, and every input with --step) through
// `feeder` (a LineFeeder or a StepFeeder), whose lines go to `ingester`.
template <typename Feeder>
bool ingest_stream(ByteReader& reader, Feeder& feeder, LineIngester& ingester, std::uint64_t order_base,
                   ProgressMeter& progress, std::string& error) {
  const std::size_t chunk = tuning().read_bytes;
  std::unique_ptr<char[]> buffer(new char[chunk]);
  std::uint64_t reported = 0;
  for (;;) {
    const std::optional<std::size_t> got = reader.read(buffer.get(), chunk);
    if (!got) {
      // A corrupt or failing input: what was read before still counts; the partial line at
      // the failure point is not a line we can trust, so it is not finished.
      error = reader.error();
      ingester.flush();
      return false;
    }
    progress.add(reader.input_offset() - reported);
    reported = reader.input_offset();
    if (*got == 0) break;
    feeder.feed(std::string_view(buffer.get(), *got));
  }
  ingester.end_of_input(order_base + feeder.finish());
  ingester.flush();
  return true;
}

// ---------------------------------------------------------------------------------------------
// --step

// The first multiple of `step` at or after `t`.
std::int64_t boundary_at_or_after(std::int64_t t, std::int64_t step) {
  std::int64_t q = t / step;  // rounds towards zero: up for a negative t, down for a positive one
  if (t % step > 0) ++q;
  return q * step;
}

// The CP's counter families: the history a backfill is for. The exporter's own counters describe
// this replay run, not the CP at those times, so they are left out.
Snapshot cp_counters(const Registry& registry) {
  Snapshot all = registry.snapshot();
  Snapshot cp;
  for (Family& family : all) {
    if (family.type == MetricType::counter && family.name.rfind("nixfleet_log_exporter_", 0) != 0) {
      cp.push_back(std::move(family));
    }
  }
  return cp;
}

// Step points in an unlinked temporary file ($TMPDIR, else /tmp), so that a long history costs
// disk, not memory.
class TempFileStepPointStore final : public StepPointStore {
 public:
  TempFileStepPointStore() {
    const char* dir = std::getenv("TMPDIR");
    std::string path = std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/nixfleet-log-exporter-steps-XXXXXX";
    fd_ = ::mkstemp(path.data());
    if (fd_ < 0) {
      error_ = "cannot create a temporary file in " + path.substr(0, path.rfind('/')) + ": " + std::strerror(errno);
      return;
    }
    ::unlink(path.c_str());
  }
  ~TempFileStepPointStore() override {
    if (fd_ >= 0) ::close(fd_);
  }
  TempFileStepPointStore(const TempFileStepPointStore&) = delete;
  TempFileStepPointStore& operator=(const TempFileStepPointStore&) = delete;

  bool append(std::span<const StepPoint> points) override {
    if (fd_ < 0) return false;
    const char* data = reinterpret_cast<const char*>(points.data());
    std::size_t left = points.size_bytes();
    while (left > 0) {
      const ssize_t n = ::pwrite(fd_, data, left, static_cast<off_t>(size_));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("cannot write the temporary file of step samples", n < 0 ? errno : 0);
      data += n;
      left -= static_cast<std::size_t>(n);
      size_ += static_cast<std::uint64_t>(n);
    }
    return true;
  }

  bool read(const std::function<void(std::span<const StepPoint>)>& visit) override {
    if (fd_ < 0) return false;
    std::vector<StepPoint> buffer(std::size_t{1} << 16);
    std::uint64_t offset = 0;
    while (offset < size_) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size_ - offset, buffer.size() * sizeof(StepPoint)));
      const ssize_t n = ::pread(fd_, buffer.data(), want, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || static_cast<std::size_t>(n) % sizeof(StepPoint) != 0) {
        return fail("cannot read the temporary file of step samples", n < 0 ? errno : 0);
      }
      offset += static_cast<std::uint64_t>(n);
      visit(std::span<const StepPoint>(buffer.data(), static_cast<std::size_t>(n) / sizeof(StepPoint)));
    }
    return true;
  }

  const std::string& error() const override { return error_; }

 private:
  bool fail(const char* what, int err) {
    error_ = std::string(what) + ": " + (err != 0 ? std::strerror(err) : "short transfer");
    return false;
  }

  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::string error_;
};

// Where the log's time stands, across all inputs, and the sampling it drives. A line's time is
// its own (parsers/timestamp.h); a line without one, or with an earlier one than a line before
// it, is at the latest time seen so far (counts cannot be taken back from a sample already made).
class StepClock {
 public:
  StepClock(std::int64_t step_micros, Registry& registry, LineIngester& ingester, StepSampler& sampler,
            InputFormat format)
      : step_(step_micros), registry_(registry), ingester_(ingester), sampler_(sampler), probe_(format) {}

  // `line`, stamped `time`, is about to be counted: every boundary before `time` is complete.
  void observe(LogTimeMicros time, std::string_view line, std::uint64_t order) {
    if (!started_) {
      started_ = true;
      now_ = time;
      next_ = boundary_at_or_after(time, step_);
      return;
    }
    now_ = std::max(now_, time);
    if (now_ <= next_) return;
    // A text record held from before belongs to the time before this line, unless this line
    // continues it.
    if (ingester_.holds_record() && probe_.starts_record(line)) ingester_.end_of_input(order);
    sample(next_);
    // The boundaries between `next_` and `now_` saw no line: they repeat that sample.
    next_ = boundary_at_or_after(now_, step_);
  }

  // After the last input: the boundary at or after the last time holds the final counts.
  void finish() {
    if (!started_) return;
    sampled_ = false;  // always: the last boundary ends every series
    sample(next_);
  }

  bool started() const { return started_; }
  bool failed() const { return failed_; }

 private:
  void sample(std::int64_t boundary) {
    // Nothing counted since the last sample: it stands for this boundary too (the sampler fills
    // the steps between, up to the last boundary, which finish() always samples), and the
    // snapshot is not worth taking.
    if (failed_ || (sampled_ && ingester_.records() == records_at_sample_)) return;
    sampled_ = true;
    records_at_sample_ = ingester_.records();
    if (!sampler_.sample(boundary, cp_counters(registry_))) failed_ = true;
  }

  std::int64_t step_;
  Registry& registry_;
  LineIngester& ingester_;
  StepSampler& sampler_;
  LineParser probe_;
  bool started_ = false;
  bool failed_ = false;
  bool sampled_ = false;
  std::uint64_t records_at_sample_ = 0;
  LogTimeMicros now_ = 0;
  std::int64_t next_ = 0;
};

// Like LineFeeder, but every line reaches the parser one at a time, after its time has moved the
// clock: a sample must not count a line logged after its boundary.
class StepFeeder {
 public:
  StepFeeder(StepClock& clock, LineIngester& ingester, std::size_t max_line_bytes, std::uint64_t order_base)
      : clock_(clock), ingester_(ingester), splitter_(max_line_bytes), order_base_(order_base) {}

  void feed(std::string_view data) {
    ingester_.bytes(data.size());
    splitter_.feed(data, [this](std::string_view line) { on_line(line); },
                   [this](std::uint64_t bytes) { ingester_.oversize_line(bytes); });
  }

  std::uint64_t finish() {
    splitter_.finish([this](std::string_view line) { on_line(line); },
                     [this](std::uint64_t bytes) { ingester_.oversize_line(bytes); });
    return splitter_.complete_offset();
  }

 private:
  void on_line(std::string_view line) {
    const std::uint64_t order = order_base_ + splitter_.complete_offset();
    if (const std::optional<LogTimeMicros> time = line_timestamp(line)) clock_.observe(*time, line, order);
    ingester_.line(line, order);
  }

  StepClock& clock_;
  LineIngester& ingester_;
  LineSplitter splitter_;
  std::uint64_t order_base_;
};

double self_value(const Snapshot& snapshot, std::string_view family, std::string_view label = {}) {
  for (const Family& f : snapshot) {
    if (f.name != family) continue;
    double sum = 0;
    for (const Series& s : f.series) {
      if (label.empty() || (!s.label_values.empty() && s.label_values[0] == label)) sum += s.value;
    }
    return sum;
  }
  return 0;
}

void print_summary(const Snapshot& snapshot, std::size_t inputs, double seconds) {
  const double lines = self_value(snapshot, "nixfleet_log_exporter_lines_read");
  const double bytes = self_value(snapshot, "nixfleet_log_exporter_bytes_read");
  const double skipped = self_value(snapshot, "nixfleet_log_exporter_lines_skipped");
  std::string events;
  for (EventKind kind : {EventKind::compliance_failure, EventKind::runtime_gate_error, EventKind::gate_block}) {
    const std::string_view name = event_kind_name(kind);
    events += ' ';
    events += name;
    events += '=';
    events += std::to_string(static_cast<std::uint64_t>(self_value(snapshot, "nixfleet_log_exporter_events", name)));
  }
  std::string skipped_detail;
  for (std::size_t i = 0; i < kSkipReasonCount; ++i) {
    const std::string_view name = skip_reason_name(static_cast<SkipReason>(i));
    const double n = self_value(snapshot, "nixfleet_log_exporter_lines_skipped", name);
    if (n > 0) {
      skipped_detail += skipped_detail.empty() ? " (" : " ";
      skipped_detail += std::string(name) + "=" + std::to_string(static_cast<std::uint64_t>(n));
    }
  }
  if (!skipped_detail.empty()) skipped_detail += ')';
  const double mb = bytes / 1e6;
  std::fprintf(stderr,
               "replayed %zu input%s: %.0f lines, %.1f MB in %.3f s (%.1f MB/s); events:%s; skipped %.0f lines%s\n",
               inputs, inputs == 1 ? "" : "s", lines, mb, seconds, seconds > 0 ? mb / seconds : 0.0, events.c_str(),
               skipped, skipped_detail.c_str());
}

ProgressMode progress_mode(ReplayProgress wanted) {
  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  switch (wanted) {
    case ReplayProgress::never: return ProgressMode::off;
    case ReplayProgress::always: return terminal ? ProgressMode::terminal : ProgressMode::lines;
    case ReplayProgress::automatic: break;
  }
  return terminal ? ProgressMode::terminal : ProgressMode::off;
}

// The inputs' sizes on disk (compressed for .gz), or 0 when one has none known (stdin, a pipe).
std::uint64_t total_input_bytes(const std::vector<std::string>& inputs) {
  std::uint64_t total = 0;
  for (const std::string& path : inputs) {
    struct stat st {};
    if (path == "-" || ::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    total += static_cast<std::uint64_t>(st.st_size);
  }
  return total;
}

// Why --label's pairs cannot all be added to every series: a name given twice, or one that a
// counter family has as its own label (the series would have it twice). "" when they can.
std::string step_label_problem(const std::vector<std::pair<std::string, std::string>>& labels, const Registry& registry) {
  const Snapshot families = registry.snapshot();  // every family, with or without series
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::string& name = labels[i].first;
    for (std::size_t j = 0; j < i; ++j) {
      if (labels[j].first == name) return "label " + name + " given twice";
    }
    for (const Family& family : families) {
      if (family.type != MetricType::counter) continue;
      for (const std::string& own : family.label_names) {
        if (own == name) return "label " + name + " is already a label of " + family.name + "_total";
      }
    }
  }
  return {};
}

}  // namespace

int run_replay(const ReplayConfig& config) {
  const auto started = std::chrono::steady_clock::now();
  const bool step_mode = config.step.count() > 0;
  const unsigned threads =
      step_mode ? 1 : config.threads > 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  Registry registry(registry_options(config.ingest));
  LineIngester ingester = make_ingester(config.ingest.input_format, registry);
  bool all_read = true;
  std::size_t read_whole = 0;  // inputs read to their end without an error

  ProgressMeter progress(progress_mode(config.progress), total_input_bytes(config.inputs), config.inputs.size());
  std::unique_ptr<StepPointStore> store;
  if (step_mode) store = std::make_unique<TempFileStepPointStore>();
  else store = std::make_unique<MemoryStepPointStore>();  // stays empty
  StepSamplerOptions sampler_options;
  sampler_options.step_micros = std::max<std::int64_t>(1, static_cast<std::int64_t>(config.step.count()) * 1000);
  sampler_options.extra_labels = config.step_labels;
  if (const std::string problem = step_label_problem(config.step_labels, registry); !problem.empty()) {
    std::fprintf(stderr, "nixfleet-log-exporter: --label: %s\n", problem.c_str());
    return kExitUsage;
  }
  StepSampler sampler(sampler_options, *store);
  StepClock clock(sampler_options.step_micros, registry, ingester, sampler, config.ingest.input_format);
  if (!store->error().empty()) {
    progress.finish();
    std::fprintf(stderr, "nixfleet-log-exporter: %s\n", store->error().c_str());
    return kExitInputError;
  }

  for (std::size_t index = 0; index < config.inputs.size() && !clock.failed(); ++index) {
    const std::string& path = config.inputs[index];
    const std::uint64_t order_base = static_cast<std::uint64_t>(index) << kOrderOffsetBits;
    progress.begin_file(index);
    std::string error;
    std::unique_ptr<ByteReader> reader = ByteReader::open(path, error);
    if (!reader) {
      progress.say("nixfleet-log-exporter: cannot read " + error);
      all_read = false;
      continue;
    }
    bool ok = true;
    struct stat st {};
    const int fd = reader->plain_file_descriptor();
    if (step_mode) {
      StepFeeder feeder(clock, ingester, config.ingest.max_line_bytes, order_base);
      ok = ingest_stream(*reader, feeder, ingester, order_base, progress, error);
    } else if (threads > 1 && fd >= 0 && ::fstat(fd, &st) == 0 &&
               static_cast<std::uint64_t>(st.st_size) >= tuning().parallel_min_bytes) {
      ok = ingest_parallel(fd, static_cast<std::uint64_t>(st.st_size), threads, order_base, config.ingest, registry,
                           path, progress, error);
    } else {
      LineFeeder feeder(ingester, config.ingest.max_line_bytes, order_base, 0);
      ok = ingest_stream(*reader, feeder, ingester, order_base, progress, error);
    }
    if (!ok) {
      progress.say("nixfleet-log-exporter: error reading " + error);
      all_read = false;
    } else {
      ++read_whole;
    }
  }
  progress.finish();

  // Nothing could be read at all: a page of zeros would look like a quiet log to a textfile
  // collector pipeline (replay > cp.prom), so say so and write nothing.
  if (read_whole == 0) {
    std::fprintf(stderr, "nixfleet-log-exporter: no input could be read; no metrics written\n");
    return kExitInputError;
  }
  const Snapshot snapshot = registry.snapshot();
  if (step_mode) {
    clock.finish();
    const auto write = [](std::string_view piece) { std::fwrite(piece.data(), 1, piece.size(), stdout); };
    if (clock.failed() || !sampler.render(write)) {
      std::fflush(stdout);
      std::fprintf(stderr, "nixfleet-log-exporter: --step: %s\n", sampler.error().c_str());
      return kExitInputError;
    }
    if (!clock.started()) {
      std::fprintf(stderr, "nixfleet-log-exporter: no line carried a timestamp, so there is nothing to sample\n");
    }
  } else {
    RenderOptions render_options;
    render_options.format = config.output_format;
    const std::string text = render(snapshot, render_options);
    std::fwrite(text.data(), 1, text.size(), stdout);
  }
  std::fflush(stdout);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (tuning().stage_counts) {
    add_stage_counts(ingester);
    std::fprintf(stderr, "stages: %llu candidates, %llu screened out, %llu parsed\n",
                 static_cast<unsigned long long>(g_candidates.load()), static_cast<unsigned long long>(g_screened_out.load()),
                 static_cast<unsigned long long>(g_candidates.load() - g_screened_out.load()));
  }
  if (config.progress != ReplayProgress::never) {
    print_summary(snapshot, config.inputs.size(), seconds);
    if (step_mode && sampler.steps() > 0) {
      std::fprintf(stderr, "sampled %llu step%s of %s s from %s to %s\n",
                   static_cast<unsigned long long>(sampler.steps()), sampler.steps() == 1 ? "" : "s",
                   format_timestamp_seconds(sampler_options.step_micros).c_str(),
                   format_timestamp_seconds(sampler.first_boundary()).c_str(),
                   format_timestamp_seconds(sampler.last_boundary()).c_str());
    }
  }
  return all_read ? kExitOk : kExitInputError;
}

}  // namespace nle
