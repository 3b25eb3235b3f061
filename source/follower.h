// Makes each followed path (or glob) look like one perpetual log across appends, rotation and
// truncation, in the way of `tail -F`, and hands its lines out in order. Owns files, inotify and
// offsets; knows nothing of what a line means (no parsing, no counters, no HTTP, no state file).
//
// The rules, one place. A *file* is a (device, inode); a *path* names whichever file is there now.
//
// * Appends: bytes are read as they are written, in writes of any size; a line split across
//   writes is held until its newline, so every line is handed out exactly once. Each open file has
//   its own LineSplitter (lines over max_line_bytes go to on_oversize).
// * Start: files that exist at start-up (the first pass) are read from their end, unless
//   from_beginning; files that appear later (created, a new glob match, or first readable after
//   start-up) are read from their start. Reading that starts at an offset > 0 in the middle of a
//   line (the byte before it is not "\n") drops the rest of that line, so no fragment of a line
//   written before we started is handed out.
// * Rename rotation (logrotate `create`): the path now names a new file. The old file, still
//   open, is read to its end first (end = a read returns 0 after the rotation was seen); a last
//   line without a newline there is handed out too (LineSplitter::finish); then it is closed and
//   the new file is read from its start. on_rotation(path) is called when reading switches from the
//   old file to the new one, i.e. after the old file's lines. Old files still being finished when
//   the path rotates again queue up and are finished oldest first. A rotation is counted only when
//   the path goes on with new content: with a glob, app.log.1 switching to the file that was
//   app.log (a file read already, continued where it ended) or to a copy ("Copies") is not one,
//   so one logrotate run is one rotation however many rotated names the glob matches; a glob name
//   that vanished and came back with new content is one (app.log between logrotate's rename and
//   its create). Not read (as with tail -F): a
//   file that was created and rotated away between two passes, never opened -- with inotify a pass
//   follows each change within milliseconds, so only polling mode has a real window -- and bytes
//   the writer adds to the old file after we saw its end (rotate with a postrotate reload, as
//   logrotate setups do).
// * Copytruncate: the file at the path is the same file but shorter than the bytes we have read,
//   or its first bytes (up to 256) are no longer those it had (truncated and written again past
//   our offset between two passes). Reading restarts at 0, the partial line held is dropped;
//   on_truncation(path). (A truncation regrown past our offset with the same first 256 bytes
//   cannot be told from an append.)
// * Path gone: the open file is still read to its end. If it has no links left (deleted) it is then
//   finished and closed, so its disk space is freed, and the next file at the path counts as a
//   rotation. If it was renamed away (still linked) it stays open and is read as it grows until the
//   path names a file again (then: rename rotation) -- except for a glob match that no longer
//   matches, which is finished and closed at its end (so dated or archived files do not pin fds).
// * Absent: a literal path that does not exist, or a glob that matches no file, is waited for
//   without error, with a single notice "waiting for PATTERN to appear" per absence.
// * Globs (`*`, `?`, `[...]`, glob(3) syntax, also in directory parts) are expanded every pass.
//   Directories and non-regular files among the matches are skipped silently (a literal path that
//   is one is a read error). Compressed matches (compression_of: by name, or by magic bytes for a
//   file not being read yet) are never opened as text: one notice per name, then skipped (logrotate's
//   app.log.2.gz; a literal compressed path is refused by check()). A file is read once even if
//   several paths name it: a match whose file is already open under another path (e.g. `app.log*`
//   matching app.log.1 while app.log's old file is being finished) is not opened; once that file
//   has been finished, the match continues where it ended (same file, long enough, same
//   fingerprint) instead of reading it again from 0.
// * Copies (copytruncate through a glob): logrotate copies app.log to app.log.1, then truncates
//   app.log. A glob's match that appears after the first pass, is not a file already read under
//   another name, and is at a plain rotated name (PATH.<suffix>, PATH-<suffix>, not compressed) of
//   a followed path PATH, is compared by its first bytes (up to 4 KiB, match_head()) with PATH's
//   content: the content last truncated away at PATH (the last 32 truncations are remembered) --
//   a copy of it is read from where reading of the original stopped (so lines the original lost
//   to the truncation before we read them are read from the copy, and nothing is read twice); or
//   PATH's file still being read -- a copy (or a prefix) of it is *held* (open, unread) while the
//   original is read on, and its truncation decides. Anything else is new content, read from its
//   start at once: only a rotated name of a path can be its copy, so a new file whose lines merely
//   repeat another file's is never taken for a copy. A held match that disappears unread was a
//   copy. For a literal path, at its truncation, the copy is looked for beside it instead: of the
//   plain rotated names not open and longer than our offset whose first bytes are a copy, the
//   newest is read from our offset as an old file of the path, before the path's new lines. A copy
//   compressed before we saw it is not read: its unread lines are lost.
// * Stdin: a pattern "-" (or "") is rejected -- stdin is not a file that can rotate; the caller
//   reads it with a plain read loop. check() says so up front; the follower ignores such a pattern
//   with one on_read_error(pattern, "unsupported", ...).
// * Read errors are reported once per path and reason until the path recovers (a file opens or a
//   read succeeds), never stop the follower, and are retried on every pass. Reasons:
//   "permission_denied" (EACCES, EPERM), "is_directory", "not_regular_file" (fifo, device, socket),
//   "too_many_open_files" (EMFILE, ENFILE), "io_error" (anything else, e.g. EIO).
// * Fairness: one pass reads at most max(8 MiB, read_chunk_bytes) per path, so several busy files
//   share the thread and stop requests are honoured between chunks; run() starts the next pass at
//   once (without sleeping) while a path has more to read.
// * Wakeups: inotify watches on the parent directories of every pattern (for a glob directory
//   part, every directory that matches each level; for a directory that does not exist yet, its
//   nearest existing parent), with IN_CREATE|IN_MOVED_TO|IN_MOVED_FROM|IN_DELETE|IN_MODIFY|
//   IN_CLOSE_WRITE|IN_ATTRIB (+ the directory's own deletion and move). An idle follower blocks in
//   poll(2) with no timeout: no periodic rescan, because every change the rules above react to
//   happens in a watched directory. (Not seen until the next event: bytes appended to a followed
//   file after it was renamed into an unwatched directory, and an EIO that heals by itself.)
//   Events for names no pattern matches are ignored without a pass, unless a renamed-away file is
//   open (its new name is unknown). Stat polling every poll_interval instead when inotify cannot be
//   initialised, a watch cannot be added (e.g. ENOSPC: out of watches), or force_polling; a notice
//   says so. request_reopen() tries inotify again.
// * Positions: positions() gives one FilePosition per followed path that has an open file: the
//   oldest one (during a rotation, the old file still being finished; the newer ones have not been
//   started and are found again by resume). path = the canonical path (the directory resolved by
//   realpath(3), the name kept), so that `cp.log` and `/abs/dir/cp.log` are one key; a held match
//   is saved as read to its end. offset = just after the last complete line handed out
//   (relative to the file's start); fingerprint = 64-bit FNV-1a (offset basis 0xcbf29ce484222325,
//   prime 0x100000001b3) of the min(4096, offset) bytes before offset, read with pread when
//   positions() is called (and cached per offset).
// * Resume (FollowOptions::resume; these win over from_beginning). An entry applies to a followed
//   path, whatever the spelling of either: the path matched now with the same canonical path (an
//   older relative entry is resolved against the working directory), else the one that names the
//   entry's (device, inode), else the path a pattern gives it (a literal of the same canonical
//   path, or a glob matching it with fnmatch(3) FNM_PATHNAME|FNM_PERIOD, its directory resolved
//   too); other entries are ignored with a notice. The first entry per path wins. "Verifies" below means: file size >= offset, fingerprint_bytes <= min(4096, offset), and
//   the FNV-1a of the fingerprint_bytes bytes before offset equals fingerprint.
//   1. The path still names the saved (device, inode): if it verifies, reading starts at offset;
//      otherwise (truncated or rewritten while stopped) at 0, with on_truncation(path) -- after the
//      copytruncate copy beside it, if one verifies (a plain rotated sibling, see 2, longer than
//      offset), from offset.
//   2. The path names another file, or nothing: the saved file is looked for among the regular
//      files of the path's directory (renamed away while stopped, e.g. app.log.1 or app.log.2).
//      If found and it verifies, it is finished from offset first; then the path's rotated
//      siblings newer than it, each from 0, oldest first; then the file at the path, from 0. Each
//      switch is a rotation. Siblings are PATH.<suffix> and PATH-<suffix> in the same directory,
//      except compressed ones (.gz .bz2 .xz .zst .lz4 .br .zip .Z names, or gzip magic bytes);
//      "older" = older mtime, on a tie the larger numeric suffix (app.log.2 before app.log.1).
//      When the path names nothing, the newest of these files stays open as the path's (renamed
//      away) file. Double rename: app.log.2 (saved) rest, app.log.1 from 0, app.log from 0.
//   3. Otherwise (the saved file is gone for good or no longer verifies): one notice, and the file
//      at the path is read from 0 -- all of it is newer than the saved position.
//
// Thread-safety: not thread-safe. run(), poll_once() and positions() on one thread (positions()
// for example from a sink callback, which runs on that thread). request_stop() and
// request_reopen() from any thread, and are async-signal-safe (an atomic store and a write(2) to an
// eventfd). Nothing throws out of this class: an unexpected exception (out of memory, or thrown by
// the sink) ends poll_once()/run() after an on_notice.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace nle {

