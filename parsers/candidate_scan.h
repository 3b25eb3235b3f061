// Finds, in a block of complete lines, the next line the parser must see: one that holds a needle
// of relevance_needles() (line_parser.h) or is longer than the line cap. Every other line is only
// counted, never visited one by one. Pure: no I/O, no parser state; knows nothing of files or of
// what a record is (the caller hands the lines after a held record to the parser itself).
// Thread-safe: no state but an immutable table built on first use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace nle {

// The next line a scan found, or where it gave up.
struct Candidate {
  bool found = false;
  std::size_t line_begin = 0;      // the line's first byte (block size if !found)
  std::size_t line_end = 0;        // its "\n" (block size if !found, or if the block lacks one)
  std::uint64_t lines_before = 0;  // newlines in [from, line_begin): lines skipped
  // The first needle found on the line is a counting event value (`compliance-failure`, ...): most
  // such lines count, so the candidate screen would only cost time on them.
  bool counting_value = false;
  // The first needle found makes may_be_relevant() true for the line by itself
  // (needle_makes_relevant()), or does so if the line is a JSON object holding a '['
  // (needle_makes_json_object_relevant()): the parser need not search the line for needles again.
  bool relevant = false;
  bool relevant_if_json_object = false;
};

// Scans block[from, size). `from` must be a line start (0, or just after a "\n"). A line is found
// when it contains a relevance needle, or when its length without the "\n" exceeds
// `max_line_bytes` (a "\r" before the "\n" is counted here: the caller decides, exactly, whether
// the chomped line is oversize). Bytes after the last "\n" count as a line only if they hold a
// needle or exceed the cap; they are never counted in lines_before.
Candidate find_candidate(std::string_view block, std::size_t from, std::size_t max_line_bytes);

// Does this one line (no newline) hold a relevance needle? For callers that get lines one at a
// time (follow): the same kernel as find_candidate(), run on a padded copy so that the end of the
// line is not left to the byte-at-a-time tail. Thread-safe (a thread-local copy).
bool line_holds_needle(std::string_view line);

// The kernel picked at start-up: "avx2", "sse2" or "scalar".
std::string_view candidate_scan_kernel();

// For tests: every kernel this CPU can run, fastest first, and find_candidate() with one of them
// (an unknown name picks the default).
std::span<const std::string_view> candidate_scan_kernels();
Candidate find_candidate_with(std::string_view kernel, std::string_view block, std::size_t from,
                              std::size_t max_line_bytes);

// False if some relevance needle contains none of the scanner's SIMD anchors (someone added a
// needle to the parser and not here): find_candidate() then reports every line, correct but slow.
bool candidate_scan_covers_all_needles();

}  // namespace nle
