// Follower: tail -F for paths and globs. The rules live in follower.h; this file implements them
// in one pass function (discover -> watch -> for each path: detect rotation/truncation, read) and
// a loop that sleeps on inotify or the poll interval between passes.
#include "source/follower.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <glob.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "source/fd.h"
#include "source/line_splitter.h"

namespace nle {
namespace {

constexpr std::uint64_t kMaxBytesPerPathPerPass = 8u << 20;
constexpr std::uint32_t kFingerprintBytes = 4096;
constexpr std::size_t kHeadBytes = 4096;
constexpr std::size_t kRewriteCheckBytes = 256;  // enough to differ: a new line's timestamp
constexpr std::size_t kMaxReadContents = 32;  // the copies a glob may still find (a few per rotation)
constexpr std::size_t kMaxVacated = 1024;     // glob paths remembered as rotated away
constexpr std::uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ULL;
constexpr std::uint64_t kFnvPrime = 0x100000001b3ULL;
constexpr std::uint32_t kWatchMask = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_MODIFY |
                                     IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

std::uint64_t fnv1a(const char* data, std::size_t size, std::uint64_t hash = kFnvOffsetBasis) {
  for (std::size_t i = 0; i < size; ++i) {
    hash ^= static_cast<unsigned char>(data[i]);
    hash *= kFnvPrime;
  }
  return hash;
}

struct FileId {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  friend auto operator<=>(const FileId&, const FileId&) = default;
};
FileId id_of(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)};
}

