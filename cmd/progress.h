// What replay shows on stderr while it reads: percent and bytes of the inputs done, the file
// being read, the rate and the time left. On a terminal one line is redrawn in place and
// cleared at the end; forced onto a pipe or file (--progress), each update is a line of its own.
// add() is thread-safe (parallel ranges report from their threads); the rest belongs to the
// thread that runs replay.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace nle {

struct ProgressView {
  std::uint64_t done = 0;   // bytes of the inputs as stored (compressed bytes of a .gz)
  std::uint64_t total = 0;  // 0: unknown (stdin or a pipe is among the inputs)
  std::size_t file = 0;     // 1-based index of the input being read
  std::size_t files = 0;
  double seconds = 0;       // since replay began
};

// "replay:  42.0% 412.3 MB of 981.0 MB, file 2/4, 350.1 MB/s, ETA 0:03"; without a total
// "replay: 412.3 MB, file 1/1, 350.1 MB/s". Pure, for the tests.
std::string progress_line(const ProgressView& view);

enum class ProgressMode : unsigned char { off, terminal, lines };

class ProgressMeter {
 public:
  // Updates twice a second (at least once a second, as a person expects), from a thread of its
  // own; does nothing when `mode` is off.
  ProgressMeter(ProgressMode mode, std::uint64_t total_bytes, std::size_t files);
  ~ProgressMeter();  // finish()
  ProgressMeter(const ProgressMeter&) = delete;
  ProgressMeter& operator=(const ProgressMeter&) = delete;

  void begin_file(std::size_t index);  // 0-based; shown 1-based
  void add(std::uint64_t bytes) { done_.fetch_add(bytes, std::memory_order_relaxed); }
  // A message line on stderr (an input that cannot be read) that the progress line does not
  // overwrite; shown whatever the mode.
  void say(const std::string& line);
  // Stops updating: a terminal's line is cleared, a pipe gets the final state. Idempotent.
  void finish();

 private:
  void run();
  void draw(bool final_update);

  ProgressMode mode_;
  std::uint64_t total_;
  std::size_t files_;
  std::atomic<std::uint64_t> done_{0};
  std::atomic<std::size_t> file_{0};
  std::chrono::steady_clock::time_point started_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool finished_ = false;
  std::thread thread_;
};

}  // namespace nle
