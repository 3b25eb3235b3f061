#include "source/journal_source.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace nle {
namespace {

constexpr std::string_view kMessagePrefix = "MESSAGE=";
// After poll(2) or sd_journal_process() fails, wait this long before trying again, so a
// persistent failure is a slow trickle of errors rather than a busy loop.
constexpr int kErrorBackoffMs = 1000;

std::string errno_text(int error) { return std::strerror(error < 0 ? -error : error); }

// sd_journal_get_cursor() hands out malloc'd strings.
struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

uint64_t monotonic_now_us() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// sd_journal_get_timeout() gives an absolute CLOCK_MONOTONIC deadline (or UINT64_MAX for none);
// poll(2) wants milliseconds from now, rounded up so we do not wake just before the deadline.
int poll_timeout_ms(uint64_t deadline_us) {
  if (deadline_us == UINT64_MAX) return -1;
  const uint64_t now = monotonic_now_us();
  if (deadline_us <= now) return 0;
  const uint64_t ms = (deadline_us - now + 999) / 1000;
  return ms > static_cast<uint64_t>(INT_MAX) ? INT_MAX : static_cast<int>(ms);
}

}  // namespace

void JournalSource::JournalCloser::operator()(sd_journal* j) const { sd_journal_close(j); }

JournalSource::JournalSource(JournalOptions options, JournalSink& sink)
    : options_(std::move(options)), sink_(sink) {
  // Created here rather than in open() so request_stop() works from the moment the object exists.
  const int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd >= 0) {
    stop_fd_ = Fd(fd);
  } else {
    stop_fd_errno_ = errno;
  }
}

JournalSource::~JournalSource() = default;

std::string JournalSource::unit_name(std::string_view name) {
  // The unit types systemd knows; anything else after a dot is part of the name, as systemctl's
  // name mangling has it ("foo.bar" means "foo.bar.service").
  static constexpr std::array<std::string_view, 11> kTypes = {
      ".service", ".socket", ".target", ".device", ".mount", ".automount",
      ".swap",    ".timer",  ".path",   ".slice",  ".scope"};
  for (std::string_view type : kTypes) {
    if (name.size() > type.size() && name.substr(name.size() - type.size()) == type) return std::string(name);
  }
  return std::string(name) + ".service";
}