bool has_glob_chars(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// "a/b/c" -> "a/b"; "c" -> "."; "/c" -> "/".
std::string dir_of(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
std::string base_of(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}
std::string join(const std::string& dir, const std::string& name) {
  if (dir == ".") return name;
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string os_message(const std::string& path, int err) { return path + ": " + std::strerror(err); }

std::string_view reason_for(int err) {
  switch (err) {
    case EACCES:
    case EPERM: return "permission_denied";
    case EISDIR: return "is_directory";
    case EMFILE:
    case ENFILE: return "too_many_open_files";
    default: return "io_error";
  }
}

// pread(2) of exactly `size` bytes unless the file ends first; retries EINTR and short reads.
// Returns the count read, or -1.
ssize_t pread_full(int fd, char* buffer, std::size_t size, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < size) {
    const ssize_t n = ::pread(fd, buffer + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return static_cast<ssize_t>(got);
}

// FNV-1a of the `bytes` bytes ending at `offset`, or nullopt if they cannot all be read.
std::optional<std::uint64_t> fingerprint_before(int fd, std::uint64_t offset, std::uint32_t bytes) {
  if (bytes > offset || bytes > kFingerprintBytes) return std::nullopt;
  char buffer[kFingerprintBytes];
  if (pread_full(fd, buffer, bytes, offset - bytes) != static_cast<ssize_t>(bytes)) return std::nullopt;
  return fnv1a(buffer, bytes);
}

// The first bytes compression_of() looks at.
constexpr std::size_t kMagicBytes = 6;

std::string first_bytes(int fd, std::size_t count) {
  std::string out(count, '\0');
  const ssize_t n = pread_full(fd, out.data(), count, 0);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// The path as a key that does not depend on how it was spelled: its directory resolved by
// realpath(3) (symbolic links, "..", relative to the working directory), its own name kept (a
// followed name that is a symbolic link stays that name). A directory that cannot be resolved
// (missing) gives the lexically normal absolute path.
std::string canonical_path(const std::string& path) {
  if (char* dir = ::realpath(dir_of(path).c_str(), nullptr)) {
    std::string out = join(dir, base_of(path));
    std::free(dir);
    return out;
  }
  std::error_code ec;
  const std::filesystem::path absolute = std::filesystem::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

// glob(3) with RAII; returns the matches (sorted, directories marked with a trailing '/').
std::vector<std::string> expand(const std::string& pattern, int flags) {
  glob_t g{};
  std::vector<std::string> out;
  if (::glob(pattern.c_str(), flags | GLOB_MARK, nullptr, &g) == 0) {
    out.reserve(g.gl_pathc);
    for (std::size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
  }
  ::globfree(&g);
  return out;
}

class Dir {
 public:
  explicit Dir(const std::string& path) : dir_(::opendir(path.c_str())) {}
  ~Dir() {
    if (dir_ != nullptr) ::closedir(dir_);
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  // Entry names without "." and ".."; empty at the end or on error.
  std::optional<std::string> next() {
    if (dir_ == nullptr) return std::nullopt;
    while (const dirent* entry = ::readdir(dir_)) {
      const std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      return std::string(name);
    }
    return std::nullopt;
  }

 private:
  DIR* dir_;
};

// One open file and how far it has been read.
struct Stream {
  Stream(Fd f, FileId i, std::size_t max_line) : fd(std::move(f)), id(i), splitter(max_line) {}
  Fd fd;
  FileId id;
  LineSplitter splitter;       // offsets relative to the file's start
  std::uint64_t read_offset = 0;  // the next byte read(2) returns
  bool skip_partial = false;   // started mid-line: drop bytes through the next "\n"
  // The file's first bytes (up to kHeadBytes) as far as read: what a copy of it starts with.
  std::string head;
  // New content (read from its start, not a file already known): reading it after the path's
  // previous file was replaced is a rotation.
  bool fresh = false;
  // A glob's new match not read yet: it may be a copy of a file already read ("Copies").
  bool held = false;
  // positions() cache: the fingerprint is only recomputed when the offset moved.
  mutable std::uint64_t fp_offset = UINT64_MAX;
  mutable std::uint64_t fp = 0;
  mutable std::uint32_t fp_bytes = 0;
};

// A followed path and the files read under its name: `old` (rotated away, finished oldest first)
// before `current`.
struct Tracked {
  std::string path;
  bool literal = false;          // named by a literal pattern: tracked even while missing
  bool matched = true;           // named by a pattern in the last discovery
  std::deque<std::unique_ptr<Stream>> old;
  std::unique_ptr<Stream> current;
  std::string canonical;         // canonical_path(path): the key of its saved position
  bool attached = false;         // the path named current's file at the last check
  bool replaced = false;         // a file read under this path was finished: new content next is a rotation
  bool start_from_zero = false;  // resume decided the next file at the path starts at 0
  std::optional<FilePosition> resume;
  std::vector<std::string> reported;  // error reasons reported and not yet recovered
};

// A file finished after a rotation that is still linked somewhere: if a glob later matches it, it
// continues where it ended instead of being read again.
struct Retired {
  FileId id;
  std::uint64_t offset = 0;
  std::uint64_t fingerprint = 0;
  std::uint32_t fingerprint_bytes = 0;
};

// The content of the file at `path` that was read up to `offset` and then truncated away
// (copytruncate): a later file at a rotated name of `path` that starts with `head` is its copy,
// read from `offset` on.
struct ReadContent {
  std::string path;
  std::string head;
  std::uint64_t offset = 0;
};

struct Watch {
  std::vector<std::string> dirs;   // the directory paths this watch descriptor stands for
  std::set<std::string> names;     // fnmatch patterns of the entries that matter in it
};

enum class ReadResult { kEnd, kMore, kError, kStopped };

bool rejected_pattern(const std::string& pattern) { return pattern.empty() || pattern == "-"; }

// BASE.<suffix> or BASE-<suffix>, the names logrotate gives rotated files, not compressed by name.
bool is_plain_rotated_name(std::string_view name, std::string_view base) {
  return name.size() > base.size() + 1 && name.substr(0, base.size()) == base &&
         (name[base.size()] == '.' || name[base.size()] == '-') && compression_of(name, {}).empty();
}

// Whether `path` is where logrotate puts a copy of `original`: a plain rotated name of it in the
// same directory (cp.log.1 or cp.log-20261202 for cp.log).
bool is_rotated_path_of(const std::string& path, const std::string& original) {
  return dir_of(path) == dir_of(original) && is_plain_rotated_name(base_of(path), base_of(original));
}

}  // namespace

struct Follower::Impl {
  Impl(FollowOptions o, FollowerSink& s) : options(std::move(o)), sink(s) {
    options.read_chunk_bytes = std::max<std::size_t>(options.read_chunk_bytes, 4096);
    if (options.poll_interval < std::chrono::milliseconds(1)) options.poll_interval = std::chrono::milliseconds(1);
    buffer.resize(options.read_chunk_bytes);
    const int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd >= 0) wake = Fd(efd);
    if (!options.force_polling) start_inotify();
  }

  FollowOptions options;
  FollowerSink& sink;
  std::vector<char> buffer;  // one read buffer for all files, reused
  std::map<std::string, Tracked> tracked;  // sorted: deterministic order of passes
  std::vector<Retired> retired;
  std::deque<ReadContent> read_contents;  // newest last, at most kMaxReadContents
  bool read_contents_added = false;       // in this pass: held matches may now be decided
  std::deque<std::string> vacated;        // glob paths dropped while `replaced`, oldest first
  std::set<FileId> compressed;            // glob matches skipped as compressed, by file
  std::set<std::string> waiting;        // patterns whose "waiting for" notice was given
  std::set<std::string> once;           // keys of one-time notices and errors
  bool first_pass_done = false;
  std::size_t last_files_watched = SIZE_MAX;

  Fd wake;  // eventfd: request_stop()/request_reopen() wake a blocked run()
  std::atomic<bool> stop{false};
  std::atomic<bool> reopen{false};

  Fd inotify;
  std::map<std::string, int> dir_watch;  // directory path -> watch descriptor
  std::map<int, Watch> watches;

  // ---- wakeups ------------------------------------------------------------------------------

  void start_inotify() {
    const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
      sink.on_notice(std::string("inotify unavailable (") + std::strerror(errno) + "); polling every " +
                     std::to_string(options.poll_interval.count()) + " ms");
      return;
    }
    inotify = Fd(fd);
  }

  void fall_back_to_polling(const std::string& why) {
    inotify.reset();
    dir_watch.clear();
    watches.clear();
    sink.on_notice(why + "; polling every " + std::to_string(options.poll_interval.count()) + " ms");
  }

  // The directories to watch and the entry names that matter in each (see "Wakeups").
  std::map<std::string, std::set<std::string>> desired_watches() const {
    std::map<std::string, std::set<std::string>> desired;
    for (const std::string& pattern : options.patterns) {
      if (rejected_pattern(pattern)) continue;
      const std::string dir = dir_of(pattern);
      std::vector<std::string> level{pattern[0] == '/' ? std::string("/") : std::string(".")};
      std::size_t pos = 0;
      while (pos < dir.size()) {
        std::size_t end = dir.find('/', pos);
        if (end == std::string::npos) end = dir.size();
        const std::string component = dir.substr(pos, end - pos);
        pos = end + 1;
        if (component.empty() || (component == "." && level.size() == 1 && level[0] == ".")) continue;
        std::vector<std::string> next;
        for (const std::string& d : level) {
          if (has_glob_chars(component)) {
            desired[d].insert(component);  // new matching directories appear here
            for (std::string m : expand(join(d, component), GLOB_ONLYDIR)) {
              if (m.size() > 1 && m.back() == '/') {
                m.pop_back();
                next.push_back(std::move(m));
              }
            }
          } else {
            const std::string p = join(d, component);
            struct stat st {};
            if (::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) next.push_back(p);
            else desired[d].insert(component);  // wait here for the directory to appear
          }
        }
        level = std::move(next);
      }
      for (const std::string& d : level) desired[d].insert(base_of(pattern));
    }
    return desired;
  }

  void update_watches() {
    if (!inotify.valid()) return;
    const auto desired = desired_watches();
    // Drop watches no longer wanted (a watch descriptor may stand for several spellings of one
    // directory, e.g. "." and its absolute path: it is removed with the last of them).
    for (auto it = dir_watch.begin(); it != dir_watch.end();) {
      if (desired.count(it->first) != 0) {
        ++it;
        continue;
      }
      const int wd = it->second;
      it = dir_watch.erase(it);
      const bool still_used =
          std::any_of(dir_watch.begin(), dir_watch.end(), [wd](const auto& entry) { return entry.second == wd; });
      if (!still_used) {
        ::inotify_rm_watch(inotify.get(), wd);
        watches.erase(wd);
      }
    }
    for (const auto& [dir, names] : desired) {
      if (dir_watch.count(dir) != 0) continue;
      const int wd = ::inotify_add_watch(inotify.get(), dir.c_str(), kWatchMask);
      if (wd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) continue;  // vanished since we looked
        fall_back_to_polling("cannot watch " + dir + " with inotify (" + std::strerror(errno) + ")");
        return;
      }
      dir_watch[dir] = wd;
    }
    for (auto& [wd, w] : watches) {
      w.dirs.clear();
      w.names.clear();
    }
    for (const auto& [dir, wd] : dir_watch) {
      Watch& w = watches[wd];
      w.dirs.push_back(dir);
      const auto& names = desired.at(dir);
      w.names.insert(names.begin(), names.end());
    }
    std::erase_if(watches, [](const auto& entry) { return entry.second.dirs.empty(); });
  }

  bool has_renamed_away_file() const {
    for (const auto& [path, t] : tracked) {
      if (!t.old.empty() || (t.current && !t.attached)) return true;
    }
    return false;
  }

  // Reads all queued inotify events. Returns whether any calls for a pass.
  bool consume_inotify_events() {
    if (!inotify.valid()) return false;
    alignas(inotify_event) char events[64 * 1024];
    bool relevant = false;
    const bool renamed_away = has_renamed_away_file();
    for (;;) {
      const ssize_t n = ::read(inotify.get(), events, sizeof events);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: queue empty
      }
      if (n == 0) break;
      for (ssize_t i = 0; i < n;) {
        const auto* ev = reinterpret_cast<const inotify_event*>(events + i);
        i += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
        if ((ev->mask & IN_Q_OVERFLOW) != 0) {
          relevant = true;
          continue;
        }
        if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
          // The directory is gone or moved: forget the watch; the next pass watches the path anew.
          if ((ev->mask & IN_MOVE_SELF) != 0) ::inotify_rm_watch(inotify.get(), ev->wd);
          forget_watch(ev->wd);
          relevant = true;
          continue;
        }
        if (relevant || renamed_away) {
          relevant = true;
          continue;
        }
        auto w = watches.find(ev->wd);
        if (w == watches.end() || ev->len == 0) continue;
        for (const std::string& name : w->second.names) {
          const bool match = has_glob_chars(name) ? ::fnmatch(name.c_str(), ev->name, FNM_PERIOD) == 0
                                                  : name == ev->name;
          if (match) {
            relevant = true;
            break;
          }
        }
      }
    }
    return relevant;
  }

  void forget_watch(int wd) {
    watches.erase(wd);
    for (auto it = dir_watch.begin(); it != dir_watch.end();) {
      if (it->second == wd) it = dir_watch.erase(it);
      else ++it;
    }
  }

  void drain_wake() {
    if (!wake.valid()) return;
    std::uint64_t value = 0;
    while (::read(wake.get(), &value, sizeof value) > 0) {
    }
  }

  // Sleeps until an inotify event that matters, the poll interval (polling mode), or a wake.
  void wait() {
    for (;;) {
      if (stop.load() || reopen.load()) return;
      pollfd fds[2] = {};
      nfds_t count = 0;
      if (wake.valid()) fds[count++] = {wake.get(), POLLIN, 0};
      const bool watching = inotify.valid();
      if (watching) fds[count++] = {inotify.get(), POLLIN, 0};
      int timeout = watching ? -1 : static_cast<int>(std::min<long long>(options.poll_interval.count(), INT_MAX));
      if (!wake.valid()) timeout = timeout < 0 ? 100 : std::min(timeout, 100);  // no eventfd: check stop often
      const int rc = ::poll(fds, count, timeout);
      if (rc < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (rc == 0) return;
      bool woken = false;
      for (nfds_t i = 0; i < count; ++i) {
        if (fds[i].revents == 0) continue;
        if (fds[i].fd == wake.get()) {
          drain_wake();
          woken = true;
        } else if ((fds[i].revents & (POLLERR | POLLNVAL)) != 0) {
          fall_back_to_polling("inotify failed");  // never seen in practice; do not spin on it
          woken = true;
        } else if (consume_inotify_events()) {
          woken = true;
        }
      }
      if (woken) return;
    }
  }

  // ---- errors and notices -------------------------------------------------------------------

  void report_error(Tracked& t, std::string_view reason, const std::string& message) {
    if (std::find(t.reported.begin(), t.reported.end(), reason) != t.reported.end()) return;
    t.reported.emplace_back(reason);
    sink.on_read_error(t.path, reason, message);
  }
  void notice_once(const std::string& key, const std::string& message) {
    if (once.insert(key).second) sink.on_notice(message);
  }

  // ---- discovery ----------------------------------------------------------------------------

  bool pattern_names(const std::string& pattern, const std::string& path) const {
    if (!has_glob_chars(pattern)) return pattern == path;
    return ::fnmatch(pattern.c_str(), path.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0;
  }

  // A glob match that is compressed (by name, or by magic bytes for a file not being read yet) is
  // skipped, with one notice per name; the ones found by magic are remembered by file, so they are
  // not opened again on every pass.
  bool skip_compressed(const std::string& path, const FileId& id, std::set<FileId>& still_compressed) {
    std::string_view format = compression_of(base_of(path), {});
    if (format.empty()) {
      if (compressed.count(id) != 0) {
        still_compressed.insert(id);
        return true;  // found by its magic bytes on an earlier pass, and said so then
      }
      const auto it = tracked.find(path);
      if (it != tracked.end() && it->second.current && it->second.current->id == id) return false;  // read as text
      const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
      if (raw < 0) return false;  // opening it reports what is wrong
      const Fd fd(raw);
      format = compression_of({}, first_bytes(fd.get(), kMagicBytes));
      if (format.empty()) return false;
      still_compressed.insert(id);
    }
    say_compressed(path, format);
    return true;
  }

  void say_compressed(const std::string& path, std::string_view format) {
    notice_once("compressed:" + path, path + " is compressed (" + std::string(format) +
                                          "): not followed; `nixfleet-log-exporter replay` reads compressed logs");
  }

  void discover() {
    std::map<std::string, bool> matched;  // path -> named by a literal pattern
    std::vector<FileId> seen_ids;
    std::set<FileId> still_compressed;
    for (const std::string& pattern : options.patterns) {
      if (rejected_pattern(pattern)) {
        if (once.insert("reject:" + pattern).second) {
          sink.on_read_error(pattern, "unsupported",
                             "\"" + pattern + "\": stdin cannot be followed (and an empty pattern names nothing); "
                             "read stdin without following instead");
        }
        continue;
      }
      bool present = false;
      if (has_glob_chars(pattern)) {
        for (const std::string& m : expand(pattern, 0)) {
          if (m.back() == '/') continue;  // a directory
          struct stat st {};
          if (::stat(m.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
          if (skip_compressed(m, id_of(st), still_compressed)) continue;
          seen_ids.push_back(id_of(st));
          matched.emplace(m, false);
          present = true;
        }
      } else {
        matched[pattern] = true;
        struct stat st {};
        if (::stat(pattern.c_str(), &st) == 0) {
          present = true;
          seen_ids.push_back(id_of(st));
        }
      }
      if (present) {
        waiting.erase(pattern);
      } else if (waiting.insert(pattern).second) {
        sink.on_notice("waiting for " + pattern + " to appear");
      }
    }
    compressed = std::move(still_compressed);
    // A retired file not named by any match this time will not be continued.
    std::erase_if(retired, [&](const Retired& r) {
      return std::find(seen_ids.begin(), seen_ids.end(), r.id) == seen_ids.end();
    });
    for (auto& [path, t] : tracked) t.matched = false;
    for (const auto& [path, literal] : matched) {
      Tracked& t = track(path);
      t.matched = true;
      t.literal = t.literal || literal;
    }
    if (!first_pass_done) attach_resume();
  }

  Tracked& track(const std::string& path) {
    auto [it, added] = tracked.try_emplace(path);
    Tracked& t = it->second;
    if (added) {
      t.path = path;
      t.canonical = canonical_path(path);
      if (auto v = std::find(vacated.begin(), vacated.end(), path); v != vacated.end()) {
        t.replaced = true;  // its file was rotated away while no pattern matched the name
        vacated.erase(v);
      }
    }
    return t;
  }

  // The followed path a saved position belongs to, "" if none (see "Resume"): the path of the same
  // canonical path, else the path that names the saved file, else the path a pattern would give it.
  std::string followed_path_for(const FilePosition& pos, const std::string& canonical) const {
    for (const auto& [path, t] : tracked) {
      if (t.canonical == canonical) return path;
    }
    for (const auto& [path, t] : tracked) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && id_of(st) == FileId{pos.device, pos.inode}) return path;
    }
    for (const std::string& p : options.patterns) {
      if (rejected_pattern(p)) continue;
      if (pattern_names(p, pos.path)) return pos.path;  // spelled the same way
      if (!has_glob_chars(p)) {
        if (canonical_path(p) == canonical) return p;
      } else if (!has_glob_chars(dir_of(p)) &&
                 ::fnmatch(canonical_path(p).c_str(), canonical.c_str(), FNM_PATHNAME | FNM_PERIOD) == 0) {
        return p.substr(0, p.rfind('/') + 1) + base_of(canonical);  // the spelling the glob gives
      }
    }
    return "";
  }

  // First pass: each saved position goes to the path it belongs to; the first one per path wins.
  void attach_resume() {
    for (const FilePosition& pos : options.resume) {
      const std::string path = followed_path_for(pos, canonical_path(pos.path));
      if (path.empty()) {
        notice_once("resume-unnamed:" + pos.path, "ignoring the saved position of " + pos.path + ": no pattern names it");
        continue;
      }
      const bool known = tracked.count(path) != 0;
      Tracked& t = track(path);  // a glob path may be missing now: tracked for the resume rules
      if (!known) t.matched = false;
      if (!t.resume) t.resume = pos;
    }
  }

  // ---- opening files ------------------------------------------------------------------------

  // The stream reading `id` and the path it reads under, if any.
  std::pair<const Stream*, const Tracked*> find_open(const FileId& id) const {
    for (const auto& [path, t] : tracked) {
      for (const auto& s : t.old) {
        if (s->id == id) return {s.get(), &t};
      }
      if (t.current && t.current->id == id) return {t.current.get(), &t};
    }
    return {nullptr, nullptr};
  }

  // Opens `file` (the path itself or, for resume, a renamed-away file) as a regular file. Errors
  // are reported under t.path. Returns nullptr on error, or when the file is already open (read
  // once only).
  std::unique_ptr<Stream> open_file(Tracked& t, const std::string& file) {
    const int raw = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (raw < 0) {
      const int err = errno;
      if (err != ENOENT) report_error(t, reason_for(err), os_message(file, err));
      return nullptr;
    }
    Fd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
      const int err = errno;
      report_error(t, reason_for(err), os_message(file, err));
      return nullptr;
    }
    if (S_ISDIR(st.st_mode)) {
      report_error(t, "is_directory", os_message(file, EISDIR));
      return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
      report_error(t, "not_regular_file", file + ": not a regular file");
      return nullptr;
    }
    const FileId id = id_of(st);
    if (auto [other, owner] = find_open(id); other != nullptr) {
      if (owner != &t && owner->current.get() == other && owner->attached) {
        notice_once("alias:" + t.path, t.path + " is the same file as " + owner->path + "; reading it once, as " +
                                           owner->path);
      }
      return nullptr;
    }
    t.reported.clear();  // recovered
    return std::make_unique<Stream>(std::move(fd), id, options.max_line_bytes);
  }

  void start_at(Stream& s, std::uint64_t offset) {
    s.splitter.reset(offset);
    s.read_offset = offset;
    s.fp_offset = UINT64_MAX;
    s.held = false;
    ::lseek(s.fd.get(), static_cast<off_t>(offset), SEEK_SET);
    s.head = first_bytes(s.fd.get(), static_cast<std::size_t>(std::min<std::uint64_t>(kHeadBytes, offset)));
    s.skip_partial = false;
    if (offset > 0) {
      char before = '\n';
      s.skip_partial = pread_full(s.fd.get(), &before, 1, offset - 1) == 1 && before != '\n';
    }
  }

  static std::uint64_t size_of(const Stream& s) {
    struct stat st {};
    return ::fstat(s.fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  }

  // Truncated and written again past our offset since the last pass (an append cannot tell it):
  // the file no longer starts with the bytes it started with.
  static bool rewritten(const Stream& s) {
    const std::size_t n = std::min<std::size_t>(s.head.size(), kRewriteCheckBytes);
    if (n == 0) return false;
    const std::string now = first_bytes(s.fd.get(), n);
    return now.size() == n && std::string_view(now) != std::string_view(s.head).substr(0, n);
  }

  static bool verifies(const Stream& s, std::uint64_t offset, std::uint64_t fingerprint, std::uint32_t bytes) {
    if (size_of(s) < offset) return false;
    const auto fp = fingerprint_before(s.fd.get(), offset, bytes);
    return fp.has_value() && *fp == fingerprint;
  }

  // Opens the file now at t.path and decides where reading starts (see "Start", "Resume" and
  // "Copies").
  void open_current(Tracked& t) {
    auto s = open_file(t, t.path);
    if (!s) return;
    t.current = std::move(s);
    t.attached = true;
    Stream& c = *t.current;
    if (!first_pass_done && !options.from_beginning && !t.start_from_zero) {
      start_at(c, size_of(c));
    } else if (auto r = std::find_if(retired.begin(), retired.end(), [&](const Retired& x) { return x.id == c.id; });
               r != retired.end()) {
      // A file finished under another name (renamed, e.g. app.log -> app.log.1): go on where it ended.
      start_at(c, verifies(c, r->offset, r->fingerprint, r->fingerprint_bytes) ? r->offset : 0);
      c.fresh = c.read_offset == 0;
      retired.erase(r);
    } else if (first_pass_done && !t.literal) {
      c.held = true;  // a glob's new match: decide_held() tells a copy from new content
      decide_held(t);
    } else {
      start_at(c, 0);
      c.fresh = true;
    }
    t.start_from_zero = false;
  }

  // ---- copies ---------------------------------------------------------------------------------

  // What was read of t's file `s`, which is being truncated, for its copy found later.
  void remember_content(const Tracked& t, const Stream& s) {
    if (s.head.empty()) return;
    std::erase_if(read_contents, [&](const ReadContent& r) { return r.path == t.path && r.head == s.head; });
    read_contents.push_back({t.path, s.head, s.splitter.complete_offset()});
    if (read_contents.size() > kMaxReadContents) read_contents.pop_front();
    read_contents_added = true;
  }

  // The copy logrotate's copytruncate made of t's file, looked for beside the path: of the plain
  // rotated names not open, holding more than `offset` bytes, that is_copy(stream) accepts, the
  // newest (an older copy may hold the same lines when lines repeat). Returns it placed at
  // `offset` (where reading of the original stopped), or nullptr.
  template <class IsCopy>
  std::unique_ptr<Stream> copy_beside(Tracked& t, std::uint64_t offset, IsCopy&& is_copy) {
    const std::string dir = dir_of(t.path);
    const std::string base = base_of(t.path);
    std::unique_ptr<Stream> newest;
    std::int64_t newest_mtime_ns = 0;
    Dir d(dir);
    while (auto name = d.next()) {
      if (!is_plain_rotated_name(*name, base)) continue;
      const std::string path = join(dir, *name);
      const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
      if (raw < 0) continue;
      Fd fd(raw);
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) <= offset ||
          find_open(id_of(st)).first != nullptr) {
        continue;
      }
      const std::int64_t mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
      if (newest && mtime_ns < newest_mtime_ns) continue;
      auto copy = std::make_unique<Stream>(std::move(fd), id_of(st), options.max_line_bytes);
      if (!is_copy(*copy)) continue;
      newest = std::move(copy);
      newest_mtime_ns = mtime_ns;
    }
    if (newest) start_at(*newest, offset);
    return newest;
  }

  // At a truncation of a literal path's file (no glob finds the copy): the copy whose first bytes
  // are those of what was read.
  std::unique_ptr<Stream> copy_of_truncated(Tracked& t, const Stream& truncated) {
    if (truncated.head.empty()) return nullptr;
    return copy_beside(t, truncated.splitter.complete_offset(), [&](const Stream& c) {
      return match_head(first_bytes(c.fd.get(), kHeadBytes), truncated.head) == HeadMatch::copy;
    });
  }

  // A held match (t.current): compressed, a copy of content already read, too early to tell, or
  // new content. Reads nothing; a decided stream is placed with start_at and no longer held.
  void decide_held(Tracked& t) {
    Stream& c = *t.current;
    const std::string head = first_bytes(c.fd.get(), kHeadBytes);
    if (std::string_view format = compression_of({}, head); !format.empty()) {
      say_compressed(t.path, format);
      compressed.insert(c.id);
      t.current.reset();
      return;
    }
    // Only a file at a rotated name of the original can be its copy: a new file whose lines merely
    // repeat another's (no timestamps, say) is read whole. Content truncated away: the copy goes on
    // from where reading stopped.
    bool early = false;
    for (auto it = read_contents.rbegin(); it != read_contents.rend(); ++it) {  // newest first
      if (!is_rotated_path_of(t.path, it->path)) continue;
      const HeadMatch m = match_head(head, it->head);
      if (m == HeadMatch::copy) {
        start_at(c, std::min(it->offset, size_of(c)));
        read_contents.erase(std::next(it).base());
        return;
      }
      early = early || m == HeadMatch::prefix;
    }
    // A copy of a file still being read at its path (copytruncate copies before it truncates):
    // wait, as the original is read on; its truncation decides.
    for (const auto& [path, other] : tracked) {
      if (other.current && other.attached && !other.current->held && is_rotated_path_of(t.path, path) &&
          match_head(head, other.current->head) != HeadMatch::different) {
        early = true;
      }
    }
    if (early) return;
    start_at(c, 0);
    c.fresh = true;
  }

  // ---- resume ---------------------------------------------------------------------------------

  struct Sibling {
    std::string path;
    std::int64_t mtime_ns = 0;
    long long suffix = -1;  // numeric rotation suffix (app.log.2 -> 2), -1 if none
    std::string name;
    FileId id;
    // Older first: older mtime, then the larger suffix (app.log.2 before app.log.1), then name.
    bool operator<(const Sibling& o) const {
      return std::tie(mtime_ns, o.suffix, name) < std::tie(o.mtime_ns, suffix, o.name);
    }
  };

  static std::optional<Sibling> sibling_info(const std::string& dir, const std::string& name, const std::string& base) {
    Sibling s;
    s.name = name;
    s.path = join(dir, name);
    struct stat st {};
    if (::stat(s.path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    s.id = id_of(st);
    s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    if (name.size() > base.size() + 1 && name.compare(0, base.size(), base) == 0 && name[base.size()] == '.') {
      const std::string digits = name.substr(base.size() + 1);
      if (digits.size() < 18 && std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        s.suffix = std::stoll(digits);
      }
    }
    return s;
  }

  void apply_resume(Tracked& t) {
    const FilePosition pos = *t.resume;
    t.resume.reset();
    const FileId saved{pos.device, pos.inode};
    struct stat st {};
    const bool present = ::stat(t.path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    if (present && id_of(st) == saved) {
      auto s = open_file(t, t.path);
      if (!s) return;
      if (verifies(*s, pos.offset, pos.fingerprint, pos.fingerprint_bytes)) {
        start_at(*s, pos.offset);
        t.current = std::move(s);
        t.attached = true;
      } else {
        // Truncated while we were stopped: a copytruncate's copy beside it (the same bytes before
        // the saved offset) holds the lines after it, older than the file's new ones.
        auto copy = copy_beside(t, pos.offset, [&](const Stream& c) {
          return verifies(c, pos.offset, pos.fingerprint, pos.fingerprint_bytes);
        });
        start_at(*s, 0);
        t.current = std::move(s);
        t.attached = true;
        sink.on_truncation(t.path);
        if (copy) t.old.push_back(std::move(copy));
      }
      return;
    }
    // Renamed away while we were stopped? Look for the saved file next to the path.
    const std::string dir = dir_of(t.path);
    const std::string base = base_of(t.path);
    std::optional<Sibling> found;
    std::vector<Sibling> siblings;
    {
      Dir d(dir);
      while (auto name = d.next()) {
        if (*name == base) continue;
        auto info = sibling_info(dir, *name, base);
        if (!info) continue;
        if (info->id == saved) {
          found = info;
          continue;
        }
        if (is_plain_rotated_name(*name, base) && !(present && info->id == id_of(st))) {
          siblings.push_back(std::move(*info));
        }
      }
    }
    std::deque<std::unique_ptr<Stream>> chain;
    if (found) {
      auto s = open_file(t, found->path);
      if (s && verifies(*s, pos.offset, pos.fingerprint, pos.fingerprint_bytes)) {
        start_at(*s, pos.offset);
        chain.push_back(std::move(s));
        std::sort(siblings.begin(), siblings.end());
        for (const Sibling& sib : siblings) {
          if (!(*found < sib)) continue;  // older than the saved file: read before we stopped
          auto next = open_file(t, sib.path);
          if (!next || !compression_of({}, first_bytes(next->fd.get(), kMagicBytes)).empty()) {
            continue;  // compressed under an uncompressed name
          }
          start_at(*next, 0);
          next->fresh = true;
          chain.push_back(std::move(next));
        }
      }
    }
    if (chain.empty()) {
      sink.on_notice(t.path + ": the file of its saved position (device " + std::to_string(pos.device) + ", inode " +
                     std::to_string(pos.inode) + ", offset " + std::to_string(pos.offset) +
                     ") is gone or changed; reading " + t.path + " from its start");
      t.start_from_zero = true;
      return;
    }
    t.start_from_zero = true;
    if (!present) {
      // The path names nothing yet: the newest file is the path's renamed-away file, still open.
      t.current = std::move(chain.back());
      chain.pop_back();
      t.attached = false;
    }
    t.old = std::move(chain);
  }

  // ---- reading --------------------------------------------------------------------------------

  void feed(const Tracked& t, Stream& s, std::string_view data) {
    const std::uint64_t chunk_start = s.read_offset;
    s.read_offset += data.size();
    if (s.head.size() < kHeadBytes && s.head.size() == chunk_start) {
      s.head.append(data.substr(0, kHeadBytes - s.head.size()));
    }
    if (s.skip_partial) {
      const void* nl = std::memchr(data.data(), '\n', data.size());
      if (nl == nullptr) return;  // still inside the line we started in
      const auto skipped = static_cast<std::size_t>(static_cast<const char*>(nl) - data.data()) + 1;
      s.skip_partial = false;
      s.splitter.reset(chunk_start + skipped);
      data.remove_prefix(skipped);
    }
    const auto on_line = [&](std::string_view line) { sink.on_line(t.path, line); };
    const auto on_oversize = [&](std::uint64_t bytes) { sink.on_oversize(t.path, bytes); };
    if (s.splitter.fed_offset() != s.splitter.complete_offset()) {
      // A line begun in an earlier read: the splitter completes it (or drops it, oversize).
      const void* nl = std::memchr(data.data(), '\n', data.size());
      const std::size_t first = nl == nullptr ? data.size() : static_cast<std::size_t>(static_cast<const char*>(nl) - data.data()) + 1;
      s.splitter.feed(data.substr(0, first), on_line, on_oversize);
      data.remove_prefix(first);
    }
    // The lines that begin and end in this read, as one block; the splitter keeps the rest.
    const void* last = memrchr(data.data(), '\n', data.size());
    if (last != nullptr) {
      const std::size_t block = static_cast<std::size_t>(static_cast<const char*>(last) - data.data()) + 1;
      sink.on_lines(t.path, data.substr(0, block), s.splitter.max_line_bytes());
      s.splitter.reset(s.splitter.complete_offset() + block);
      data.remove_prefix(block);
    }
    s.splitter.feed(data, on_line, on_oversize);
  }

  ReadResult read_stream(Tracked& t, Stream& s, std::uint64_t& budget) {
    for (;;) {
      if (stop.load(std::memory_order_relaxed)) return ReadResult::kStopped;
      if (budget == 0) return ReadResult::kMore;
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), budget));
      const ssize_t n = ::read(s.fd.get(), buffer.data(), want);
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN) return ReadResult::kEnd;
        report_error(t, reason_for(err), os_message(t.path, err));
        return ReadResult::kError;
      }
      if (n == 0) return ReadResult::kEnd;
      t.reported.clear();
      feed(t, s, std::string_view(buffer.data(), static_cast<std::size_t>(n)));
      budget -= static_cast<std::uint64_t>(n);
      sink.on_chunk_done(t.path, static_cast<std::uint64_t>(n));
    }
  }

  // The file is done: hand out its last line, remember it if still linked, close it. Whatever
  // is read after it under the same path is new content after a replaced file.
  void finish(Tracked& t, Stream& s) {
    if (s.held) {
      s.fd.reset();  // never read: nothing to hand out or to remember
      return;
    }
    t.replaced = true;
    s.splitter.finish([&](std::string_view line) { sink.on_line(t.path, line); },
                      [&](std::uint64_t bytes) { sink.on_oversize(t.path, bytes); });
    // The end of a file ends a batch too: whoever batches lines per chunk must hear of it.
    sink.on_chunk_done(t.path, 0);
    struct stat st {};
    if (::fstat(s.fd.get(), &st) == 0 && st.st_nlink > 0) {
      const std::uint32_t bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(kFingerprintBytes, s.read_offset));
      if (auto fp = fingerprint_before(s.fd.get(), s.read_offset, bytes)) {
        std::erase_if(retired, [&](const Retired& r) { return r.id == s.id; });
        retired.push_back({s.id, s.read_offset, *fp, bytes});
      }
    }
    s.fd.reset();
  }

  // Reading switches to `s` under t's path: after a finished file, new content is a rotation
  // (a file continued under a new name, or a copy, is not).
  void begin_reading(Tracked& t, Stream& s) {
    if (s.fresh && t.replaced) sink.on_rotation(t.path);
    s.fresh = false;
    t.replaced = false;
  }

  // One path: rotation and truncation checks, then reading. Returns whether it has more to read.
  bool service(Tracked& t) {
    struct stat st {};
    const bool stat_ok = ::stat(t.path.c_str(), &st) == 0;
    const int stat_err = stat_ok ? 0 : errno;
    const bool present = stat_ok && S_ISREG(st.st_mode);
    if (stat_ok && S_ISDIR(st.st_mode)) {
      report_error(t, "is_directory", os_message(t.path, EISDIR));
    } else if (stat_ok && !present) {
      report_error(t, "not_regular_file", t.path + ": not a regular file");
    } else if (!stat_ok && stat_err != ENOENT && stat_err != ENOTDIR) {
      report_error(t, reason_for(stat_err), os_message(t.path, stat_err));  // e.g. a directory we cannot search
    }

    if (t.current && t.current->held) decide_held(t);
    if (t.current && t.current->held && !(present && id_of(st) == t.current->id)) {
      t.current.reset();  // a held match gone or replaced before it was read: it was a copy
    }
    if (present && t.current && id_of(st) != t.current->id) {
      t.old.push_back(std::move(t.current));  // rotated: finish the old file first
      t.attached = false;
    }
    if (present && !t.current && compressed.count(id_of(st)) == 0) open_current(t);
    if (t.current) t.attached = present && id_of(st) == t.current->id;

    if (t.current && !t.current->held) {
      struct stat now {};
      if (::fstat(t.current->fd.get(), &now) == 0 &&
          (static_cast<std::uint64_t>(now.st_size) < t.current->read_offset || rewritten(*t.current))) {
        remember_content(t, *t.current);  // what was read of it, for its copy (copytruncate)
        std::unique_ptr<Stream> copy = t.literal ? copy_of_truncated(t, *t.current) : nullptr;
        start_at(*t.current, 0);       // the partial line held is dropped
        sink.on_truncation(t.path);
        if (copy) t.old.push_back(std::move(copy));  // older lines than the file's new ones
      }
    }

    std::uint64_t budget = std::max<std::uint64_t>(kMaxBytesPerPathPerPass, buffer.size());
    while (!t.old.empty()) {
      begin_reading(t, *t.old.front());
      const ReadResult r = read_stream(t, *t.old.front(), budget);
      if (r != ReadResult::kEnd) return r == ReadResult::kMore;
      finish(t, *t.old.front());
      t.old.pop_front();
    }
    if (!t.current || t.current->held) return false;
    begin_reading(t, *t.current);
    const ReadResult r = read_stream(t, *t.current, budget);
    if (r == ReadResult::kEnd && !t.attached) {
      struct stat now {};
      const bool deleted = ::fstat(t.current->fd.get(), &now) == 0 && now.st_nlink == 0;
      // Keep a renamed-away file of a literal path open until the path names a file again (the
      // writer may still append to it); a deleted file or a lost glob match is done.
      if (deleted || !t.literal) {
        finish(t, *t.current);
        t.current.reset();
      }
    }
    return r == ReadResult::kMore;
  }

  // ---- passes ---------------------------------------------------------------------------------

  void reopen_all() {
    for (auto& [path, t] : tracked) {
      if (!t.current || !t.attached) continue;
      const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
      if (raw < 0) continue;  // the pass reports what is wrong with the path
      Fd fd(raw);
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0 || id_of(st) != t.current->id) continue;  // a rotation: the pass sees it
      if (::lseek(fd.get(), static_cast<off_t>(t.current->read_offset), SEEK_SET) < 0) continue;
      t.current->fd = std::move(fd);
    }
    if (!options.force_polling && !inotify.valid()) start_inotify();
  }

  std::size_t open_files() const {
    std::size_t n = 0;
    for (const auto& [path, t] : tracked) n += t.old.size() + (t.current ? 1 : 0);
    return n;
  }

  bool pass() {
    if (reopen.exchange(false)) reopen_all();
    consume_inotify_events();  // bookkeeping only: this pass looks at everything anyway
    // Watches first, then discovery: a file created after its directory's watch exists makes an
    // event, one created before is found by discovery. (The other order loses a file created
    // between the glob and the new watch.)
    update_watches();
    discover();
    if (!first_pass_done) {
      // Before any path is read, so the files of a resume chain are claimed by their path.
      for (auto& [path, t] : tracked) {
        if (t.resume) apply_resume(t);
      }
    }
    bool more = false;
    read_contents_added = false;
    for (auto& [path, t] : tracked) {
      if (stop.load()) break;
      more = service(t) || more;
    }
    if (read_contents_added) {
      // A file was truncated after a held match was looked at: its copy can be decided now
      // rather than at the next change.
      for (auto& [path, t] : tracked) {
        if (!stop.load() && t.current && t.current->held) more = service(t) || more;
      }
    }
    for (auto it = tracked.begin(); it != tracked.end();) {
      const Tracked& t = it->second;
      if (t.literal || t.matched || t.current || !t.old.empty() || t.resume) {
        ++it;
        continue;
      }
      if (t.replaced) {
        vacated.push_back(it->first);
        if (vacated.size() > kMaxVacated) vacated.pop_front();
      }
      it = tracked.erase(it);
    }
    first_pass_done = true;
    const std::size_t files = open_files();
    if (files != last_files_watched) {
      last_files_watched = files;
      sink.on_files_watched(files);
    }
    return more;
  }

  void report_exception(const char* what) {
    try {
      sink.on_notice(std::string("follower stopped by an unexpected error: ") + what);
    } catch (...) {
      // The sink threw again; nothing more can be said.
    }
  }
};