// Where one file stands, for the state file: the offset just after the last complete line handed
// out, and a fingerprint (a hash of up to 4 KiB before the offset) so that a file replaced or
// truncated while the tool was stopped is noticed instead of read from a wrong place.
struct FilePosition {
  std::string path;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t offset = 0;
  std::uint64_t fingerprint = 0;
  std::uint32_t fingerprint_bytes = 0;  // how many bytes before `offset` the hash covers
};

struct FollowOptions {
  std::vector<std::string> patterns;  // paths or globs (`*`, `?`, `[...]`); not "-"
  bool from_beginning = false;
  std::chrono::milliseconds poll_interval{1000};  // polling mode only; at least 1 ms
  bool force_polling = false;
  std::size_t max_line_bytes = 1 << 20;
  std::size_t read_chunk_bytes = 1 << 20;  // one read(2); at least 4096
  std::vector<FilePosition> resume;  // from a state file: these win over from_beginning
};

// What the follower tells its user. Called on the follower's thread.
class FollowerSink {
 public:
  virtual ~FollowerSink() = default;
  virtual void on_line(std::string_view path, std::string_view line) = 0;
  virtual void on_oversize(std::string_view path, std::uint64_t bytes) = 0;
  // The whole lines of one read that began in it, each ending in "\n" (a "\r" before it still
  // to be chomped), in one block: a sink that scans blocks (the exporter's) need not visit them
  // line by line. The default hands each to on_line, or to on_oversize if it is longer than
  // `max_line_bytes`, exactly as the splitter would have.
  virtual void on_lines(std::string_view path, std::string_view block, std::size_t max_line_bytes);
  // After a batch of lines from one read, and after a finished file's last line (bytes 0); every
  // on_line is followed by an on_chunk_done before the follower sleeps. A good moment to publish.
  virtual void on_chunk_done(std::string_view path, std::uint64_t bytes) = 0;
  virtual void on_rotation(std::string_view path) = 0;
  virtual void on_truncation(std::string_view path) = 0;
  // reason is a short label value: "permission_denied", "is_directory", "io_error", ...
  // (the full list is in the rules above).
  virtual void on_read_error(std::string_view path, std::string_view reason, std::string_view message) = 0;
  virtual void on_notice(std::string_view message) = 0;
  // Open files (including old files still being finished after a rotation); called on the first
  // pass and whenever the number changes.
  virtual void on_files_watched(std::size_t count) = 0;
};

