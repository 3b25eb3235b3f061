// Splits a byte stream, fed in pieces of any size, into lines. Holds a partial line until its
// newline arrives and bounds what it holds: a line longer than the cap is reported once as
// oversize and its bytes are dropped, never buffered. Pure; no I/O; knows nothing of files.
//
// Rules:
// * A line ends at "\n"; a "\r" right before it is removed (CRLF). A "\r" elsewhere is data.
// * finish() hands out a last line that has no newline (end of a replayed file, the old file of
//   a rotation); a "\r" at its very end is removed too.
// * A line (without its "\n" and chomped "\r") longer than max_line_bytes is reported once through
//   on_oversize(size) instead of on_line. At most max_line_bytes + 1 bytes are ever held (the +1
//   is a "\r" that may still turn out to be half of a CRLF); beyond that the line's bytes are
//   counted and dropped, and the next line after its newline is delivered normally.
// * Offsets count bytes fed since construction or reset(start): `complete_offset()` is where the
//   next unread line starts (just after the last "\n" handed out), `fed_offset()` is the end of
//   what was fed. reset(start) lets a caller that starts reading a file at byte `start` keep both
//   offsets relative to the file's start.
//
// Not thread-safe (one splitter per stream). Never throws except std::bad_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace nle {

class LineSplitter {
 public:
  explicit LineSplitter(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  // Calls on_line(std::string_view) for every complete line and on_oversize(std::uint64_t bytes)
  // for every line over the cap (bytes without the newline and without a chomped "\r").
  // A string_view passed to on_line is valid only during that call.
  template <class OnLine, class OnOversize>
  void feed(std::string_view data, OnLine&& on_line, OnOversize&& on_oversize);

  // End of input: a pending last line (no newline) is handed out as a line (or as oversize).
  // Afterwards complete_offset() == fed_offset().
  template <class OnLine, class OnOversize>
  void finish(OnLine&& on_line, OnOversize&& on_oversize);

  // Forgets a pending partial line (the file was truncated under it, or the caller seeks) and
  // sets both offsets to `start_offset` (0: the start of the file).
  void reset(std::uint64_t start_offset = 0) {
    pending_.clear();
    discarding_ = false;
    discarded_ = 0;
    discard_last_cr_ = false;
    complete_offset_ = fed_offset_ = start_offset;
  }

  // Bytes of the partial line held in memory: never more than max_line_bytes + 1 (an oversize
  // line being dropped holds none). fed_offset() - complete_offset() is the partial line's size.
  std::size_t pending_bytes() const { return pending_.size(); }
  // Bytes fed up to the end of the last complete line (the newline included).
  std::uint64_t complete_offset() const { return complete_offset_; }
  std::uint64_t fed_offset() const { return fed_offset_; }
  std::size_t max_line_bytes() const { return max_line_bytes_; }

 private:
  static std::string_view chomp(std::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
  }
  // Whether holding `held` bytes plus `n` more would exceed the cap + 1; written so that a cap of
  // SIZE_MAX (no cap) cannot overflow.
  bool exceeds(std::size_t held, std::size_t n) const {
    if (n == 0) return false;
    if (held > max_line_bytes_) return true;
    return n - 1 > max_line_bytes_ - held;
  }
  template <class OnLine, class OnOversize>
  void deliver(std::string_view line, OnLine& on_line, OnOversize& on_oversize) {
    line = chomp(line);
    if (line.size() > max_line_bytes_) on_oversize(static_cast<std::uint64_t>(line.size()));
    else on_line(line);
  }

  std::size_t max_line_bytes_;
  std::string pending_;           // the start of a line whose newline has not arrived
  bool discarding_ = false;       // inside an oversize line: drop bytes until its newline
  std::uint64_t discarded_ = 0;   // bytes of that line seen so far
  bool discard_last_cr_ = false;  // the last byte dropped was "\r" (not counted if CRLF follows)
  std::uint64_t complete_offset_ = 0;
  std::uint64_t fed_offset_ = 0;
};

template <class OnLine, class OnOversize>
void LineSplitter::feed(std::string_view data, OnLine&& on_line, OnOversize&& on_oversize) {
  const char* const begin = data.data();
  const char* p = begin;
  const char* const end = p + data.size();
  const std::uint64_t base = fed_offset_;
  fed_offset_ += data.size();
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    if (nl == nullptr) {
      const std::size_t n = static_cast<std::size_t>(end - p);
      if (discarding_) {
        discarded_ += n;
        discard_last_cr_ = end[-1] == '\r';
      } else if (exceeds(pending_.size(), n)) {
        discarding_ = true;
        discarded_ = pending_.size() + n;
        discard_last_cr_ = end[-1] == '\r';
        pending_.clear();
        pending_.shrink_to_fit();  // the cap bounds memory, not just the line handed out
      } else {
        pending_.append(p, n);
      }
      return;
    }
    const std::size_t n = static_cast<std::size_t>(nl - p);
    complete_offset_ = base + static_cast<std::uint64_t>(nl + 1 - begin);
    if (discarding_) {
      const bool cr = n > 0 ? nl[-1] == '\r' : discard_last_cr_;
      const std::uint64_t total = discarded_ + n - (cr ? 1 : 0);
      discarding_ = false;
      discarded_ = 0;
      discard_last_cr_ = false;
      on_oversize(total);
    } else if (pending_.empty()) {
      deliver(std::string_view(p, n), on_line, on_oversize);  // no copy for a line within one feed
    } else if (exceeds(pending_.size(), n)) {
      // Appending would hold more than the cap: the line is oversize whatever its end.
      const bool cr = n > 0 ? nl[-1] == '\r' : pending_.back() == '\r';
      const std::uint64_t total = static_cast<std::uint64_t>(pending_.size()) + n - (cr ? 1 : 0);
      pending_.clear();
      on_oversize(total);
    } else {
      pending_.append(p, n);
      deliver(pending_, on_line, on_oversize);
      pending_.clear();
    }
    p = nl + 1;
  }
}

template <class OnLine, class OnOversize>
void LineSplitter::finish(OnLine&& on_line, OnOversize&& on_oversize) {
  if (discarding_) {
    on_oversize(discarded_ - (discard_last_cr_ ? 1 : 0));
  } else if (!pending_.empty()) {
    deliver(pending_, on_line, on_oversize);
  }
  complete_offset_ = fed_offset_;
  pending_.clear();
  discarding_ = false;
  discarded_ = 0;
  discard_last_cr_ = false;
}

}  // namespace nle