void FollowerSink::on_lines(std::string_view path, std::string_view block, std::size_t max_line_bytes) {
  LineSplitter splitter(max_line_bytes);
  splitter.feed(
      block, [&](std::string_view line) { on_line(path, line); }, [&](std::uint64_t bytes) { on_oversize(path, bytes); });
}

std::string_view compression_of(std::string_view name, std::string_view first_bytes) {
  static constexpr std::pair<std::string_view, std::string_view> kByName[] = {
      {".gz", "gzip"}, {".bz2", "bzip2"}, {".xz", "xz"},   {".zst", "zstd"},
      {".lz4", "lz4"}, {".br", "brotli"}, {".zip", "zip"}, {".Z", "compress"}};
  for (const auto& [ext, format] : kByName) {
    if (name.size() > ext.size() && name.substr(name.size() - ext.size()) == ext) return format;
  }
  static constexpr std::pair<std::string_view, std::string_view> kByMagic[] = {
      {std::string_view("\x1f\x8b", 2), "gzip"},
      {std::string_view("\x28\xb5\x2f\xfd", 4), "zstd"},
      {std::string_view("\xfd" "7zXZ\x00", 6), "xz"},
      {std::string_view("\x04\x22\x4d\x18", 4), "lz4"},
      {std::string_view("PK\x03\x04", 4), "zip"}};
  for (const auto& [magic, format] : kByMagic) {
    if (first_bytes.substr(0, magic.size()) == magic) return format;
  }
  // bzip2: "BZh" and the block size digit.
  if (first_bytes.size() >= 4 && first_bytes.substr(0, 3) == "BZh" && first_bytes[3] >= '1' && first_bytes[3] <= '9') {
    return "bzip2";
  }
  return "";
}