// The compression format of a file, from its name (.gz .bz2 .xz .zst .lz4 .br .zip .Z) or else
// from its first bytes (the gzip, zstd, xz, bzip2, lz4 and zip magic numbers; 6 bytes are enough):
// "gzip", "bzip2", "xz", "zstd", "lz4", "brotli", "zip" or "compress"; "" for none. Pure.
std::string_view compression_of(std::string_view name, std::string_view first_bytes);

// How the first bytes of a newly found file (`candidate`, up to 4 KiB) compare with those of a
// file already read (`known`: its first bytes as far as they were read, up to 4 KiB). Pure.
enum class HeadMatch {
  different,  // some byte differs, or nothing is known: not a copy
  prefix,     // candidate is shorter and all of it is the start of known: too early to tell
  copy,       // candidate starts with all of known (known not empty): a copy of that file
};
HeadMatch match_head(std::string_view candidate, std::string_view known);

class Follower {
 public:
  Follower(FollowOptions options, FollowerSink& sink);
  ~Follower();
  Follower(const Follower&) = delete;
  Follower& operator=(const Follower&) = delete;

  // An error message for options the follower cannot honour (no patterns, a pattern "-" or "", a
  // literal path that is compressed by name or by its first bytes: "use replay"),
  // or "" when they are fine. For the caller to check before constructing.
  static std::string check(const FollowOptions& options);

  // One pass: discover files, detect rotation and truncation, read what is new. Tests step
  // the follower with this instead of sleeping. Never blocks (on regular files).
  void poll_once();
  // Loops poll_once(), sleeping on inotify (or the poll interval) between passes, until
  // request_stop(). Returns after finishing the chunk in hand (partial lines stay held, so
  // positions() still ends at a complete line). Returns at once if a stop was already requested.
  void run();
  // Wakes a blocked run(), which returns well within a second. Sticky.
  void request_stop();
  // SIGHUP: close and reopen every input at its current offset (a path that now names another
  // file is handled as a rotation on the next pass); tries inotify again after a fallback.
  void request_reopen();
  bool using_inotify() const;
  // Every followed path's position after the lines handed out so far (consistent at
  // on_chunk_done). See "Positions" above.
  std::vector<FilePosition> positions() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle
