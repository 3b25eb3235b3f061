// `follow`: the long-running job. Threads and who owns what:
// - the main thread reads (follower, journal, or stdin) and ingests: the only writer of the
//   registry. It holds the registry lock for one read's worth of lines at a time, never while
//   reading, so a scrape waits at most for one chunk's parsing, never for a file read;
// - the server's threads take a snapshot under that lock and render outside it;
// - the state saver (with --state-file) writes the counters and the input positions together,
//   taken under the same lock at a *consistent point*: after a whole read was ingested and no
//   multi-line record is held, so the saved counters are exactly those of the lines before the
//   saved positions, whenever the process dies. It sleeps while nothing changes;
// - a signal thread turns SIGTERM/SIGINT into a stop and SIGHUP into a reopen.

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cmd/commands.h"
#include "cmd/ingest.h"
#include "cmd/logger.h"
#include "exporter/health_metrics.h"
#include "exporter/process_metrics.h"
#include "exporter/registry.h"
#include "nle_version.h"
#include "server/metrics_server.h"
#include "source/follower.h"
#include "source/journal_source.h"
#include "source/line_splitter.h"
#include "state/state_file.h"

namespace nle {
namespace {

// The registry, its lock, and the positions that go with its counts; ingestion, scrapes and the
// state saver meet only here.
struct SharedRegistry {
  std::mutex mutex;
  Registry registry;
  // Guarded by `mutex`: the input positions matching the registry's counts at the last
  // consistent point, and whether the counts have moved past them since.
  std::vector<FilePosition> positions;
  std::string journal_cursor;
  std::string stdin_journal_cursor;
  bool consistent = true;
  // Bumped at each consistent point with new counts. Atomic so that a scrape can ask whether its
  // cached page is current without waiting for the lock ingestion holds.
  std::atomic<std::uint64_t> generation{0};

  // Health read live at each scrape (exporter/health_metrics.h). Unix seconds; 0: not yet.
  std::atomic<double> last_read_time{0};
  std::atomic<double> journal_entry_time{0};   // the last journal entry read, by its own clock
  std::atomic<bool> journal_caught_up{false};  // every available journal entry has been read

  explicit SharedRegistry(RegistryOptions options) : registry(std::move(options)) {}

  Snapshot live_snapshot() {
    std::lock_guard lock(mutex);
    return registry.snapshot();
  }
};

double unix_now() {
  using std::chrono::duration;
  using std::chrono::system_clock;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Keeps the state file, and with it the one promise a scrape relies on: a served counter never
// goes down, across any number of crashes and restarts. A restart restores the last saved counts
// and reads again from the saved positions, so every count served must already be in the state
// file when it is served; otherwise the restart would serve less than Prometheus has stored.
// So with a state file the page is made from the counts of the last successful write
// (durable_snapshot()), and a scrape that finds newer counts writes them first. That write skips
// fsync (StateDurability::process_crash): it makes the counts survive the death of this process,
// which is what a restart reads, at the cost of a write and a rename instead of two disk flushes.
// The periodic save, at most every interval when something changed, flushes to disk as well, so
// that a power cut loses at most one interval of saved positions.
class StateSaver {
 public:
  StateSaver(std::string path, std::chrono::milliseconds interval, SharedRegistry& shared, Logger& log)
      : path_(std::move(path)), interval_(interval), shared_(shared), log_(log), counting_since_(unix_now()) {
    // What was restored is what the file holds (or zeros, without a file): already safe to serve.
    std::lock_guard lock(shared_.mutex);
    durable_ = std::make_shared<const Snapshot>(shared_.registry.snapshot());
    durable_generation_ = shared_.generation;
  }

  void start() {
    thread_ = std::thread([this] { loop(); });
  }
  // Something new reached a consistent point.
  void notify() {
    {
      std::lock_guard lock(mutex_);
      dirty_ = true;
    }
    wake_.notify_one();
  }
  // Stops the thread and writes the final state (the caller has reached a consistent point).
  // False when that write failed: the caller exits 1, having logged why.
  bool stop_and_save() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
    const Outcome outcome = save(StateDurability::power_loss, /*final_save=*/true);
    return outcome != Outcome::failed;
  }

  // The counts a scrape may serve: those of the newest successful write, made now if ingestion
  // has moved since. When that write fails (or ingestion holds half a record), the previous
  // saved counts are served: stale, never ahead of the file.
  std::shared_ptr<const Snapshot> durable_snapshot() {
    save(StateDurability::process_crash, false);
    std::lock_guard lock(save_mutex_);
    return durable_;
  }

  FollowHealth::StateSaves health() const {
    FollowHealth::StateSaves saves;
    saves.failures = failures_.load(std::memory_order_relaxed);
    saves.counting_since = counting_since_;
    const double last = last_success_time_.load(std::memory_order_relaxed);
    if (last > 0) saves.last_success_time = last;
    return saves;
  }

 private:
  enum class Outcome { saved, unchanged, not_consistent, failed };

  void loop() {
    auto last_attempt = std::chrono::steady_clock::now() - interval_;
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return dirty_ || stopping_; });
      if (stopping_) return;
      // Let changes gather until the interval since the last attempt has passed.
      if (wake_.wait_until(lock, last_attempt + interval_, [&] { return stopping_; })) return;
      dirty_ = false;
      lock.unlock();
      const Outcome outcome = save(StateDurability::power_loss, false);
      last_attempt = std::chrono::steady_clock::now();
      lock.lock();
      // Not written: try again after another interval even if no new line arrives.
      if (outcome == Outcome::failed || outcome == Outcome::not_consistent) dirty_ = true;
    }
  }

  // Writes the counts and positions of the last consistent point, unless the file already holds
  // them with at least this durability. Writes are serialised and take their counts under the
  // registry lock inside save_mutex_, so the file only ever moves forward.
  Outcome save(StateDurability durability, bool final_save) {
    std::lock_guard write_lock(save_mutex_);
    ExporterState state;
    Snapshot snapshot;
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(shared_.mutex);
      if (!shared_.consistent) return Outcome::not_consistent;
      generation = shared_.generation;
      const bool written = written_once_ && generation == durable_generation_;
      const bool flushed = written && flushed_generation_ == generation;
      if (durability == StateDurability::process_crash ? written : flushed) return Outcome::unchanged;
      state.files = shared_.positions;
      state.journal_cursor = shared_.journal_cursor;
      state.stdin_journal_cursor = shared_.stdin_journal_cursor;
      state.counters = shared_.registry.export_counters();
      state.build_info = shared_.registry.export_build_info();
      snapshot = shared_.registry.snapshot();
    }
    state.written_at = static_cast<std::int64_t>(std::time(nullptr));
    state.exporter_version = version_text();
    std::string error;
    if (!write_state_file(path_, serialize_state(state), error, durability)) {
      failures_.fetch_add(1, std::memory_order_relaxed);
      if (final_save) {
        log_.error("cannot write the state file at shutdown; a restart will count the lines since the last good save again",
                   {{"error", error}});
      } else if (failing_since_ == 0) {
        // Once per streak: a full disk must not flood the log every second.
        log_.error("cannot write the state file; serving the counts of the last good save until a write succeeds",
                   {{"error", error}});
      }
      if (failing_since_ == 0) failing_since_ = unix_now();
      return Outcome::failed;
    }
    if (failing_since_ != 0) {
      log_.info("the state file is written again",
                {{"path", path_}, {"failed_for_seconds", std::to_string(static_cast<long long>(unix_now() - failing_since_))}});
      failing_since_ = 0;
    }
    written_once_ = true;
    durable_ = std::make_shared<const Snapshot>(std::move(snapshot));
    durable_generation_ = generation;
    if (durability == StateDurability::power_loss) flushed_generation_ = generation;
    last_success_time_.store(unix_now(), std::memory_order_relaxed);
    log_.debug("state saved", {{"path", path_}, {"series", std::to_string(state.counters.size())}});
    return Outcome::saved;
  }

  std::string path_;
  std::chrono::milliseconds interval_;
  SharedRegistry& shared_;
  Logger& log_;
  const double counting_since_;
  std::thread thread_;
  // The periodic saver's wake-up.
  std::mutex mutex_;
  std::condition_variable wake_;
  bool dirty_ = false;
  bool stopping_ = false;
  // Guarded by save_mutex_ (taken before shared_.mutex, never after).
  std::mutex save_mutex_;
  std::shared_ptr<const Snapshot> durable_;
  std::uint64_t durable_generation_ = 0;   // the generation durable_ and the file hold
  std::uint64_t flushed_generation_ = 0;   // the last generation written with fsync
  bool written_once_ = false;
  double failing_since_ = 0;               // Unix seconds; 0 while writes succeed
  std::atomic<std::uint64_t> failures_{0};
  std::atomic<double> last_success_time_{0};
};

// Ingests lines from any source. One ingester per input name: a multi-line record held for one
// file must not be completed by a line of another. The registry lock is held from the first line
// of a read to its end, so the counts and the positions published at the end agree.
class Ingestion {
 public:
  // `first_order` continues the build-info order of a restored state, so a line read after a
  // restart always outranks the build info learned before it.
  Ingestion(SharedRegistry& shared, InputFormat format, StateSaver* saver, std::uint64_t first_order)
      : shared_(shared), format_(format), saver_(saver), order_(first_order) {}

  // `logged_at`: the journal entry's time, for events whose line has none (see LineParser::parse).
  void line(std::string_view input, std::string_view line, std::optional<LogTimeMicros> logged_at = std::nullopt) {
    hold_lock();
    ingester_for(input).line(line, ++order_, logged_at);
  }
  // Whole lines of one read, through the block scan (LineIngester::lines). Orders count bytes
  // within the block, as in replay: each line still ranks above every line before it.
  void lines(std::string_view input, std::string_view block, std::size_t max_line_bytes) {
    hold_lock();
    ingester_for(input).lines(block, order_, 0, max_line_bytes);
    order_ += block.size();
  }
  void oversize(std::string_view input, std::uint64_t bytes) {
    hold_lock();
    ingester_for(input).oversize_line(bytes);
  }
  void bytes(std::string_view input, std::uint64_t n) {
    hold_lock();
    ingester_for(input).bytes(n);
    if (n > 0) shared_.last_read_time.store(unix_now(), std::memory_order_relaxed);
  }
  // The reader caught up with its writer, who writes a record whole: held records are complete.
  void caught_up(std::string_view input) {
    hold_lock();
    ingester_for(input).end_of_input(++order_);
  }
  // The end of one read. Publishes positions if nothing is held (publish fills them in under the
  // lock), flushes counts and lets scrapes in again.
  template <class Publish>
  void end_of_read(Publish&& publish) {
    hold_lock();
    bool holding = false;
    for (auto& [name, ingester] : ingesters_) {
      ingester->flush();
      holding = holding || ingester->holds_record();
    }
    shared_.consistent = !holding;
    if (!holding) {
      publish();
      ++shared_.generation;
    }
    lock_.unlock();
    if (!holding && saver_ != nullptr) saver_->notify();
  }
  // Shutdown: every held record is complete now.
  template <class Publish>
  void finish(Publish&& publish) {
    hold_lock();
    for (auto& [name, ingester] : ingesters_) ingester->end_of_input(++order_);
    end_of_read(publish);
  }
  // Self-metrics from the reader's callbacks, which may come in the middle of a read (a rotation
  // found while lines are being handed out): use the lock this thread holds, if it holds it.
  template <class Change>
  void update(Change&& change) {
    if (lock_.owns_lock()) {
      change(shared_.registry);
    } else {
      std::lock_guard lock(shared_.mutex);
      change(shared_.registry);
    }
    ++shared_.generation;  // a rotation or read error is news for the next scrape too
  }
  void count(SelfCounter counter, std::string_view label = {}) {
    update([&](Registry& registry) { registry.add_self(counter, label); });
  }

 private:
  void hold_lock() {
    if (!lock_.owns_lock()) {
      lock_ = std::unique_lock(shared_.mutex);
      shared_.consistent = false;
    }
  }
  LineIngester& ingester_for(std::string_view input) {
    auto it = ingesters_.find(input);
    if (it == ingesters_.end()) {
      it = ingesters_.emplace(std::string(input), std::make_unique<LineIngester>(format_, shared_.registry)).first;
    }
    return *it->second;
  }

  SharedRegistry& shared_;
  InputFormat format_;
  StateSaver* saver_;
  std::unique_lock<std::mutex> lock_;
  std::map<std::string, std::unique_ptr<LineIngester>, std::less<>> ingesters_;
  std::uint64_t order_;
};