HeadMatch match_head(std::string_view candidate, std::string_view known) {
  if (known.empty()) return HeadMatch::different;
  const std::size_t common = std::min(candidate.size(), known.size());
  if (candidate.substr(0, common) != known.substr(0, common)) return HeadMatch::different;
  return candidate.size() < known.size() ? HeadMatch::prefix : HeadMatch::copy;
}

Follower::Follower(FollowOptions options, FollowerSink& sink)
    : impl_(std::make_unique<Impl>(std::move(options), sink)) {}
Follower::~Follower() = default;

std::string Follower::check(const FollowOptions& options) {
  if (options.patterns.empty()) return "nothing to follow: no paths given";
  for (const std::string& p : options.patterns) {
    if (p == "-") return "\"-\" (stdin) cannot be followed: stdin is read once, without --follow semantics";
    if (p.empty()) return "an empty path cannot be followed";
  }
  // A compressed file never grows as text: named on purpose, it is a mistake worth stopping for
  // (a glob's compressed matches are skipped instead).
  for (const std::string& p : options.patterns) {
    if (has_glob_chars(p)) continue;
    std::string first;
    const int raw = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (raw >= 0) {
      const Fd fd(raw);
      struct stat st {};
      if (::fstat(fd.get(), &st) == 0 && S_ISREG(st.st_mode)) first = first_bytes(fd.get(), kMagicBytes);
    }
    if (std::string_view format = compression_of(base_of(p), first); !format.empty()) {
      return p + " is compressed (" + std::string(format) +
             "): follow reads growing text logs; count a compressed log with `nixfleet-log-exporter replay " + p + "`";
    }
  }
  return "";
}

