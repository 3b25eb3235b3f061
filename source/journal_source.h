// Reads the systemd journal through libsystemd's sd-journal and hands out each entry's MESSAGE
// bytes with the entry's cursor. Owns the sd_journal handle, unit matches, positioning and the
// wait for new entries; knows nothing of what a message means, of counters or of the state file.
//
// The rules, one place.
// * Source: the local system journal (sd_journal_open, SD_JOURNAL_LOCAL_ONLY), or the journal
//   files of one directory (sd_journal_open_directory) for offline journals and tests. Files that
//   appear in the directory later (rotation, journal-remote) are picked up.
// * Filter: --journal-unit values match _SYSTEMD_UNIT exactly, several units OR-ed. A name without
//   a unit type suffix (.service, .socket, .timer, ...) gets ".service", as systemctl mangles it.
//   No unit: every entry.
// * Messages: MESSAGE as stored, byte for byte (colour escapes, invalid UTF-8, NUL, embedded
//   newlines; no size limit), one on_message per entry. Entries without MESSAGE are skipped
//   silently; a MESSAGE that cannot be read (corrupt file, unsupported compression) is one
//   on_error("bad_entry") and the entry is skipped.
// * Start: after resume_cursor if given (the cursor's entry itself is not handed out again; if it
//   is gone, reading starts at the first entry after where it was); else the head with
//   from_beginning; else the tail: only entries added after open() are handed out.
// * Following: each poll_once() first calls sd_journal_process() (new and removed files), then
//   reads. run() blocks between passes in poll(2) on sd_journal_get_fd() and an eventfd for
//   request_stop(), with no timeout unless sd_journal_get_timeout() asks for one. When files were
//   added or removed (SD_JOURNAL_INVALIDATE: rotation, vacuuming), reading re-seeks after the last
//   cursor handed out, so no entry is handed out twice or skipped because its file went away.
// * Errors after open() are reported through on_error(reason, message) and never stop the source:
//   "read_error" (sd_journal_next failed), "bad_entry" (MESSAGE or cursor unreadable),
//   "wait_error" (poll or sd_journal_process failed; retried after a second).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "source/fd.h"

struct sd_journal;

namespace nle {

struct JournalOptions {
  // Match _SYSTEMD_UNIT=UNIT; several are OR-ed. "name" means "name.service".
  std::vector<std::string> units;
  // Read the journal files in this directory instead of the system journal.
  std::string directory;
  // With no resume_cursor: start at the head instead of the tail.
  bool from_beginning = false;
  // From the state file: start after this entry. Wins over from_beginning.
  std::string resume_cursor;
};

// Receives what the source reads, on the thread that calls poll_once() or run().
class JournalSink {
 public:
  virtual ~JournalSink() = default;
  // One call per entry: MESSAGE's bytes as stored, the entry's cursor, and when it was logged
  // (__REALTIME_TIMESTAMP, microseconds since the Unix epoch; 0 if unreadable). Both views die
  // when the call returns.
  virtual void on_message(std::string_view message, std::string_view cursor, std::uint64_t realtime_usec) = 0;
  // Every available entry has been handed out (a good moment to complete held records and save
  // state). Not called when request_stop() interrupts a backlog.
  virtual void on_caught_up() = 0;
  // A problem after open(), counted and logged by the caller; reading goes on. reason is a short
  // stable label (see the rules above), message says what happened.
  virtual void on_error(std::string_view reason, std::string_view message) = 0;
  // Something worth a log line that is not an error (e.g. no journal files readable yet).
  virtual void on_notice(std::string_view message) = 0;
};

// Not thread-safe, except request_stop(), which any thread may call at any time.
class JournalSource {
 public:
  JournalSource(JournalOptions options, JournalSink& sink);
  ~JournalSource();
  JournalSource(const JournalSource&) = delete;
  JournalSource& operator=(const JournalSource&) = delete;

  // Opens the journal, adds the unit matches and positions the reader. Returns "" or a clear
  // error (no such directory, permission denied, invalid cursor, ...). Call once, before the rest.
  std::string open();
  // Hands out every entry available now, then on_caught_up(). Does nothing unless open() succeeded.
  void poll_once();
  // poll_once(), then wait for new entries and repeat until request_stop(). Returns at once if
  // open() did not succeed.
  void run();
  // Makes run() return promptly (also if called before run() starts). One-way.
  void request_stop();
  // Cursor of the last entry handed to on_message ("" if none yet).
  std::string cursor() const { return last_cursor_; }
  // Cursor of the entry reading continues after: the last one handed out, else where open() placed
  // the reader (the resume cursor, or the tail's last entry); "" when reading starts at the head.
  // What a saved state must hold before any entry is read, so a restart resumes from the same place.
  std::string position() const { return anchor_cursor_; }

  // A --journal-unit value as the _SYSTEMD_UNIT it matches: "x" -> "x.service", "x.socket" kept.
  static std::string unit_name(std::string_view name);

 private:
  struct JournalCloser {
    void operator()(sd_journal* j) const;
  };

  // Seek so that the next sd_journal_next() lands on the entry after `cursor`; the first entry
  // read afterwards is dropped if it is that entry. false (and sets *error) on an invalid cursor.
  bool seek_after(const std::string& cursor, std::string* error);
  // sd_journal_process(): notices new and removed files; re-seeks after an invalidation.
  void process_changes();
  // Waits for the journal or the stop eventfd; false once a stop was requested.
  bool wait();

  JournalOptions options_;
  JournalSink& sink_;
  std::unique_ptr<sd_journal, JournalCloser> journal_;
  Fd stop_fd_;             // eventfd written by request_stop()
  int stop_fd_errno_ = 0;  // eventfd() failed in the constructor; open() reports it
  std::atomic<bool> stop_requested_{false};
  std::string last_cursor_;    // last entry handed out, for cursor()
  std::string anchor_cursor_;  // reading continues after this entry: last handed out, resume or tail
  std::string skip_cursor_;    // after seek_after(): drop the first entry read if it is this one
  bool opened_ = false;
  bool back_off_ = false;  // the last wait or process failed: next wait is a pause, not a poll
};

}  // namespace nle