class FileSink final : public FollowerSink {
 public:
  FileSink(Ingestion& ingestion, SharedRegistry& shared, std::size_t read_chunk_bytes, Logger& log)
      : ingestion_(ingestion), shared_(shared), read_chunk_bytes_(read_chunk_bytes), log_(log) {}
  void set_follower(Follower& follower) { follower_ = &follower; }

  void on_line(std::string_view path, std::string_view line) override { ingestion_.line(path, line); }
  void on_lines(std::string_view path, std::string_view block, std::size_t max_line_bytes) override {
    // A block no longer than the cap holds no oversize line; one that may, goes line by line, so
    // that each oversize line is logged as it is skipped.
    if (block.size() > max_line_bytes) return FollowerSink::on_lines(path, block, max_line_bytes);
    ingestion_.lines(path, block, max_line_bytes);
  }
  void on_oversize(std::string_view path, std::uint64_t bytes) override {
    ingestion_.oversize(path, bytes);
    log_.warn("skipped a line over --max-line-bytes", {{"path", path}, {"bytes", std::to_string(bytes)}});
  }
  void on_chunk_done(std::string_view path, std::uint64_t bytes) override {
    ingestion_.bytes(path, bytes);
    if (bytes < read_chunk_bytes_) ingestion_.caught_up(path);  // a short read: the writer is behind us
    publish_positions();
  }
  void on_rotation(std::string_view path) override {
    ingestion_.count(SelfCounter::rotations);
    log_.info("file rotated; finished the old one, reading the new one from its start", {{"path", path}});
  }
  void on_truncation(std::string_view path) override {
    ingestion_.count(SelfCounter::truncations);
    log_.warn("file truncated; reading it again from its start", {{"path", path}});
  }
  void on_read_error(std::string_view path, std::string_view reason, std::string_view message) override {
    ingestion_.count(SelfCounter::read_errors, reason);
    log_.error("cannot read file; will retry", {{"path", path}, {"reason", reason}, {"error", message}});
  }
  void on_notice(std::string_view message) override { log_.info(message); }
  void on_files_watched(std::size_t count) override {
    ingestion_.update([&](Registry& registry) { registry.set_self(SelfGauge::files_watched, static_cast<double>(count)); });
  }

  void publish_positions() {
    std::vector<FilePosition> positions = follower_ != nullptr ? follower_->positions() : std::vector<FilePosition>{};
    ingestion_.end_of_read([&] { shared_.positions = std::move(positions); });
  }

 private:
  Ingestion& ingestion_;
  SharedRegistry& shared_;
  std::size_t read_chunk_bytes_;
  Logger& log_;
  Follower* follower_ = nullptr;
};

class JournalIngestSink final : public JournalSink {
 public:
  JournalIngestSink(Ingestion& ingestion, SharedRegistry& shared, Logger& log)
      : ingestion_(ingestion), shared_(shared), log_(log) {}

  void on_message(std::string_view message, std::string_view cursor, std::uint64_t realtime_usec) override {
    shared_.journal_caught_up.store(false, std::memory_order_relaxed);
    if (realtime_usec > 0) shared_.journal_entry_time.store(static_cast<double>(realtime_usec) / 1e6, std::memory_order_relaxed);
    ingestion_.bytes(kInput, message.size() + 1);
    ingestion_.line(kInput, message,
                    realtime_usec > 0 ? std::optional<LogTimeMicros>(static_cast<LogTimeMicros>(realtime_usec)) : std::nullopt);
    cursor_.assign(cursor);
    // Publish now and then while catching up on a backlog, so a crash re-reads little.
    if (++since_publish_ >= 4096) publish();
  }
  void on_caught_up() override {
    ingestion_.caught_up(kInput);
    publish();
    shared_.journal_caught_up.store(true, std::memory_order_relaxed);
  }
  void on_error(std::string_view reason, std::string_view message) override {
    ingestion_.count(SelfCounter::read_errors, reason);
    log_.error("journal read error", {{"reason", reason}, {"error", message}});
  }
  void on_notice(std::string_view message) override { log_.info(message); }
  // Where the source starts reading (JournalSource::position()): what a publish saves until the
  // first entry is read. Left empty, a restart that read nothing would save the restored counts
  // without their cursor, and the next restart would read the whole journal again.
  void start_after(std::string cursor) { cursor_ = std::move(cursor); }
  void publish() {
    since_publish_ = 0;
    ingestion_.end_of_read([&] { shared_.journal_cursor = cursor_; });
  }
  void finish() {
    ingestion_.finish([&] { shared_.journal_cursor = cursor_; });
  }

