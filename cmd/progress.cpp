#include "cmd/progress.h"

#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>

namespace nle {
namespace {

constexpr auto kInterval = std::chrono::milliseconds(500);

std::string megabytes(std::uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

std::string duration(double seconds) {
  const auto s = static_cast<std::uint64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%" PRIu64 ":%02" PRIu64 ":%02" PRIu64, s / 3600, s / 60 % 60, s % 60);
  } else {
    std::snprintf(text, sizeof text, "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
  }
  return text;
}

// The whole of `text` to stderr, unbuffered; a progress line is never worth an error message.
void write_stderr(const std::string& text) {
  std::size_t at = 0;
  while (at < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + at, text.size() - at);
    if (n <= 0) return;
    at += static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string progress_line(const ProgressView& view) {
  const double rate = view.seconds > 0 ? static_cast<double>(view.done) / view.seconds : 0;
  std::string line = "replay: ";
  if (view.total > 0) {
    const std::uint64_t done = view.done < view.total ? view.done : view.total;
    char percent[16];
    std::snprintf(percent, sizeof percent, "%5.1f%% ", 100.0 * static_cast<double>(done) / static_cast<double>(view.total));
    line += percent + megabytes(done) + " of " + megabytes(view.total);
  } else {
    line += megabytes(view.done);
  }
  line += ", file " + std::to_string(view.file) + "/" + std::to_string(view.files);
  char per_second[32];
  std::snprintf(per_second, sizeof per_second, ", %.1f MB/s", rate / 1e6);
  line += per_second;
  if (view.total > 0) {
    line += ", ETA ";
    line += rate > 0 ? duration(static_cast<double>(view.total > view.done ? view.total - view.done : 0) / rate) : "?";
  }
  return line;
}

ProgressMeter::ProgressMeter(ProgressMode mode, std::uint64_t total_bytes, std::size_t files)
    : mode_(mode), total_(total_bytes), files_(files), started_(std::chrono::steady_clock::now()) {
  if (mode_ == ProgressMode::off) return;
  draw(false);  // at once: even a replay shorter than one interval says what it does
  thread_ = std::thread([this] { run(); });
}

ProgressMeter::~ProgressMeter() { finish(); }

void ProgressMeter::begin_file(std::size_t index) { file_.store(index, std::memory_order_relaxed); }

void ProgressMeter::say(const std::string& line) {
  std::lock_guard lock(mutex_);
  // On a terminal the progress line is cleared first; the next update draws it below.
  write_stderr((mode_ == ProgressMode::terminal && !finished_ ? "\r\x1b[K" : "") + line + "\n");
}

void ProgressMeter::run() {
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, kInterval, [this] { return stopping_; })) draw(false);
}

void ProgressMeter::finish() {
  if (mode_ == ProgressMode::off || finished_) return;
  finished_ = true;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
  draw(true);
}

void ProgressMeter::draw(bool final_update) {
  ProgressView view;
  view.done = done_.load(std::memory_order_relaxed);
  view.total = total_;
  view.file = files_ == 0 ? 0 : file_.load(std::memory_order_relaxed) + 1;
  view.files = files_;
  view.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  if (mode_ == ProgressMode::terminal) {
    // Redrawn in place: carriage return, the line, erase what a longer line left behind.
    write_stderr(final_update ? std::string("\r\x1b[K") : "\r" + progress_line(view) + "\x1b[K");
  } else {
    write_stderr(progress_line(view) + "\n");
  }
}

}  // namespace nle
