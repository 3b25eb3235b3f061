// `follow`: the long-running job. Threads and who owns what:
// - the main thread reads (follower, or stdin) and ingests: the only writer of the registry;
// - the server's threads take a snapshot under the registry mutex and render outside it, so a
//   scrape waits at most for one line's ingestion, never for a file read;
// - a signal thread turns SIGTERM/SIGINT into a stop and SIGHUP into a reopen.

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cmd/commands.h"
#include "cmd/ingest.h"
#include "cmd/logger.h"
#include "exporter/process_metrics.h"
#include "exporter/registry.h"
#include "nle_version.h"
#include "server/metrics_server.h"
#include "source/follower.h"
#include "source/line_splitter.h"

namespace nle {
namespace {

// The registry and its lock; ingestion and scrapes meet only here.
struct SharedRegistry {
  std::mutex mutex;
  Registry registry;
  explicit SharedRegistry(RegistryOptions options) : registry(std::move(options)) {}

  Snapshot snapshot() {
    Snapshot snapshot;
    {
      std::lock_guard lock(mutex);
      snapshot = registry.snapshot();
    }
    // /proc is read outside the lock: a scrape must not slow ingestion down.
    for (Family& family : process_families()) snapshot.push_back(std::move(family));
    std::sort(snapshot.begin(), snapshot.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
    return snapshot;
  }
};

// One ingester per file: a multi-line record held for one file must not be completed by a
// line of another. A read shorter than the chunk means the reader caught up with the writer,
// which writes a record whole, so a held record is complete then.
class IngestingSink final : public FollowerSink {
 public:
  IngestingSink(SharedRegistry& shared, InputFormat format, std::size_t read_chunk_bytes, Logger& log)
      : shared_(shared), format_(format), read_chunk_bytes_(read_chunk_bytes), log_(log) {}

  void on_line(std::string_view path, std::string_view line) override {
    std::lock_guard lock(shared_.mutex);
    ingester_for(path).line(line, ++order_);
  }
  void on_oversize(std::string_view path, std::uint64_t bytes) override {
    {
      std::lock_guard lock(shared_.mutex);
      ingester_for(path).oversize_line(bytes);
    }
    log_.warn("skipped a line over --max-line-bytes", {{"path", path}, {"bytes", std::to_string(bytes)}});
  }
  void on_chunk_done(std::string_view path, std::uint64_t bytes) override {
    std::lock_guard lock(shared_.mutex);
    LineIngester& ingester = ingester_for(path);
    ingester.bytes(bytes);
    if (bytes < read_chunk_bytes_) ingester.end_of_input(++order_);
    ingester.flush();
  }
  void on_rotation(std::string_view path) override {
    count(SelfCounter::rotations);
    log_.info("file rotated; finished the old one, reading the new one from its start", {{"path", path}});
  }
  void on_truncation(std::string_view path) override {
    count(SelfCounter::truncations);
    log_.warn("file truncated; reading it again from its start", {{"path", path}});
  }
  void on_read_error(std::string_view path, std::string_view reason, std::string_view message) override {
    count(SelfCounter::read_errors, reason);
    log_.error("cannot read file; will retry", {{"path", path}, {"reason", reason}, {"error", message}});
  }
  void on_notice(std::string_view message) override { log_.info(message); }
  void on_files_watched(std::size_t count) override {
    std::lock_guard lock(shared_.mutex);
    shared_.registry.set_self(SelfGauge::files_watched, static_cast<double>(count));
  }

 private:
  void count(SelfCounter counter, std::string_view label = {}) {
    std::lock_guard lock(shared_.mutex);
    shared_.registry.add_self(counter, label);
  }

  LineIngester& ingester_for(std::string_view path) {
    auto it = ingesters_.find(path);
    if (it == ingesters_.end()) {
      it = ingesters_.emplace(std::string(path), std::make_unique<LineIngester>(format_, shared_.registry)).first;
    }
    return *it->second;
  }

  SharedRegistry& shared_;
  InputFormat format_;
  std::size_t read_chunk_bytes_;
  Logger& log_;
  std::map<std::string, std::unique_ptr<LineIngester>, std::less<>> ingesters_;
  std::uint64_t order_ = 0;
};

// Reads stdin as it arrives (no buffering delay) until EOF or a stop request.
// Returns true at end of input, false when stopped.
bool follow_stdin(int stop_fd, SharedRegistry& shared, const IngestConfig& config, Logger& log) {
  LineIngester ingester(config.input_format, shared.registry);
  LineSplitter splitter(config.max_line_bytes);
  std::uint64_t order = 0;
  auto on_line = [&](std::string_view line) { ingester.line(line, ++order); };
  auto on_oversize = [&](std::uint64_t bytes) { ingester.oversize_line(bytes); };
  constexpr ssize_t kStdinChunk = 1 << 20;
  std::unique_ptr<char[]> buffer(new char[kStdinChunk]);
  for (;;) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log.error("poll on stdin failed", {{"error", std::strerror(errno)}});
      return true;
    }
    if (fds[1].revents & POLLIN) return false;
    const ssize_t got = ::read(STDIN_FILENO, buffer.get(), kStdinChunk);
    if (got < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      std::lock_guard lock(shared.mutex);
      shared.registry.add_self(SelfCounter::read_errors, "io_error");
      log.error("cannot read stdin", {{"error", std::strerror(errno)}});
      return true;
    }
    std::lock_guard lock(shared.mutex);
    if (got == 0) {
      splitter.finish(on_line, on_oversize);
      ingester.end_of_input(++order);
      ingester.flush();
      return true;
    }
    ingester.bytes(static_cast<std::uint64_t>(got));
    splitter.feed(std::string_view(buffer.get(), static_cast<std::size_t>(got)), on_line, on_oversize);
    if (got < kStdinChunk) ingester.end_of_input(++order);  // caught up with the writer
    ingester.flush();
  }
}

// Where to point curl or Prometheus: an all-interfaces address is reachable on localhost.
std::string scrape_url(const std::string& listen_address, int port, const std::string& path) {
  std::string host = listen_address.substr(0, listen_address.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "localhost";
  return "http://" + host + ":" + std::to_string(port) + path;
}

bool is_stdin(const std::vector<std::string>& inputs) { return inputs.empty() || (inputs.size() == 1 && inputs[0] == "-"); }

}  // namespace

int run_follow(const FollowConfig& config) {
  Logger log(config.log_level, config.log_format);
  if (!is_stdin(config.inputs) && std::find(config.inputs.begin(), config.inputs.end(), "-") != config.inputs.end()) {
    log.error("stdin (-) cannot be followed together with files");
    return kExitUsage;
  }

  RegistryOptions options;
  options.max_series_per_family = config.ingest.max_series;
  options.cp_version = config.ingest.cp_version;
  options.cp_git_commit = config.ingest.cp_git_commit;
  options.exporter_version = NLE_VERSION;
  options.exporter_revision = NLE_GIT_COMMIT;
  SharedRegistry shared(std::move(options));

  ServerOptions server_options;
  server_options.listen_address = config.listen_address;
  server_options.telemetry_path = config.telemetry_path;
  server_options.version = NLE_VERSION;
  server_options.revision = NLE_GIT_COMMIT;
  MetricsServer server(
      server_options, [&shared] { return shared.snapshot(); },
      [&shared](int status) {
        std::lock_guard lock(shared.mutex);
        shared.registry.add_self(SelfCounter::http_requests, std::to_string(status));
      });
  if (std::string error = server.bind(); !error.empty()) {
    log.error(error);
    return kExitUsage;
  }

  // Signals go to one thread that waits for them; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  const int stop_fd = ::eventfd(0, EFD_CLOEXEC);

  server.start();
  log.info("serving metrics", {{"url", scrape_url(config.listen_address, server.port(), config.telemetry_path)},
                               {"version", NLE_VERSION}});

  std::unique_ptr<IngestingSink> sink;
  std::unique_ptr<Follower> follower;
  if (!is_stdin(config.inputs)) {
    FollowOptions follow_options;
    follow_options.patterns = config.inputs;
    follow_options.from_beginning = config.from_beginning;
    follow_options.poll_interval = config.poll_interval;
    follow_options.force_polling = config.force_polling;
    follow_options.max_line_bytes = config.ingest.max_line_bytes;
    sink = std::make_unique<IngestingSink>(shared, config.ingest.input_format, follow_options.read_chunk_bytes, log);
    follower = std::make_unique<Follower>(follow_options, *sink);
  }

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
      const std::uint64_t one = 1;
      [[maybe_unused]] const ssize_t w = ::write(stop_fd, &one, sizeof one);
      return;
    }
  });

  server.set_ready(true);
  if (follower) {
    log.info("following files", {{"inotify", follower->using_inotify() ? "yes" : "no (polling)"}});
    follower->run();
  } else if (follow_stdin(stop_fd, shared, config.ingest, log)) {
    log.info("end of input; all lines counted");
    if (config.linger) {
      log.info("lingering: serving the final counters until SIGTERM");
      pollfd fd = {stop_fd, POLLIN, 0};
      while (::poll(&fd, 1, -1) < 0 && errno == EINTR) {
      }
    }
  }

  // Wake the signal thread if it is still waiting (end of stdin), then shut down.
  if (!stopping.exchange(true)) pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  server.stop();
  ::close(stop_fd);
  log.info("stopped");
  return kExitOk;
}

}  // namespace nle