std::string JournalSource::open() {
  if (opened_) return "the journal is already open";
  if (!stop_fd_.valid()) return "cannot create an eventfd: " + errno_text(stop_fd_errno_);

  sd_journal* raw = nullptr;
  int r = 0;
  if (!options_.directory.empty()) {
    // sd-journal's errors for a bad directory are a bare errno (ENOENT, ENOTDIR), so check first
    // and say which path is wrong and how.
    const std::string& dir = options_.directory;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
      if (errno == ENOENT) return "journal directory " + dir + " does not exist";
      return "cannot access journal directory " + dir + ": " + errno_text(errno);
    }
    if (!S_ISDIR(st.st_mode)) return "journal directory " + dir + " is not a directory";
    if (::access(dir.c_str(), R_OK | X_OK) != 0) {
      return "cannot read journal directory " + dir + ": " + errno_text(errno);
    }
    r = sd_journal_open_directory(&raw, dir.c_str(), 0);
    if (r < 0) return "cannot open journal directory " + dir + ": " + errno_text(r);
  } else {
    r = sd_journal_open(&raw, SD_JOURNAL_LOCAL_ONLY);
    if (r < 0) return "cannot open the system journal: " + errno_text(r);
  }
  journal_.reset(raw);
  sd_journal* j = journal_.get();

  // 0 = no limit. sd-journal documents that compressed fields above the threshold (64 KiB by
  // default) "might get truncated"; a cut MESSAGE would be a wrong line, not a short one.
  r = sd_journal_set_data_threshold(j, 0);
  if (r < 0) return "cannot configure the journal: " + errno_text(r);

  for (const std::string& unit : options_.units) {
    if (unit.empty()) return "--journal-unit must not be empty";
    // Matches on the same field are OR-ed by sd-journal, which is what several units mean.
    const std::string match = "_SYSTEMD_UNIT=" + unit_name(unit);
    r = sd_journal_add_match(j, match.data(), match.size());
    if (r < 0) return "cannot match journal unit " + unit + ": " + errno_text(r);
  }

  // The inotify watches are set up here, before positioning, so no file added between reading
  // the journal and the first wait in run() goes unnoticed.
  r = sd_journal_get_fd(j);
  if (r < 0) return "cannot watch the journal for new entries: " + errno_text(r);

  std::string error;
  if (!options_.resume_cursor.empty()) {
    if (!seek_after(options_.resume_cursor, &error)) return error;
  } else if (options_.from_beginning) {
    r = sd_journal_seek_head(j);
    if (r < 0) return "cannot seek to the head of the journal: " + errno_text(r);
  } else {
    r = sd_journal_seek_tail(j);
    if (r < 0) return "cannot seek to the tail of the journal: " + errno_text(r);
    // Step onto the last (matching) entry so the next sd_journal_next() returns the first entry
    // after it, and remember its cursor so a re-seek (see process) lands after it too.
    r = sd_journal_previous(j);
    if (r < 0) return "cannot seek to the tail of the journal: " + errno_text(r);
    if (r > 0) {
      char* raw_cursor = nullptr;
      r = sd_journal_get_cursor(j, &raw_cursor);
      if (r < 0) return "cannot read the journal's last cursor: " + errno_text(r);
      anchor_cursor_ = std::unique_ptr<char, FreeDeleter>(raw_cursor).get();
    }
  }

  uint64_t bytes = 0;
  if (sd_journal_get_usage(j, &bytes) >= 0 && bytes == 0) {
    sink_.on_notice(options_.directory.empty()
                        ? "no system journal files are readable yet (none exist, or this user is not in the "
                          "systemd-journal or adm group)"
                        : "no journal files in " + options_.directory + " yet; waiting for them");
  }
  opened_ = true;
  return "";
}

bool JournalSource::seek_after(const std::string& cursor, std::string* error) {
  const int r = sd_journal_seek_cursor(journal_.get(), cursor.c_str());
  if (r < 0) {
    *error = "cannot seek to journal cursor \"" + cursor + "\": " + errno_text(r);
    return false;
  }
  // seek_cursor positions *at* the entry (or where it was, if it is gone); the next entry read is
  // that entry itself when it still exists, and must not be handed out twice.
  skip_cursor_ = cursor;
  anchor_cursor_ = cursor;
  return true;
}

void JournalSource::poll_once() {
  if (!opened_) return;
  sd_journal* j = journal_.get();
  process_changes();
  while (!stop_requested_.load(std::memory_order_relaxed)) {
    int r = sd_journal_next(j);
    if (r < 0) {
      // sd-journal already skips files it cannot iterate; what reaches us is rare and may heal
      // (a file being written), so report it and try again on the next wake.
      sink_.on_error("read_error", "reading the journal: " + errno_text(r));
      break;
    }
    if (r == 0) break;

    if (!skip_cursor_.empty()) {
      const std::string skip = std::exchange(skip_cursor_, std::string());
      if (sd_journal_test_cursor(j, skip.c_str()) > 0) continue;
    }

    const void* data = nullptr;
    size_t length = 0;
    r = sd_journal_get_data(j, "MESSAGE", &data, &length);
    if (r == -ENOENT) continue;  // an entry without MESSAGE (e.g. a bare structured event)
    if (r < 0) {
      sink_.on_error("bad_entry", "reading an entry's MESSAGE: " + errno_text(r));
      continue;
    }
    const std::string_view field(static_cast<const char*>(data), length);
    if (field.substr(0, kMessagePrefix.size()) != kMessagePrefix) {
      sink_.on_error("bad_entry", "an entry's MESSAGE field is malformed");
      continue;
    }

    char* raw_cursor = nullptr;
    r = sd_journal_get_cursor(j, &raw_cursor);
    if (r < 0) {
      // Without a cursor the entry cannot be recorded as done; handing it out anyway would make a
      // restart count it twice.
      sink_.on_error("bad_entry", "reading an entry's cursor: " + errno_text(r));
      continue;
    }
    last_cursor_ = std::unique_ptr<char, FreeDeleter>(raw_cursor).get();
    anchor_cursor_ = last_cursor_;
    std::uint64_t realtime_usec = 0;
    if (sd_journal_get_realtime_usec(j, &realtime_usec) < 0) realtime_usec = 0;
    // `field` still points into sd-journal's mapping: sd_journal_get_cursor() and
    // sd_journal_get_realtime_usec() do not move it.
    sink_.on_message(field.substr(kMessagePrefix.size()), last_cursor_, realtime_usec);
  }
  if (!stop_requested_.load(std::memory_order_relaxed)) sink_.on_caught_up();
}

