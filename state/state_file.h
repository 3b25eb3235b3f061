// The state file: what `follow --state-file` keeps across restarts (file positions, journal
// cursors, counter series, the learned build info), its JSON format, and writing it atomically.
// Knows nothing of parsing, HTTP or following: it stores plain values the caller gathered.
//
// The format (version 2): one JSON object, UTF-8, one file position or counter series per line
// so that two state files diff well:
//
//   {
//     "format": "nixfleet-log-exporter-state",
//     "version": 2,
//     "written_at": "2024-05-01T12:00:00Z",
//     "exporter_version": "0.1.0 (c20df8e1a2b3)",
//     "journal_cursor": "s=6b1c;i=2a",
//     "stdin_journal_cursor": "",
//     "build_info": {"version": "1.4.2", "git_commit": "9f1c2ab", "order": 17},
//     "files": [
//       {"path": "/var/log/nixfleet/cp.log", "device": 2049, "inode": 131, "offset": 4096,
//        "fingerprint": "cbf29ce484222325", "fingerprint_bytes": 4096},
//       {"path_hex": "2f7661722f6c6f672f636166e92e6c6f672e31", "device": 2049, ...}
//     ],
//     "counters": [
//       {"family": "nixfleet_compliance_failure_events", "labels": {"control_id": "CIS-5.2.1",
//        "host": "web-07"}, "value": 3, "created": 1714564800.25, "exemplar": {"labels":
//        {"event_id": "3b0f..."}, "timestamp_micros": 1795162652411481}},
//       {"family": "nixfleet_gate_block", "labels": {"gate": "host-edge"}, "value": 3,
//        "created": 1714564800.25},
//       {"family": "nixfleet_log_exporter_lines_read", "labels": {}, "value": 9, "created": 1714564800.25}
//     ]
//   }
//
// * "format" and "version" are checked first: another format or version is refused by name, before
//   anything else is looked at, so a future layout never half-loads. Version 1 (no exemplars) is
//   still read; what is written is version 2.
// * A counter's "exemplar" (version 2) is optional: present when the series served one. Its
//   "labels" hold exactly one label; "timestamp_micros" is an integer (Unix microseconds, the
//   event's log time) or null (the log line had none).
// * Byte strings (file paths, journal cursors) are not necessarily UTF-8, and JSON text must be.
//   Each is written as "NAME": "text" when it is valid UTF-8 and as "NAME_hex": "2f7661..."
//   (lower-case hex of the bytes) when it is not; a reader takes exactly one of the two.
// * Numbers: device, inode, offset, fingerprint_bytes, order and counter values are JSON integers
//   written in full and read back exactly (as unsigned 64-bit; tools that read JSON numbers as
//   doubles, such as jq before 1.7, round those above 2^53). A counter value is a non-negative
//   integer. `created` is the shortest decimal that reads back as the same double.
// * The fingerprint is 16 lower-case hex digits (a u64 does not survive a double-based JSON tool).
// * "build_info" is null when none was learned; an empty cursor means none.
// * Counters are sorted (family, label names, label values); files keep the caller's order, which
//   the follower's resume reads as a priority (the first entry for a path wins).
// * Unknown members are ignored (room for optional additions without a version bump); every member
//   above is required and must have its type, or the file is refused with the member's name.
// * A file's "path" is the follower's canonical path (FilePosition); files written before that
//   hold the path as typed, which the follower resolves against the working directory. Either is
//   just bytes here: no version change.
// * "written_at" and "exporter_version" are for humans; they are read back but decide nothing.
//
// Thread-safety: every function here is reentrant; one writer per state file path at a time
// (write_state_file reuses PATH.tmp as its temp file), which lock_state_file enforces between
// processes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/counter_state.h"
#include "source/follower.h"