void Follower::poll_once() {
  try {
    impl_->pass();
  } catch (const std::exception& e) {
    impl_->report_exception(e.what());
  } catch (...) {
    impl_->report_exception("unknown exception");
  }
}

void Follower::run() {
  try {
    while (!impl_->stop.load()) {
      const bool more = impl_->pass();
      if (impl_->stop.load()) break;
      if (more) {
        impl_->consume_inotify_events();  // keep the queue short while catching up
        continue;
      }
      impl_->wait();
    }
  } catch (const std::exception& e) {
    impl_->report_exception(e.what());
  } catch (...) {
    impl_->report_exception("unknown exception");
  }
}

void Follower::request_stop() {
  impl_->stop.store(true);
  if (impl_->wake.valid()) {
    const std::uint64_t one = 1;
    if (::write(impl_->wake.get(), &one, sizeof one) < 0) {
      // Counter full (cannot happen in practice): run() is awake anyway.
    }
  }
}

void Follower::request_reopen() {
  impl_->reopen.store(true);
  if (impl_->wake.valid()) {
    const std::uint64_t one = 1;
    if (::write(impl_->wake.get(), &one, sizeof one) < 0) {
      // See request_stop().
    }
  }
}

bool Follower::using_inotify() const { return impl_->inotify.valid(); }

std::vector<FilePosition> Follower::positions() const {
  std::vector<FilePosition> out;
  for (const auto& [path, t] : impl_->tracked) {
    const Stream* s = !t.old.empty() ? t.old.front().get() : t.current.get();
    if (s == nullptr) continue;
    // A held match is saved as read to its end: it is a copy of content counted elsewhere, or
    // too short yet to tell.
    const std::uint64_t offset = s->held ? Impl::size_of(*s) : s->splitter.complete_offset();
    if (s->fp_offset != offset) {
      const auto bytes = static_cast<std::uint32_t>(std::min<std::uint64_t>(kFingerprintBytes, offset));
      const auto fp = fingerprint_before(s->fd.get(), offset, bytes);
      s->fp = fp.value_or(kFnvOffsetBasis);
      s->fp_bytes = fp ? bytes : 0;  // unreadable: the position is then checked by size only
      s->fp_offset = offset;
    }
    out.push_back({t.canonical, s->id.device, s->id.inode, offset, s->fp, s->fp_bytes});
  }
  return out;
}

}  // namespace nle
