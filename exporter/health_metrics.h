// The exporter's health as `follow` sees it at scrape time: when it last read, what it has not
// read yet, how far behind the journal it is, and how its state saves go. These are read live at
// every scrape, never from the saved state, so that they still move when the counters are held at
// their last saved values (see cmd/follow.cpp) or when the reader itself is stuck. Plain values
// in, families out: knows nothing of files, the journal or the state file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "exporter/snapshot.h"

namespace nle {

// At most this many files get their own nixfleet_log_exporter_file_unread_bytes series (a glob
// can match many files; the label set stays bounded). The rest are summed under file="other".
inline constexpr std::size_t kMaxUnreadFileSeries = 64;

struct FollowHealth {
  // Unix seconds of the last read that returned bytes; nullopt: nothing read yet (the family is
  // then served at 0, so an alert on its age fires from the start).
  std::optional<double> last_read_time;
  // Per followed file: bytes on disk not yet read (its size now less the read offset).
  struct UnreadFile {
    std::string path;
    std::uint64_t bytes = 0;
  };
  std::vector<UnreadFile> unread_files;
  bool following_files = false;
  // Seconds the last journal entry read is behind now; 0 once every available entry was read.
  // nullopt: not reading the journal.
  std::optional<double> journal_lag_seconds;
  // Only with --state-file.
  struct StateSaves {
    std::uint64_t failures = 0;
    double counting_since = 0;                 // Unix seconds: the failures counter's `_created`
    std::optional<double> last_success_time;  // Unix seconds of the last good write
  };
  std::optional<StateSaves> state;
};

// The families for `health`, sorted by name; a family that does not apply (no files followed, no
// journal, no state file) is left out. Every name starts with "nixfleet_log_exporter_".
std::vector<Family> health_families(const FollowHealth& health);

}  // namespace nle