void JournalSource::process_changes() {
  // Non-blocking. It drains the inotify queue (else poll(2) in wait() would return at once
  // forever) and updates sd-journal's set of files: without it, files added to the directory
  // since the last call are not read.
  const int r = sd_journal_process(journal_.get());
  if (r < 0) {
    sink_.on_error("wait_error", "processing journal changes: " + errno_text(r));
    back_off_ = true;
    return;
  }
  if (r == SD_JOURNAL_INVALIDATE && !anchor_cursor_.empty()) {
    // Files were added or removed (rotation, vacuuming, a new journal-remote file). The man page
    // lets a streaming reader treat this like APPEND, and systemd 252 does keep its position when
    // the file it was in goes away (our rotation tests pass without this). Readers of older
    // versions lost their place here (systemd#474, fluent-bit#1285), so we re-seek after our own
    // anchor: cheap, rare, and the position then depends on nothing but the cursor. With no
    // anchor yet (head, or tail of an empty journal) nothing was read, so nothing can be lost.
    std::string error;
    if (!seek_after(std::string(anchor_cursor_), &error)) sink_.on_error("read_error", error);
  }
}

void JournalSource::run() {
  if (!opened_) return;
  while (!stop_requested_.load(std::memory_order_relaxed)) {
    poll_once();
    if (!wait()) return;
  }
}

bool JournalSource::wait() {
  std::array<pollfd, 2> fds{};
  fds[0] = {stop_fd_.get(), POLLIN, 0};
  nfds_t count = 1;
  int timeout_ms = kErrorBackoffMs;
  if (!std::exchange(back_off_, false)) {
    sd_journal* j = journal_.get();
    const int journal_fd = sd_journal_get_fd(j);  // the same descriptor open() created
    const int events = sd_journal_get_events(j);
    uint64_t deadline_us = UINT64_MAX;
    const int timeout_r = sd_journal_get_timeout(j, &deadline_us);
    if (journal_fd >= 0 && events >= 0 && timeout_r >= 0) {
      fds[1] = {journal_fd, static_cast<short>(events), 0};
      count = 2;
      timeout_ms = poll_timeout_ms(deadline_us);
    } else {
      const int r = journal_fd < 0 ? journal_fd : events < 0 ? events : timeout_r;
      sink_.on_error("wait_error", "cannot wait for the journal: " + errno_text(r));
    }
  }
  // With only the stop eventfd (after an error) this is the back-off: stoppable, not busy.
  const int n = ::poll(fds.data(), count, timeout_ms);
  if (stop_requested_.load(std::memory_order_relaxed) || (n > 0 && fds[0].revents != 0)) return false;
  if (n < 0 && errno != EINTR) {
    sink_.on_error("wait_error", "poll on the journal: " + errno_text(errno));
    back_off_ = true;
  }
  return true;
}

void JournalSource::request_stop() {
  stop_requested_.store(true, std::memory_order_relaxed);
  if (stop_fd_.valid()) {
    const uint64_t one = 1;
    // Cannot fail short of a saturated counter (2^64-2 stops); the flag above is set either way.
    if (::write(stop_fd_.get(), &one, sizeof one) < 0) {
    }
  }
}

}  // namespace nle