 private:
  static constexpr std::string_view kInput = "journal";
  Ingestion& ingestion_;
  SharedRegistry& shared_;
  Logger& log_;
  std::string cursor_;
  int since_publish_ = 0;
};

enum class StdinEnd { end_of_input, stopped, read_error };

// Reads stdin as it arrives (no buffering delay) until EOF, a stop request or a read error (which
// is logged and counted; every line before it is counted).
// `track_cursor`: remember the last journald __CURSOR for the state file; without one nothing reads
// it, and finding it costs a search of every line.
StdinEnd follow_stdin(int stop_fd, Ingestion& ingestion, SharedRegistry& shared, const IngestConfig& config,
                  bool track_cursor, Logger& log) {
  constexpr std::string_view kInput = "-";
  LineSplitter splitter(config.max_line_bytes);
  // The restored cursor stays the saved one until a record with a newer one is read: input that
  // ends (or a crash) before any cursor must not erase it.
  std::string cursor = shared.stdin_journal_cursor;
  auto on_line = [&](std::string_view line) {
    ingestion.line(kInput, line);
    if (!track_cursor) return;
    if (std::string_view c = find_journal_cursor(line); !c.empty()) cursor.assign(c);
  };
  auto on_oversize = [&](std::uint64_t bytes) { ingestion.oversize(kInput, bytes); };
  auto publish = [&] { shared.stdin_journal_cursor = cursor; };
  constexpr ssize_t kChunk = 1 << 20;
  std::unique_ptr<char[]> buffer(new char[kChunk]);
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log.error("poll on stdin failed", {{"error", std::strerror(errno)}});
      ingestion.finish(publish);
      return StdinEnd::read_error;
    }
    if (fds[1].revents & POLLIN) {
      ingestion.finish(publish);
      return StdinEnd::stopped;
    }
    const ssize_t got = ::read(STDIN_FILENO, buffer.get(), kChunk);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      ingestion.count(SelfCounter::read_errors, "io_error");
      log.error("cannot read stdin; the lines before the error are counted", {{"error", std::strerror(errno)}});
      splitter.finish(on_line, on_oversize);
      ingestion.finish(publish);
      return StdinEnd::read_error;
    }
    if (got == 0) {
      splitter.finish(on_line, on_oversize);
      ingestion.finish(publish);
      return StdinEnd::end_of_input;
    }
    ingestion.bytes(kInput, static_cast<std::uint64_t>(got));
    splitter.feed(std::string_view(buffer.get(), static_cast<std::size_t>(got)), on_line, on_oversize);
    if (got < kChunk) ingestion.caught_up(kInput);
    ingestion.end_of_read(publish);
  }
}

bool is_stdin(const std::vector<std::string>& inputs) { return inputs.empty() || (inputs.size() == 1 && inputs[0] == "-"); }

// Why stdin cannot be what `follow` reads, or "": a terminal, /dev/null or a closed descriptor
// means the input was forgotten (systemd's StandardInput=null with no FILE would otherwise exit 0
// at once and be restarted forever); a directory cannot be read at all.
std::string unusable_stdin() {
  struct stat status {};
  if (::fstat(STDIN_FILENO, &status) != 0) return "stdin is closed";
  if (::isatty(STDIN_FILENO) == 1) return "stdin is a terminal";
  if (S_ISDIR(status.st_mode)) return "stdin is a directory";
  struct stat null_device {};
  if (S_ISCHR(status.st_mode) && ::stat("/dev/null", &null_device) == 0 && status.st_rdev == null_device.st_rdev) {
    return "stdin is /dev/null";
  }
  return "";
}

