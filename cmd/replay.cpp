// `replay`: read inputs to their end, print the counters, exit. A large plain file is cut into
// newline-aligned ranges read in parallel, each thread with its own parser and registry, merged
// at the end; compressed files and stdin are read in one stream.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cmd/commands.h"
#include "cmd/ingest.h"
#include "exporter/registry.h"
#include "nle_version.h"
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
// NLE_REPLAY_PARALLEL_MIN_BYTES=N cuts files of N bytes or more into ranges.
struct ReplayTuning {
  bool reference = false;
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
    r.read_bytes = static_cast<std::size_t>(std::min<std::uint64_t>(env_number("NLE_REPLAY_READ_BYTES", kReadChunk), 64ull << 20));
    r.parallel_min_bytes = env_number("NLE_REPLAY_PARALLEL_MIN_BYTES", kParallelMinBytes);
    return r;
  }();
  return t;
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
                         const IngestConfig& config, LineIngester& ingester, const std::string& path) {
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
                     const IngestConfig& config, Registry& registry, const std::string& path, std::string& error) {
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
        LineIngester ingester(config.input_format, registries[i]);
        results[i] = ingest_range(fd, starts[i], starts[i + 1], order_base, config, ingester, path);
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

// Reads one input as a stream (stdin, gzip, small files).
bool ingest_stream(ByteReader& reader, std::uint64_t order_base, const IngestConfig& config, LineIngester& ingester,
                   std::string& error) {
  const std::size_t chunk = tuning().read_bytes;
  std::unique_ptr<char[]> buffer(new char[chunk]);
  LineFeeder feeder(ingester, config.max_line_bytes, order_base, 0);
  for (;;) {
    const std::optional<std::size_t> got = reader.read(buffer.get(), chunk);
    if (!got) {
      // A corrupt or failing input: what was read before still counts; the partial line at
      // the failure point is not a line we can trust, so it is not finished.
      error = reader.error();
      ingester.flush();
      return false;
    }
    if (*got == 0) break;
    feeder.feed(std::string_view(buffer.get(), *got));
  }
  ingester.end_of_input(order_base + feeder.finish());
  ingester.flush();
  return true;
}

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

}  // namespace

int run_replay(const ReplayConfig& config) {
  const auto started = std::chrono::steady_clock::now();
  const unsigned threads =
      config.threads > 0 ? config.threads : std::max(1u, std::thread::hardware_concurrency());
  Registry registry(registry_options(config.ingest));
  LineIngester ingester(config.ingest.input_format, registry);
  bool all_read = true;

  for (std::size_t index = 0; index < config.inputs.size(); ++index) {
    const std::string& path = config.inputs[index];
    const std::uint64_t order_base = static_cast<std::uint64_t>(index) << kOrderOffsetBits;
    std::string error;
    std::unique_ptr<ByteReader> reader = ByteReader::open(path, error);
    if (!reader) {
      std::fprintf(stderr, "nixfleet-log-exporter: cannot read %s\n", error.c_str());
      all_read = false;
      continue;
    }
    bool ok = true;
    struct stat st {};
    const int fd = reader->plain_file_descriptor();
    if (threads > 1 && fd >= 0 && ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) >= tuning().parallel_min_bytes) {
      ok = ingest_parallel(fd, static_cast<std::uint64_t>(st.st_size), threads, order_base, config.ingest, registry,
                           path, error);
    } else {
      ok = ingest_stream(*reader, order_base, config.ingest, ingester, error);
    }
    if (!ok) {
      std::fprintf(stderr, "nixfleet-log-exporter: error reading %s\n", error.c_str());
      all_read = false;
    }
  }

  const Snapshot snapshot = registry.snapshot();
  RenderOptions render_options;
  render_options.format = config.output_format;
  const std::string text = render(snapshot, render_options);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  print_summary(snapshot, config.inputs.size(), seconds);
  return all_read ? kExitOk : kExitInputError;
}

std::string version_text() {
  return std::string("nixfleet-log-exporter ") + NLE_VERSION + " (git commit " + NLE_GIT_COMMIT + ")";
}

}  // namespace nle