namespace nle {

inline constexpr std::string_view kStateFormat = "nixfleet-log-exporter-state";
inline constexpr std::uint64_t kStateVersion = 2;        // what is written
inline constexpr std::uint64_t kOldestStateVersion = 1;  // the oldest still read

struct ExporterState {
  std::vector<FilePosition> files;  // one per followed path (source/follower.h)
  std::string journal_cursor;        // the native journald source's last processed entry; "" if none
  std::string stdin_journal_cursor;  // last __CURSOR seen in journald JSON on stdin; "" if none
  std::vector<CounterState> counters;
  std::optional<BuildInfoState> build_info;  // learned from the log
  // For humans reading the file; the caller fills them in.
  std::int64_t written_at = 0;   // Unix seconds, written as an ISO 8601 UTC time
  std::string exporter_version;  // e.g. "0.1.0 (c20df8e1a2b3)"
};

// The file's text. Pure and deterministic. Label values, family and label names and build info
// are expected to be valid UTF-8 (the registry guarantees it); anything else is repaired with
// U+FFFD rather than written as invalid JSON. Counter values are written as integers: a fraction is
// dropped, a negative or NaN value is written as 0, one beyond 2^64 - 1 as 2^64 - 1. A non-finite
// `created` is written as 0. Label names and values pair up by index; unpaired ones are dropped.
std::string serialize_state(const ExporterState& state);

// Reads serialize_state's output back. Pure. On failure returns nullopt and sets `error` to one
// line saying what is wrong and where ("counters[3].value: expected a non-negative integer"),
// e.g. "unsupported state file version 3 (this exporter reads 1 to 2)" or, for a truncated or corrupt
// file, "not valid JSON (truncated or corrupt?): ...".
std::optional<ExporterState> parse_state(std::string_view text, std::string& error);

// What a successful write_state_file survives.
enum class StateDurability : unsigned char {
  // fsync the temp file before the rename and the directory after it: the new contents survive a
  // power cut or a kernel crash too. Costs two disk flushes (~10-30 ms on a VM's disk).
  power_loss,
  // Rename without flushing: the new contents survive the death of this process (kill -9, OOM,
  // abort), which is all the page cache needs to keep; after a power cut `path` holds the old or
  // the new contents (ext4 and xfs flush a file renamed over another before the rename), never a
  // mix. Costs no disk flush, so it can run before answering a scrape.
  process_crash,
};

// Replaces `path` with `contents` atomically: write PATH.tmp (same directory, so the rename stays
// within one file system), fsync it, rename it over `path`, fsync the directory (the fsyncs only
// with StateDurability::power_loss). Whenever the process or the machine dies, `path` holds
// either the old contents or the new, never a mix; a PATH.tmp may be left behind, and is
// overwritten by the next write. New files get mode 0644 less the umask (`nixfleet-log-exporter
// cursor` may run as another user). On failure returns false, sets `error` to a message naming
// the path and the system error, and removes PATH.tmp; `path` is then untouched.
bool write_state_file(const std::string& path, std::string_view contents, std::string& error,
                      StateDurability durability = StateDurability::power_loss);

enum class StateRead { ok, missing, error };
// Reads the whole file at `path` into `contents`. `missing` when it does not exist (ENOENT: a
// first start); `error` (with a message naming the path) for anything else, including a path that
// is not a regular file.
StateRead read_state_file(const std::string& path, std::string& contents, std::string& error);

// ---------------------------------------------------------------------------------------------
// One exporter per state file. Two exporters saving to one path would rename over each other's
// saves and each resume from positions the other counted past: counts silently lost or doubled.
// So the writer (`follow`) holds an exclusive flock(2) on a sibling file PATH.lock from before it
// reads the state until after its last save, and a second writer is refused at start. Readers
// (`cursor`) take no lock: they run beside the exporter, and the rename makes every read whole.
// The kernel drops the lock when the process dies, however it dies, so there is no stale lock to
// clean up. PATH.lock stays on disk: removing it would let one process lock the old inode and
// another a new file under the same name, both believing they hold the lock.

// The lock on one state file, held while this object lives (moved, not copied).
class StateFileLock {
 public:
  StateFileLock(StateFileLock&& other) noexcept;
  StateFileLock& operator=(StateFileLock&& other) noexcept;
  StateFileLock(const StateFileLock&) = delete;
  StateFileLock& operator=(const StateFileLock&) = delete;
  ~StateFileLock();

  // Gives the lock up now; the destructor does the same.
  void release();

 private:
  friend std::optional<StateFileLock> lock_state_file(const std::string& state_path, std::string& error);
  explicit StateFileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// PATH.lock: the file lock_state_file locks for the state file `state_path`.
std::string state_lock_path(const std::string& state_path);

// Takes the lock for `state_path` without waiting: opens (creating it, mode 0644 less the umask)
// PATH.lock, locks it, and writes our pid into it so that a refused exporter can name us. On
// failure returns nullopt and sets `error`. When another process holds the lock (another open of
// PATH.lock in this process counts too: flock locks belong to the open file, not the process):
//   the state file PATH is in use by another nixfleet-log-exporter (pid N, lock PATH.lock held);
//   run one exporter per state file
// ("pid N, " only when the lock file names one). Otherwise a message naming the lock file, the
// state file and the system error, e.g. for a directory that does not exist.
std::optional<StateFileLock> lock_state_file(const std::string& state_path, std::string& error);

}  // namespace nle