// Bytes of each followed file not read yet, from the positions of the last consistent point and
// the files' sizes now. A file whose path names another file now (rotated) is counted whole.
std::vector<FollowHealth::UnreadFile> unread_files(const std::vector<FilePosition>& positions) {
  std::vector<FollowHealth::UnreadFile> unread;
  unread.reserve(positions.size());
  for (const FilePosition& position : positions) {
    struct stat status {};
    if (::stat(position.path.c_str(), &status) != 0) continue;  // gone: nothing there to read
    const auto size = static_cast<std::uint64_t>(status.st_size);
    const bool same_file = static_cast<std::uint64_t>(status.st_dev) == position.device &&
                           static_cast<std::uint64_t>(status.st_ino) == position.inode;
    unread.push_back({position.path, same_file ? (size > position.offset ? size - position.offset : 0) : size});
  }
  return unread;
}

// Where to point curl or Prometheus: an all-interfaces address is reachable on localhost.
std::string scrape_url(const MetricsServer::Endpoint& endpoint, bool tls, const std::string& path) {
  std::string host = endpoint.host;
  if (host.empty() || host == "0.0.0.0" || host == "::") host = "localhost";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(endpoint.port) + path;
}

// Reads and parses a state file: `missing` for no file yet; `error` (naming the path) whether it
// could not be read or could not be parsed.
StateRead read_saved_state(const std::string& path, ExporterState& state, std::string& error) {
  std::string text;
  const StateRead read = read_state_file(path, text, error);
  if (read != StateRead::ok) return read;
  std::optional<ExporterState> parsed = parse_state(text, error);
  if (!parsed) {
    error = path + ": " + error;
    return StateRead::error;
  }
  state = std::move(*parsed);
  return StateRead::ok;
}

// Loads --state-file into the registry. Returns false (after logging why) when the file exists
// but cannot be used: counters are never silently zeroed; --state-reset starts over explicitly.
bool load_state(const FollowConfig& config, Registry& registry, ExporterState& state, Logger& log) {
  if (config.state_reset) {
    log.warn("--state-reset: starting from zero counters and no saved positions", {{"path", config.state_file}});
    return true;
  }
  std::string error;
  switch (read_saved_state(config.state_file, state, error)) {
    case StateRead::missing:
      log.info("no state file yet; it will be created", {{"path", config.state_file}});
      return true;
    case StateRead::error:
      log.error("the state file cannot be used (use --state-reset to start over)", {{"error", error}});
      return false;
    case StateRead::ok: break;
  }
  const std::size_t not_restored = registry.restore(state.counters, state.build_info);
  log.info("state restored", {{"path", config.state_file}, {"series", std::to_string(state.counters.size())},
                              {"files", std::to_string(state.files.size())}});
  if (not_restored > 0) log.warn("some saved series were not restored", {{"count", std::to_string(not_restored)}});
  return true;
}

}  // namespace

int run_follow(const FollowConfig& config) {
  Logger log(config.log_level, config.log_format);
  const bool journal = !config.journal_units.empty() || !config.journal_directory.empty();
  if (journal && !config.inputs.empty()) {
    log.error("--journal-unit/--journal-directory read the journal; do not also name files or -");
    return kExitUsage;
  }
  if (!journal && is_stdin(config.inputs)) {
    if (std::string problem = unusable_stdin(); !problem.empty()) {
      log.error("nothing to follow: " + problem +
                "; name log files or globs, use --journal-unit, or pipe the log in "
                "(journalctl -u UNIT -o json -f | nixfleet-log-exporter follow)");
      return problem == "stdin is a directory" ? kExitInputError : kExitUsage;
    }
  }
  if (!journal && !is_stdin(config.inputs)) {
    FollowOptions probe;
    probe.patterns = config.inputs;
    if (std::string problem = Follower::check(probe); !problem.empty()) {
      log.error(problem);
      return kExitUsage;
    }
  }

  SharedRegistry shared(registry_options(config.ingest));

  ExporterState saved;
  const bool keep_state = !config.state_file.empty();
  // One exporter per state file: locked before the state is read (or reset), and released when
  // run_follow returns, after the final save.
  std::optional<StateFileLock> state_lock;
  if (keep_state) {
    std::string error;
    state_lock = lock_state_file(config.state_file, error);
    if (!state_lock) {
      log.error(error);
      return kExitInputError;
    }
  }
  if (keep_state && !load_state(config, shared.registry, saved, log)) return kExitInputError;
  shared.positions = saved.files;
  shared.journal_cursor = saved.journal_cursor;
  shared.stdin_journal_cursor = saved.stdin_journal_cursor;

  std::unique_ptr<StateSaver> saver;
  if (keep_state) saver = std::make_unique<StateSaver>(config.state_file, config.state_interval, shared, log);
  const bool following_files = !journal && !is_stdin(config.inputs);
  // The page: with a state file, the counts of the last state write (made now if ingestion moved;
  // see StateSaver), else the live counts; then the health read live, and process_*.
  auto page = [&shared, &saver, following_files, journal] {
    Snapshot snapshot = saver ? Snapshot(*saver->durable_snapshot()) : shared.live_snapshot();
    FollowHealth health;
    const double last_read = shared.last_read_time.load(std::memory_order_relaxed);
    if (last_read > 0) health.last_read_time = last_read;
    health.following_files = following_files;
    if (following_files) {
      std::vector<FilePosition> positions;
      {
        std::lock_guard lock(shared.mutex);
        positions = shared.positions;
      }
      health.unread_files = unread_files(positions);  // stat outside the lock
    }
    if (journal) {
      const double entry_time = shared.journal_entry_time.load(std::memory_order_relaxed);
      const bool caught_up = shared.journal_caught_up.load(std::memory_order_relaxed);
      health.journal_lag_seconds = caught_up || entry_time == 0 ? 0.0 : unix_now() - entry_time;
    }
    if (saver) health.state = saver->health();
    for (Family& family : health_families(health)) snapshot.push_back(std::move(family));
    // /proc is read outside any lock: a scrape must not slow ingestion down.
    for (Family& family : process_families()) snapshot.push_back(std::move(family));
    std::sort(snapshot.begin(), snapshot.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
    return snapshot;
  };

  ServerOptions server_options;
  server_options.listen_addresses = config.listen_addresses;
  server_options.telemetry_path = config.telemetry_path;
  server_options.web_config_file = config.web_config_file;
  server_options.systemd_socket = config.systemd_socket;
  server_options.max_requests = config.max_requests;
  if (config.disable_exporter_metrics) server_options.hidden_family_prefixes = {"process_", "nixfleet_log_exporter_"};
  server_options.log_error = [&log](const std::string& message) { log.error(message); };
  server_options.version = NLE_VERSION;
  server_options.revision = NLE_GIT_COMMIT;
  MetricsServer server(
      server_options, page,
      [&shared](int status) {
        std::lock_guard lock(shared.mutex);
        shared.registry.add_self(SelfCounter::http_requests, std::to_string(status));
      },
      // The page is rendered again when ingestion moved on (within the server's max_stale);
      // http_requests_total and process_* alone refresh it at most once a second.
      [&shared] { return shared.generation.load(); });
  if (std::string error = server.bind(); !error.empty()) {
    log.error(error);
    return kExitUsage;
  }

  std::unique_ptr<JournalIngestSink> journal_sink;
  std::unique_ptr<JournalSource> journal_source;
  Ingestion ingestion(shared, config.ingest.input_format, saver.get(), saved.build_info ? saved.build_info->order : 0);
  if (journal) {
    JournalOptions journal_options;
    journal_options.units = config.journal_units;
    journal_options.directory = config.journal_directory;
    journal_options.from_beginning = config.from_beginning;
    journal_options.resume_cursor = saved.journal_cursor;
    journal_sink = std::make_unique<JournalIngestSink>(ingestion, shared, log);
    journal_source = std::make_unique<JournalSource>(journal_options, *journal_sink);
    if (std::string error = journal_source->open(); !error.empty()) {
      log.error("cannot open the journal", {{"error", error}});
      return kExitInputError;
    }
    journal_sink->start_after(journal_source->position());
  }

  // Signals go to one thread that waits for them; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC);

  if (std::string error = server.start(); !error.empty()) {
    log.error(error);
    return kExitUsage;
  }
  if (saver) saver->start();
  if (config.systemd_socket) log.info("serving on the sockets systemd passed, not on listen addresses");
  for (const MetricsServer::Endpoint& endpoint : server.endpoints()) {
    log.info("serving metrics", {{"url", scrape_url(endpoint, server.tls(), config.telemetry_path)},
                                 {"version", NLE_VERSION}});
  }

  std::unique_ptr<FileSink> file_sink;
  std::unique_ptr<Follower> follower;
  if (following_files) {
    FollowOptions follow_options;
    follow_options.patterns = config.inputs;
    follow_options.from_beginning = config.from_beginning;
    follow_options.poll_interval = config.poll_interval;
    follow_options.force_polling = config.force_polling;
    follow_options.max_line_bytes = config.ingest.max_line_bytes;
    follow_options.resume = saved.files;
    file_sink = std::make_unique<FileSink>(ingestion, shared, follow_options.read_chunk_bytes, log);
    follower = std::make_unique<Follower>(follow_options, *file_sink);
    file_sink->set_follower(*follower);
  }

  StdinEnd stdin_end = StdinEnd::end_of_input;
  std::atomic<bool> stopping{false};
  std::thread signal_thread([&] {
    for (;;) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0) continue;
      if (signal == SIGHUP) {
        if (follower) follower->request_reopen();
        log.info("SIGHUP: reopening inputs");
        continue;
      }
      if (signal == SIGTERM && stopping.load()) return;  // our own wake-up at shutdown
      stopping = true;
      log.info("stopping", {{"signal", signal == SIGINT ? "SIGINT" : "SIGTERM"}});
      if (follower) follower->request_stop();
      if (journal_source) journal_source->request_stop();
      const std::uint64_t one = 1;
      [[maybe_unused]] const ssize_t w = ::write(stop_fd, &one, sizeof one);
      return;
    }
  });

  if (follower) {
    // Ready means the inputs are open and their existing content placed: a line written after
    // /-/ready said so is never mistaken for content that was there before we started.
    follower->poll_once();
    server.set_ready(true);
    if (follower->using_inotify()) {
      log.info("following files", {{"inotify", "yes"}});
    } else {
      const std::string interval = std::to_string(config.poll_interval.count()) + "ms";
      log.info("following files", {{"inotify", "no (polling)"}, {"poll_interval", interval}});
    }
    follower->run();
    ingestion.finish([&] { shared.positions = follower->positions(); });
  } else if (journal_source) {
    server.set_ready(true);
    log.info("following the journal", {{"units", std::to_string(config.journal_units.size())}});
    journal_source->run();
    journal_sink->finish();
  } else {
    server.set_ready(true);
    stdin_end = follow_stdin(stop_fd, ingestion, shared, config.ingest, keep_state, log);
    if (stdin_end == StdinEnd::end_of_input) {
      log.info("end of input; all lines counted");
      if (config.linger) {
        log.info("lingering: serving the final counters until SIGTERM");
        pollfd fd = {stop_fd, POLLIN, 0};
        while (::poll(&fd, 1, -1) < 0 && errno == EINTR) {
        }
      }
    }
  }
  const bool final_save_ok = !saver || saver->stop_and_save();

  // Wake the signal thread if it is still waiting (end of stdin), then shut down.
  if (!stopping.exchange(true)) pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  server.stop();
  ::close(stop_fd);
  if (!final_save_ok) {
    log.error("stopped, but the final state could not be saved", {{"path", config.state_file}});
    return kExitInputError;
  }
  if (stdin_end == StdinEnd::read_error) {
    log.error("stopped after a read error on stdin");
    return kExitInputError;
  }
  log.info("stopped");
  return kExitOk;
}

// No lock: it runs beside the exporter that holds it, and reads only whole, renamed-in files.
int run_cursor(const std::string& state_file) {
  ExporterState state;
  std::string error;
  switch (read_saved_state(state_file, state, error)) {
    case StateRead::missing:
      std::fprintf(stderr, "nixfleet-log-exporter: no state file at %s\n", state_file.c_str());
      return kExitInputError;
    case StateRead::error:
      std::fprintf(stderr, "nixfleet-log-exporter: %s\n", error.c_str());
      return kExitInputError;
    case StateRead::ok: break;
  }
  const std::string& cursor = !state.stdin_journal_cursor.empty() ? state.stdin_journal_cursor : state.journal_cursor;
  if (cursor.empty()) {
    std::fprintf(stderr, "nixfleet-log-exporter: %s records no journal cursor yet\n", state_file.c_str());
    return kExitInputError;
  }
  std::printf("%s\n", cursor.c_str());
  return kExitOk;
}

}  // namespace nle
