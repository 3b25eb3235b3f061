// Tests for source/: LineSplitter (pure), ByteReader (files, gzip, stdin) and Follower (real temp
// files, stepped with poll_once(); run() only where the blocking loop itself is under test).
#include <catch2/catch.hpp>
#include <zlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "source/byte_reader.h"
#include "source/follower.h"
#include "source/line_splitter.h"

namespace {

using nle::ByteReader;
using nle::FilePosition;
using nle::Follower;
using nle::FollowerSink;
using nle::FollowOptions;
using nle::HeadMatch;
using nle::LineSplitter;

// ---- helpers -------------------------------------------------------------------------------

// What a splitter handed out, as one list: "L:<line>" or "O:<bytes>".
struct Collected {
  std::vector<std::string> events;
  std::size_t max_pending = 0;
  void feed(LineSplitter& s, std::string_view data) {
    s.feed(
        data, [&](std::string_view line) { events.push_back("L:" + std::string(line)); },
        [&](std::uint64_t bytes) { events.push_back("O:" + std::to_string(bytes)); });
    max_pending = std::max(max_pending, s.pending_bytes());
  }
  void finish(LineSplitter& s) {
    s.finish([&](std::string_view line) { events.push_back("L:" + std::string(line)); },
             [&](std::uint64_t bytes) { events.push_back("O:" + std::to_string(bytes)); });
  }
};

// The rules of line_splitter.h written the slow, obvious way, for the property test.
std::vector<std::string> reference_split(const std::string& text, std::size_t cap) {
  std::vector<std::string> out;
  std::size_t start = 0;
  auto emit = [&](std::string line) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line.size() > cap ? "O:" + std::to_string(line.size()) : "L:" + line);
  };
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      emit(text.substr(start, i - start));
      start = i + 1;
    }
  }
  if (start < text.size()) emit(text.substr(start));
  return out;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nle-source-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

// Appends with O_APPEND and one write(2), like a logging process.
void append(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
}

// Rewrites a file in place, keeping its inode (as copytruncate does).
void truncate_and_write(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
}

void rename_file(const std::string& from, const std::string& to) { REQUIRE(::rename(from.c_str(), to.c_str()) == 0); }

std::uint64_t inode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

std::string gzip(const std::string& data) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// Some log-like text: short and long lines, CRLF, empty lines.
std::string sample_text(std::size_t lines) {
  std::string text;
  for (std::size_t i = 0; i < lines; ++i) {
    text += "2026-11-20T08:14:03Z INFO report: report received line=" + std::to_string(i) +
            std::string(i % 7 * 13, 'x') + (i % 5 == 0 ? "\r\n" : "\n");
  }
  return text;
}

struct ReadAll {
  std::string data;
  bool failed = false;
  std::string error;
};
ReadAll read_all(ByteReader& reader, std::size_t capacity = 1 << 20) {
  ReadAll r;
  std::vector<char> buffer(capacity);
  for (;;) {
    auto n = reader.read(buffer.data(), buffer.size());
    if (!n) {
      r.failed = true;
      r.error = reader.error();
      return r;
    }
    if (*n == 0) return r;
    r.data.append(buffer.data(), *n);
  }
}

// Records what the follower says, with paths shortened to their file name. Locked, because the
// run() tests read it from the test thread while the follower writes from its own.
class RecordingSink : public FollowerSink {
 public:
  void on_line(std::string_view path, std::string_view line) override {
    add("line " + base(path) + " " + std::string(line));
  }
  void on_oversize(std::string_view path, std::uint64_t bytes) override {
    add("oversize " + base(path) + " " + std::to_string(bytes));
  }
  void on_chunk_done(std::string_view, std::uint64_t bytes) override {
    std::lock_guard lock(mu_);
    chunk_bytes_ += bytes;
    if (on_chunk) on_chunk();
  }
  void on_rotation(std::string_view path) override { add("rotation " + base(path)); }
  void on_truncation(std::string_view path) override { add("truncation " + base(path)); }
  void on_read_error(std::string_view path, std::string_view reason, std::string_view message) override {
    add("error " + base(path) + " " + std::string(reason));
    std::lock_guard lock(mu_);
    messages_.emplace_back(message);
  }
  void on_notice(std::string_view message) override {
    std::lock_guard lock(mu_);
    notices_.emplace_back(message);
  }
  void on_files_watched(std::size_t count) override {
    std::lock_guard lock(mu_);
    watched_.push_back(count);
  }

  // Everything but notices and counts, in order.
  std::vector<std::string> events() const {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const auto& e : events_) {
      if (e.rfind("line ", 0) == 0) out.push_back(e.substr(e.find(' ', 5) + 1));
    }
    return out;
  }
  std::size_t count(const std::string& event) const {
    std::lock_guard lock(mu_);
    return static_cast<std::size_t>(std::count(events_.begin(), events_.end(), event));
  }
  std::vector<std::string> notices() const {
    std::lock_guard lock(mu_);
    return notices_;
  }
  std::vector<std::string> messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  std::vector<std::size_t> watched() const {
    std::lock_guard lock(mu_);
    return watched_;
  }
  std::uint64_t chunk_bytes() const {
    std::lock_guard lock(mu_);
    return chunk_bytes_;
  }
  std::function<void()> on_chunk;  // called under the lock: keep it trivial

 private:
  static std::string base(std::string_view path) {
    const auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
  }
  void add(std::string e) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  mutable std::mutex mu_;
  std::vector<std::string> events_;
  std::vector<std::string> notices_;
  std::vector<std::string> messages_;
  std::vector<std::size_t> watched_;
  std::uint64_t chunk_bytes_ = 0;
};

FollowOptions options_for(std::vector<std::string> patterns, bool from_beginning = true) {
  FollowOptions o;
  o.patterns = std::move(patterns);
  o.from_beginning = from_beginning;
  return o;
}

using Lines = std::vector<std::string>;

// Polls `done` until it holds or the deadline passes (no fixed sleeps: it returns as soon as
// the condition holds).
bool eventually(const std::function<bool()>& done, std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

}  // namespace

// ============================================================================================
// LineSplitter
// ============================================================================================

TEST_CASE("a line split across feeds is held until its newline", "[line_splitter]") {
  LineSplitter s(100);
  Collected c;
  c.feed(s, "hel");
  CHECK(c.events.empty());
  CHECK(s.pending_bytes() == 3);
  c.feed(s, "lo wor");
  CHECK(c.events.empty());
  c.feed(s, "ld\nsecond");
  CHECK(c.events == Lines{"L:hello world"});
  c.feed(s, "\n\n");
  CHECK(c.events == Lines{"L:hello world", "L:second", "L:"});
  CHECK(s.pending_bytes() == 0);
}

TEST_CASE("CRLF line endings are chomped but a lone carriage return is data", "[line_splitter]") {
  LineSplitter s(100);
  Collected c;
  c.feed(s, "a\r\nb\rc\r\n\r\nd\r");
  c.feed(s, "\n");
  CHECK(c.events == Lines{"L:a", "L:b\rc", "L:", "L:d"});
}

TEST_CASE("the last line without a newline is handed out by finish", "[line_splitter]") {
  LineSplitter s(100);
  Collected c;
  c.feed(s, "one\ntwo");
  CHECK(c.events == Lines{"L:one"});
  CHECK(s.complete_offset() == 4);
  c.finish(s);
  CHECK(c.events == Lines{"L:one", "L:two"});
  CHECK(s.complete_offset() == 7);
  CHECK(s.pending_bytes() == 0);
  c.finish(s);  // nothing pending: nothing more
  CHECK(c.events.size() == 2);
}

TEST_CASE("an oversize line is reported once with its size and never buffered beyond the cap", "[line_splitter]") {
  const std::size_t cap = 10;
  SECTION("within one feed") {
    LineSplitter s(cap);
    Collected c;
    c.feed(s, std::string(25, 'x') + "\nnext\n");
    CHECK(c.events == Lines{"O:25", "L:next"});
  }
  SECTION("across many feeds") {
    LineSplitter s(cap);
    Collected c;
    for (int i = 0; i < 100; ++i) c.feed(s, "abcdefg");
    CHECK(c.events.empty());
    c.feed(s, "h\nnext\n");
    CHECK(c.events == Lines{"O:701", "L:next"});
    CHECK(c.max_pending <= cap + 1);
    CHECK(s.complete_offset() == 707);
  }
  SECTION("a held partial line whose rest arrives with its newline") {
    // Regression: the rest was appended to the held bytes before the cap was checked.
    LineSplitter s(cap);
    Collected c;
    c.feed(s, "12345678");
    c.feed(s, std::string(1000, 'y') + "\nok\n");
    CHECK(c.events == Lines{"O:1008", "L:ok"});
    CHECK(c.max_pending <= cap + 1);
  }
  SECTION("the size does not count a CRLF's carriage return") {
    LineSplitter s(cap);
    Collected c;
    c.feed(s, std::string(30, 'x') + "\r");
    c.feed(s, "\n");
    c.feed(s, std::string(20, 'z') + "\r\n");
    CHECK(c.events == Lines{"O:30", "O:20"});
  }
  SECTION("a line of exactly the cap plus CRLF split before the newline is not oversize") {
    LineSplitter s(cap);
    Collected c;
    c.feed(s, std::string(cap, 'x') + "\r");
    c.feed(s, "\n");
    CHECK(c.events == Lines{"L:" + std::string(cap, 'x')});
  }
  SECTION("an unterminated oversize last line is reported by finish") {
    LineSplitter s(cap);
    Collected c;
    c.feed(s, "ok\n" + std::string(50, 'x'));
    CHECK(s.pending_bytes() == 0);
    c.finish(s);
    CHECK(c.events == Lines{"L:ok", "O:50"});
  }
}

TEST_CASE("no cap at all does not overflow the cap arithmetic", "[line_splitter]") {
  LineSplitter s(SIZE_MAX);
  Collected c;
  c.feed(s, "part");
  c.feed(s, "ial\n");
  CHECK(c.events == Lines{"L:partial"});
}

TEST_CASE("feeding byte by byte or in random pieces equals feeding all at once", "[line_splitter]") {
  std::mt19937 rng(20261120);  // fixed seed: reproducible
  for (int round = 0; round < 200; ++round) {
    // Random text over a small alphabet so newlines, CRs and long lines all occur.
    const std::size_t cap = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
    std::string text(std::uniform_int_distribution<std::size_t>(0, 600)(rng), ' ');
    for (char& ch : text) {
      const int k = std::uniform_int_distribution<int>(0, 19)(rng);
      ch = k == 0 ? '\n' : k == 1 ? '\r' : static_cast<char>('a' + k);
    }
    INFO("round " << round << " cap " << cap);

    LineSplitter whole(cap);
    Collected all;
    all.feed(whole, text);
    all.finish(whole);
    CHECK(all.events == reference_split(text, cap));

    LineSplitter bytewise(cap);
    Collected one;
    for (char ch : text) one.feed(bytewise, std::string_view(&ch, 1));
    one.finish(bytewise);
    CHECK(one.events == all.events);
    CHECK(one.max_pending <= cap + 1);

    LineSplitter pieces(cap);
    Collected rnd;
    std::size_t pos = 0;
    std::size_t last_nl = 0;
    while (pos < text.size()) {
      const std::size_t n = std::min(text.size() - pos, std::uniform_int_distribution<std::size_t>(0, 50)(rng));
      rnd.feed(pieces, std::string_view(text).substr(pos, n));
      pos += n;
      const auto nl = text.rfind('\n', pos == 0 ? 0 : pos - 1);
      last_nl = (pos > 0 && nl != std::string::npos) ? nl + 1 : 0;
      REQUIRE(pieces.complete_offset() == last_nl);
      REQUIRE(pieces.fed_offset() == pos);
    }
    rnd.finish(pieces);
    CHECK(rnd.events == all.events);
    CHECK(rnd.max_pending <= cap + 1);
  }
}

TEST_CASE("complete_offset is the start of the next unread line, and reset sets a start offset", "[line_splitter]") {
  LineSplitter s(100);
  Collected c;
  c.feed(s, "ab\ncd");
  CHECK(s.complete_offset() == 3);
  CHECK(s.fed_offset() == 5);
  s.reset();  // truncated under the partial line: it is forgotten
  CHECK(s.complete_offset() == 0);
  CHECK(s.pending_bytes() == 0);
  c.feed(s, "x\n");
  CHECK(c.events == Lines{"L:ab", "L:x"});
  s.reset(1000);  // starting to read a file at byte 1000
  c.feed(s, "yz\n");
  CHECK(s.complete_offset() == 1003);
  CHECK(s.fed_offset() == 1003);
}

// ============================================================================================
// ByteReader
// ============================================================================================

TEST_CASE("a plain file is read in chunks and offers its descriptor for pread", "[byte_reader]") {
  TempDir dir;
  const std::string text = sample_text(500);
  write_file(dir / "app.log", text);
  std::string error;
  auto reader = ByteReader::open(dir / "app.log", error);
  REQUIRE(reader);
  CHECK_FALSE(reader->is_compressed());
  CHECK(reader->plain_file_descriptor() >= 0);
  const ReadAll r = read_all(*reader, 1000);
  CHECK_FALSE(r.failed);
  CHECK(r.data == text);
}

TEST_CASE("the input offset follows the bytes of the file consumed, compressed or not", "[byte_reader]") {
  TempDir dir;
  const std::string text = sample_text(3000);
  const std::string compressed = gzip(text) + gzip(text);
  write_file(dir / "plain.log", text);
  write_file(dir / "two.gz", compressed);
  std::string error;
  auto plain = ByteReader::open(dir / "plain.log", error);
  REQUIRE(plain);
  CHECK(plain->input_offset() == 0);
  std::vector<char> buffer(1000);
  REQUIRE(plain->read(buffer.data(), buffer.size()) == std::optional<std::size_t>(1000));
  CHECK(plain->input_offset() == 1000);
  read_all(*plain);
  CHECK(plain->input_offset() == text.size());

  auto gz = ByteReader::open(dir / "two.gz", error);
  REQUIRE(gz);
  REQUIRE(gz->read(buffer.data(), buffer.size()));
  CHECK(gz->input_offset() > 0);
  CHECK(gz->input_offset() < compressed.size());
  CHECK(read_all(*gz).data.size() == 2 * text.size() - 1000);
  CHECK(gz->input_offset() == compressed.size());
}

TEST_CASE("an empty file and a file of one magic byte are plain", "[byte_reader]") {
  TempDir dir;
  write_file(dir / "empty", "");
  write_file(dir / "one", "\x1f");
  std::string error;
  auto empty = ByteReader::open(dir / "empty", error);
  REQUIRE(empty);
  CHECK(read_all(*empty).data.empty());
  auto one = ByteReader::open(dir / "one", error);
  REQUIRE(one);
  CHECK_FALSE(one->is_compressed());
  CHECK(read_all(*one).data == "\x1f");
}

TEST_CASE("gzip is detected by its magic bytes whatever the file name", "[byte_reader]") {
  TempDir dir;
  const std::string text = sample_text(3000);
  write_file(dir / "app.log.2", gzip(text));
  std::string error;
  auto reader = ByteReader::open(dir / "app.log.2", error);
  REQUIRE(reader);
  CHECK(reader->is_compressed());
  CHECK(reader->plain_file_descriptor() == -1);
  const ReadAll r = read_all(*reader, 4096);
  CHECK_FALSE(r.failed);
  CHECK(r.data == text);
}

TEST_CASE("a multi-member gzip file is read as one stream", "[byte_reader]") {
  TempDir dir;
  const std::string a = sample_text(100);
  const std::string b = "second member\n";
  const std::string c = sample_text(7);
  write_file(dir / "cat.gz", gzip(a) + gzip(b) + gzip("") + gzip(c));
  std::string error;
  auto reader = ByteReader::open(dir / "cat.gz", error);
  REQUIRE(reader);
  const ReadAll r = read_all(*reader, 333);
  CHECK_FALSE(r.failed);
  CHECK(r.data == a + b + c);
}

TEST_CASE("trailing zero padding after gzip data is ignored, as gzip does", "[byte_reader]") {
  TempDir dir;
  write_file(dir / "padded.gz", gzip("a\n") + std::string(1000, '\0'));
  std::string error;
  auto reader = ByteReader::open(dir / "padded.gz", error);
  REQUIRE(reader);
  const ReadAll r = read_all(*reader);
  CHECK_FALSE(r.failed);
  CHECK(r.data == "a\n");
}

TEST_CASE("a corrupt gzip stream is an error after the bytes decoded before it", "[byte_reader]") {
  TempDir dir;
  const std::string good = sample_text(200);
  const std::string path = dir / "corrupt.gz";
  std::string error;
  SECTION("a bad second member") {
    std::string bad = gzip("never seen\n");
    bad[2] = 9;  // compression method 9 does not exist
    write_file(path, gzip(good) + bad);
    auto reader = ByteReader::open(path, error);
    REQUIRE(reader);
    const ReadAll r = read_all(*reader, 1 << 20);
    CHECK(r.data == good);
    CHECK(r.failed);
    CHECK_THAT(r.error, Catch::Contains(path) && Catch::Contains("unknown compression method"));
  }
  SECTION("a wrong checksum") {
    std::string z = gzip(good);
    z[z.size() - 8] = static_cast<char>(z[z.size() - 8] ^ 0x55);  // the CRC32 in the trailer
    write_file(path, z);
    auto reader = ByteReader::open(path, error);
    REQUIRE(reader);
    const ReadAll r = read_all(*reader, 1 << 20);
    CHECK(r.data == good);
    CHECK(r.failed);
    CHECK_THAT(r.error, Catch::Contains(path) && Catch::Contains("incorrect data check"));
  }
  SECTION("a truncated file") {
    const std::string z = gzip(good);
    write_file(path, z.substr(0, z.size() / 2));
    auto reader = ByteReader::open(path, error);
    REQUIRE(reader);
    const ReadAll r = read_all(*reader, 1 << 20);
    CHECK_FALSE(r.data.empty());
    CHECK(good.rfind(r.data, 0) == 0);  // a prefix of the text
    CHECK(r.failed);
    CHECK_THAT(r.error, Catch::Contains(path) && Catch::Contains("unexpected end"));
  }
  SECTION("garbage after the last member") {
    write_file(path, gzip(good) + "garbage");
    auto reader = ByteReader::open(path, error);
    REQUIRE(reader);
    const ReadAll r = read_all(*reader, 1 << 20);
    CHECK(r.data == good);
    CHECK(r.failed);
    CHECK_THAT(r.error, Catch::Contains("trailing garbage"));
  }
}

TEST_CASE("a missing file is an error naming the path and the OS error", "[byte_reader]") {
  TempDir dir;
  std::string error;
  auto reader = ByteReader::open(dir / "nope.log", error);
  CHECK_FALSE(reader);
  CHECK_THAT(error, Catch::Contains(dir / "nope.log") && Catch::Contains("No such file"));
}

TEST_CASE("a directory is an error", "[byte_reader]") {
  TempDir dir;
  std::string error;
  auto reader = ByteReader::open(dir.path(), error);
  CHECK_FALSE(reader);
  CHECK(error == dir.path() + ": Is a directory");
}

TEST_CASE("stdin is read through a pipe and gzip on it is detected", "[byte_reader][concurrency]") {
  const std::string text = sample_text(50);
  const std::string z = gzip(text);
  // CI may run with fd 0 closed: then there is nothing to save, and pipe() may return fd 0 itself.
  const int saved_stdin = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::dup2(fds[0], STDIN_FILENO) == STDIN_FILENO);
  if (fds[0] != STDIN_FILENO) ::close(fds[0]);
  // Written byte by byte from a thread: detection must cope with a 1-byte first read.
  std::thread writer([&] {
    for (char ch : z) {
      if (::write(fds[1], &ch, 1) != 1) break;
    }
    ::close(fds[1]);
  });
  std::string error;
  ReadAll r;
  bool compressed = false;
  int descriptor = 0;
  {
    auto reader = ByteReader::open("-", error);
    if (reader) {
      compressed = reader->is_compressed();
      descriptor = reader->plain_file_descriptor();
      r = read_all(*reader);
    }
  }
  writer.join();
  // The reader borrowed fd 0 and must not have closed it.
  const bool stdin_still_open = ::fcntl(STDIN_FILENO, F_GETFD) != -1;
  if (saved_stdin >= 0) {
    ::dup2(saved_stdin, STDIN_FILENO);
    ::close(saved_stdin);
  } else {
    ::close(STDIN_FILENO);
  }
  CHECK(stdin_still_open);
  CHECK(error.empty());
  CHECK(compressed);
  CHECK(descriptor == -1);
  CHECK(r.data == text);
}

// ============================================================================================
// Follower
// ============================================================================================

TEST_CASE("appended lines are read as they come, a split line held until its newline", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\nb");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  CHECK(sink.lines() == Lines{"a"});
  append(log, "c");
  f.poll_once();
  CHECK(sink.lines() == Lines{"a"});
  append(log, "\nd\n");
  f.poll_once();
  CHECK(sink.lines() == Lines{"a", "bc", "d"});
  f.poll_once();
  CHECK(sink.lines() == Lines{"a", "bc", "d"});
  CHECK(sink.chunk_bytes() == 7);
  CHECK(sink.watched() == std::vector<std::size_t>{1});
}

TEST_CASE("files existing at start are read from their end unless from_beginning", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "old 1\nold 2\n");
  SECTION("from the end") {
    RecordingSink sink;
    Follower f(options_for({log}, false), sink);
    f.poll_once();
    CHECK(sink.lines().empty());
    auto pos = f.positions();
    REQUIRE(pos.size() == 1);
    CHECK(pos[0].offset == 12);  // the starting offset counts
    append(log, "new\n");
    f.poll_once();
    CHECK(sink.lines() == Lines{"new"});
    CHECK(f.positions()[0].offset == 16);
  }
  SECTION("from the beginning") {
    RecordingSink sink;
    Follower f(options_for({log}, true), sink);
    f.poll_once();
    append(log, "new\n");
    f.poll_once();
    CHECK(sink.lines() == Lines{"old 1", "old 2", "new"});
  }
  SECTION("starting at the end in the middle of a line drops that line's rest") {
    append(log, "half writ");
    RecordingSink sink;
    Follower f(options_for({log}, false), sink);
    f.poll_once();
    append(log, "ten\nnext\n");
    f.poll_once();
    CHECK(sink.lines() == Lines{"next"});
  }
}

TEST_CASE("rename rotation reads the old file to its end before the new one", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "1\n2");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  CHECK(sink.lines() == Lines{"1"});
  rename_file(log, dir / "app.log.1");
  append(dir / "app.log.1", "3\nlast without newline");  // the writer still had the old file open
  write_file(log, "new 1\n");
  f.poll_once();
  CHECK(sink.events() == Lines{"line app.log 1", "line app.log 23", "line app.log last without newline",
                               "rotation app.log", "line app.log new 1"});
  append(log, "new 2\n");
  f.poll_once();
  CHECK(sink.lines().back() == "new 2");
  CHECK(sink.count("rotation app.log") == 1);
}

// A sink that batches lines (the exporter holds its registry lock from a batch's first line to
// its on_chunk_done) must never be left mid-batch when the follower goes to sleep.
class BatchCheckingSink : public RecordingSink {
 public:
  void on_line(std::string_view path, std::string_view line) override {
    in_batch = true;
    RecordingSink::on_line(path, line);
  }
  void on_chunk_done(std::string_view path, std::uint64_t bytes) override {
    in_batch = false;
    RecordingSink::on_chunk_done(path, bytes);
  }
  bool in_batch = false;
};

TEST_CASE("a rotated file's last unterminated line is followed by a chunk end, even when the new file is empty",
          "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "1\n");
  BatchCheckingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  append(log, "last without newline");
  rename_file(log, dir / "app.log.1");
  write_file(log, "");
  f.poll_once();
  CHECK(sink.lines().back() == "last without newline");
  CHECK_FALSE(sink.in_batch);
}

TEST_CASE("a renamed-away file is followed until the path names a file again", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\n");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  rename_file(log, dir / "app.log.1");  // logrotate nocreate: the app recreates on reload
  f.poll_once();
  append(dir / "app.log.1", "b\n");
  f.poll_once();
  CHECK(sink.lines() == Lines{"a", "b"});
  CHECK(sink.watched().back() == 1);
  write_file(log, "c\n");
  f.poll_once();
  CHECK(sink.lines() == Lines{"a", "b", "c"});
  CHECK(sink.count("rotation app.log") == 1);
}

TEST_CASE("copytruncate restarts at offset 0 and reports a truncation", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\nb\npartial");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  CHECK(sink.lines() == Lines{"a", "b"});
  truncate_and_write(log, "c\n");
  f.poll_once();
  CHECK(sink.events() == Lines{"line app.log a", "line app.log b", "truncation app.log", "line app.log c"});
  CHECK(f.positions()[0].offset == 2);
}

TEST_CASE("a deleted file is finished and a recreated one counts as a rotation", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\nb");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  SECTION("deleted, seen, then recreated") {
    append(log, "c\n");
    REQUIRE(::unlink(log.c_str()) == 0);
    f.poll_once();
    CHECK(sink.lines() == Lines{"a", "bc"});
    CHECK(sink.watched().back() == 0);  // closed: its disk space can be freed
    CHECK(f.positions().empty());
    f.poll_once();
    write_file(log, "d\n");
    f.poll_once();
    CHECK(sink.events() == Lines{"line app.log a", "line app.log bc", "rotation app.log", "line app.log d"});
    CHECK(sink.notices() == Lines{"waiting for " + log + " to appear"});
  }
  SECTION("deleted and recreated between two passes") {
    REQUIRE(::unlink(log.c_str()) == 0);
    write_file(log, "d\n");
    f.poll_once();
    CHECK(sink.events() == Lines{"line app.log a", "line app.log b", "rotation app.log", "line app.log d"});
  }
}

TEST_CASE("a path absent at start is waited for with one notice and read from its start", "[follower]") {
  TempDir dir;
  const std::string log = dir / "later.log";
  RecordingSink sink;
  Follower f(options_for({log}, false), sink);
  f.poll_once();
  f.poll_once();
  f.poll_once();
  CHECK(sink.notices() == Lines{"waiting for " + log + " to appear"});
  CHECK(sink.events().empty());
  write_file(log, "first\n");
  f.poll_once();
  CHECK(sink.lines() == Lines{"first"});  // appeared after start: from its start
  CHECK(sink.notices().size() == 1);
  CHECK(sink.watched() == std::vector<std::size_t>{0, 1});
}

TEST_CASE("a glob picks up a file created later and reads it from its start", "[follower]") {
  TempDir dir;
  write_file(dir / "a.log", "old a\n");
  REQUIRE(::mkdir((dir / "dir.log").c_str(), 0755) == 0);  // a matching directory is skipped silently
  write_file(dir / "other.txt", "not matched\n");
  RecordingSink sink;
  Follower f(options_for({dir / "*.log"}, false), sink);
  f.poll_once();
  CHECK(sink.lines().empty());
  write_file(dir / "b.log", "new b\n");
  append(dir / "a.log", "new a\n");
  f.poll_once();
  CHECK(sink.events() == Lines{"line a.log new a", "line b.log new b"});
  CHECK(sink.watched() == std::vector<std::size_t>{1, 2});
  CHECK(sink.notices().empty());
}

TEST_CASE("a glob that matches nothing yet gives one notice", "[follower]") {
  TempDir dir;
  RecordingSink sink;
  Follower f(options_for({dir / "*.log"}), sink);
  f.poll_once();
  f.poll_once();
  CHECK(sink.notices() == Lines{"waiting for " + (dir / "*.log") + " to appear"});
  write_file(dir / "x.log", "x\n");
  f.poll_once();
  CHECK(sink.lines() == Lines{"x"});
}

TEST_CASE("a glob matching rotated names reads every file once", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "1\n2\n");
  RecordingSink sink;
  Follower f(options_for({dir / "app.log*"}), sink);
  f.poll_once();
  rename_file(log, dir / "app.log.1");
  write_file(log, "3\n");
  f.poll_once();
  f.poll_once();
  CHECK(sink.lines() == Lines{"1", "2", "3"});
  append(dir / "app.log.1", "late\n");  // a late write to the rotated file: read once, at its end
  f.poll_once();
  f.poll_once();
  CHECK(sink.events() == Lines{"line app.log 1", "line app.log 2", "rotation app.log", "line app.log 3",
                               "line app.log.1 late"});
}

TEST_CASE("a read error is reported once per path and reason and retried", "[follower]") {
  // Tests run as root, so EACCES cannot be produced with chmod; a directory given as a file is
  // the same code path (report once, retry every pass).
  TempDir dir;
  const std::string log = dir / "app.log";
  REQUIRE(::mkdir(log.c_str(), 0755) == 0);
  RecordingSink sink;
  Follower f(options_for({log}, false), sink);
  f.poll_once();
  f.poll_once();
  f.poll_once();
  CHECK(sink.events() == Lines{"error app.log is_directory"});
  CHECK(sink.messages() == Lines{log + ": Is a directory"});
  CHECK(sink.notices().empty());
  REQUIRE(::rmdir(log.c_str()) == 0);
  write_file(log, "recovered\n");
  f.poll_once();
  CHECK(sink.lines() == Lines{"recovered"});
  // Recovered: the same problem is reported again if it comes back.
  REQUIRE(::unlink(log.c_str()) == 0);
  f.poll_once();
  REQUIRE(::mkdir(log.c_str(), 0755) == 0);
  f.poll_once();
  f.poll_once();
  CHECK(sink.count("error app.log is_directory") == 2);
}

TEST_CASE("stdin cannot be followed and is rejected clearly", "[follower]") {
  FollowOptions o = options_for({"-"});
  CHECK_THAT(Follower::check(o), Catch::Contains("stdin"));
  CHECK(Follower::check(options_for({"/var/log/x.log"})).empty());
  CHECK_FALSE(Follower::check(options_for({})).empty());
  RecordingSink sink;
  Follower f(o, sink);
  f.poll_once();
  f.poll_once();
  CHECK(sink.events() == Lines{"error - unsupported"});
}

TEST_CASE("an oversize line is reported and the next line still delivered", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  FollowOptions o = options_for({log});
  o.max_line_bytes = 8;
  o.read_chunk_bytes = 4096;
  write_file(log, "short\n" + std::string(10000, 'x') + "\nafter\n");
  RecordingSink sink;
  Follower f(o, sink);
  f.poll_once();
  CHECK(sink.events() == Lines{"line app.log short", "oversize app.log 10000", "line app.log after"});
}

// Takes each read's whole lines as one block (as the exporter does), then splits it as the default
// does; remembers how each block looked.
class BlockSink : public RecordingSink {
 public:
  void on_lines(std::string_view path, std::string_view block, std::size_t max_line_bytes) override {
    ++blocks;
    if (block.empty() || block.back() != '\n') bad_blocks.emplace_back(block);
    FollowerSink::on_lines(path, block, max_line_bytes);
  }
  std::size_t blocks = 0;
  std::vector<std::string> bad_blocks;
};

TEST_CASE("a read's whole lines come as one block, the lines around it as lines, in order", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  FollowOptions o = options_for({log});
  o.max_line_bytes = 200;
  o.read_chunk_bytes = 4096;
  std::mt19937 rng(13);
  std::string content;
  Lines expected;
  for (int i = 0; i < 3000; ++i) {
    const std::size_t size = std::uniform_int_distribution<std::size_t>(0, i % 97 == 0 ? 5000 : 300)(rng);
    std::string line(size, static_cast<char>('a' + i % 26));
    const bool crlf = i % 7 == 0;
    content += line + (crlf ? "\r\n" : "\n");
    expected.push_back(size > o.max_line_bytes ? "oversize app.log " + std::to_string(size) : "line app.log " + line);
  }
  write_file(log, content + "partial");
  BlockSink sink;
  Follower f(o, sink);
  f.poll_once();
  CHECK(sink.events() == expected);
  CHECK(sink.blocks > 10);
  CHECK(sink.bad_blocks.empty());
  append(log, " end\n");
  f.poll_once();
  expected.push_back("line app.log partial end");
  CHECK(sink.events() == expected);
}

TEST_CASE("a pass reads at most 8 MiB per file so busy files share the thread", "[follower]") {
  TempDir dir;
  const std::string line = std::string(1023, 'x') + "\n";
  std::string big;
  for (int i = 0; i < 10 * 1024; ++i) big += line;  // 10 MiB
  write_file(dir / "a.log", big);
  write_file(dir / "b.log", "b\n");
  RecordingSink sink;
  Follower f(options_for({dir / "*.log"}), sink);
  f.poll_once();
  CHECK(sink.chunk_bytes() == 8 * 1024 * 1024 + 2);
  CHECK(sink.count("line b.log b") == 1);
  f.poll_once();
  CHECK(sink.chunk_bytes() == big.size() + 2);
  CHECK(sink.lines().size() == 10 * 1024 + 1);
}

TEST_CASE("request_reopen keeps offsets", "[follower]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\n");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  f.request_reopen();
  append(log, "b\n");
  f.poll_once();
  f.poll_once();
  CHECK(sink.lines() == Lines{"a", "b"});
  CHECK(sink.events().size() == 2);
}

// ---- compressed files ------------------------------------------------------------------------

TEST_CASE("compressed files are recognised by name or by magic bytes", "[follower][compressed]") {
  using nle::compression_of;
  CHECK(compression_of("cp.log.2.gz", "") == "gzip");
  CHECK(compression_of("cp.log.2.zst", "") == "zstd");
  CHECK(compression_of("cp.log.2.xz", "") == "xz");
  CHECK(compression_of("cp.log.2.bz2", "") == "bzip2");
  CHECK(compression_of("cp.log.1", std::string("\x1f\x8b\x08\x00", 4)) == "gzip");
  CHECK(compression_of("cp.log.1", std::string("\x28\xb5\x2f\xfd\x04\x00", 6)) == "zstd");
  CHECK(compression_of("cp.log.1", std::string("\xfd" "7zXZ\x00", 6)) == "xz");
  CHECK(compression_of("cp.log.1", "BZh91AY") == "bzip2");
  CHECK(compression_of("cp.log.1", std::string("\x04\x22\x4d\x18", 4)) == "lz4");
  // Plain logs, names that merely contain an extension, and a lone first magic byte are text.
  CHECK(compression_of("cp.log.1", "2026-11").empty());
  CHECK(compression_of("cp.gz.log", "{\"timesta").empty());
  CHECK(compression_of(".gz", "").empty());
  CHECK(compression_of("cp.log", std::string("\x1f", 1)).empty());
  CHECK(compression_of("cp.log", "BZh").empty());
  CHECK(compression_of("cp.log", "BZhx").empty());
}

TEST_CASE("a glob skips compressed members with one notice each and never watches them", "[follower][compressed]") {
  TempDir dir;
  write_file(dir / "cp.log", "a\n");
  write_file(dir / "cp.log.2.gz", gzip("old\n"));
  write_file(dir / "cp.log.3", gzip("older, compressed under a plain name\n"));
  RecordingSink sink;
  Follower f(options_for({dir / "cp.log*"}), sink);
  f.poll_once();
  f.poll_once();
  CHECK(sink.lines() == Lines{"a"});
  CHECK(sink.watched() == std::vector<std::size_t>{1});
  write_file(dir / "cp.log.4.zst", std::string("\x28\xb5\x2f\xfd\x04\x00", 6));  // appears later
  write_file(dir / "cp.log.5", std::string("\x28\xb5\x2f\xfd\x04\x00", 6));
  f.poll_once();
  f.poll_once();
  CHECK(sink.lines() == Lines{"a"});
  CHECK(sink.watched() == std::vector<std::size_t>{1});
  const auto notices = sink.notices();
  REQUIRE(notices.size() == 4);
  CHECK_THAT(notices[0], Catch::Contains("cp.log.2.gz is compressed (gzip)") && Catch::Contains("replay"));
  CHECK_THAT(notices[1], Catch::Contains("cp.log.3 is compressed (gzip)"));
  CHECK_THAT(notices[2], Catch::Contains("cp.log.4.zst is compressed (zstd)"));
  CHECK_THAT(notices[3], Catch::Contains("cp.log.5 is compressed (zstd)"));
}

TEST_CASE("a compressed file named on its own is refused: use replay", "[follower][compressed]") {
  TempDir dir;
  write_file(dir / "cp.log.1", gzip("x\n"));
  CHECK_THAT(Follower::check(options_for({dir / "cp.log.2.gz"})),
             Catch::Contains("cp.log.2.gz is compressed (gzip)") && Catch::Contains("replay"));
  CHECK_THAT(Follower::check(options_for({dir / "cp.log.1"})), Catch::Contains("compressed (gzip)"));
  CHECK(Follower::check(options_for({dir / "cp.log*"})).empty());  // a glob skips them instead
  CHECK(Follower::check(options_for({dir / "cp.log"})).empty());
}

// ---- copies and rotations through a glob -------------------------------------------------------

TEST_CASE("a copy is told by its first bytes", "[follower][copies]") {
  using nle::match_head;
  CHECK(match_head("line 1\nline 2\n", "line 1\nline 2\n") == HeadMatch::copy);
  CHECK(match_head("line 1\nline 2\nline 3\n", "line 1\nline 2\n") == HeadMatch::copy);  // grew since
  CHECK(match_head("line 1\nli", "line 1\nline 2\n") == HeadMatch::prefix);             // being copied
  CHECK(match_head("", "line 1\n") == HeadMatch::prefix);                               // created empty
  CHECK(match_head("line 9\n", "line 1\n") == HeadMatch::different);
  CHECK(match_head("line 1\nline 2\n", "") == HeadMatch::different);  // nothing known: nothing to match
  CHECK(match_head("", "") == HeadMatch::different);
}

// Lines "<tag> <i>" from `from` to `to` (exclusive), each unique, as a real log's timestamps are.
std::string numbered(const std::string& tag, int from, int to) {
  std::string out;
  for (int i = from; i < to; ++i) out += tag + " " + std::to_string(i) + "\n";
  return out;
}

Lines numbered_lines(const std::string& tag, int from, int to) {
  Lines out;
  for (int i = from; i < to; ++i) out.push_back(tag + " " + std::to_string(i));
  return out;
}

Lines sorted(Lines lines) {
  std::sort(lines.begin(), lines.end());
  return lines;
}

void copy_file(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::ofstream out(to, std::ios::binary | std::ios::trunc);
  out << in.rdbuf();
  REQUIRE(out.good());
}

TEST_CASE("copytruncate through a glob reads the copy from where the original was read", "[follower][copies]") {
  TempDir dir;
  const std::string log = dir / "cp.log";
  write_file(log, numbered("one", 0, 100));
  RecordingSink sink;
  Follower f(options_for({dir / "cp.log*"}), sink);
  f.poll_once();
  append(log, numbered("one", 100, 150));  // written, not read yet when logrotate runs
  SECTION("the copy found after the truncation") {
    copy_file(log, dir / "cp.log.1");
    truncate_and_write(log, numbered("two", 0, 10));
    f.poll_once();
  }
  SECTION("the copy found before the truncation is held until the truncation") {
    write_file(dir / "cp.log.1", "");  // created empty, then filled: logrotate's copy being written
    f.poll_once();                     // (this pass reads the original's new lines)
    copy_file(log, dir / "cp.log.1");
    f.poll_once();
    truncate_and_write(log, numbered("two", 0, 10));
    f.poll_once();
  }
  SECTION("the copy found while being written, after the truncation") {
    write_file(dir / "cp.log.1", numbered("one", 0, 3));
    truncate_and_write(log, numbered("two", 0, 10));
    f.poll_once();
    write_file(dir / "cp.log.1", numbered("one", 0, 150));
    f.poll_once();
  }
  f.poll_once();
  Lines expected = numbered_lines("one", 0, 150);
  for (const auto& l : numbered_lines("two", 0, 10)) expected.push_back(l);
  CHECK(sorted(sink.lines()) == sorted(expected));  // every line once
  CHECK(sink.count("truncation cp.log") == 1);
  CHECK(sink.count("rotation cp.log") + sink.count("rotation cp.log.1") == 0);  // not a rename rotation
}

// logrotate's `create` run: shifts cp.log.N to cp.log.N+1 (keeping `keep` rotated files), renames
// cp.log to cp.log.1; `between` runs before the new cp.log is created with `content`. With
// `delaycompress`, cp.log.2 is then compressed to cp.log.2.gz and removed.
void logrotate_create(const TempDir& dir, int keep, bool delaycompress, const std::string& content,
                      const std::function<void()>& between = {}) {
  const std::string base = dir / "cp.log";
  auto name = [&](int n) { return base + "." + std::to_string(n) + (delaycompress && n >= 2 ? ".gz" : ""); };
  ::unlink(name(keep).c_str());
  for (int n = keep - 1; n >= 1; --n) {
    if (delaycompress && n == 1) {
      if (::access(name(1).c_str(), F_OK) == 0) rename_file(name(1), base + ".2");
    } else if (::access(name(n).c_str(), F_OK) == 0) {
      rename_file(name(n), name(n + 1));
    }
  }
  rename_file(base, base + ".1");
  if (between) between();
  write_file(base, content);
  if (delaycompress && ::access((base + ".2").c_str(), F_OK) == 0) {
    std::ifstream in(base + ".2", std::ios::binary);
    std::string plain((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    write_file(base + ".2.gz", gzip(plain));
    REQUIRE(::unlink((base + ".2").c_str()) == 0);
  }
}

TEST_CASE("copytruncate of a literal path reads the lines it had not read from the copy beside it", "[follower][copies]") {
  TempDir dir;
  const std::string log = dir / "cp.log";
  write_file(log, numbered("one", 0, 100));
  write_file(dir / "cp.log.2", numbered("older copy", 0, 5));  // an earlier rotation's: not this copy
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  f.poll_once();
  append(log, numbered("one", 100, 150));  // written, not read yet when logrotate runs
  copy_file(log, dir / "cp.log.1");
  SECTION("the copy plain") {}
  SECTION("the copy already compressed: those lines are lost, nothing is read twice") {
    write_file(dir / "cp.log.1.gz", gzip(numbered("one", 0, 150)));
    REQUIRE(::unlink((dir / "cp.log.1").c_str()) == 0);
  }
  truncate_and_write(log, numbered("two", 0, 10));
  f.poll_once();
  f.poll_once();
  Lines expected = numbered_lines("one", 0, 100);
  if (::access((dir / "cp.log.1").c_str(), F_OK) == 0) {
    for (const auto& l : numbered_lines("one", 100, 150)) expected.push_back(l);
  }
  for (const auto& l : numbered_lines("two", 0, 10)) expected.push_back(l);
  CHECK(sink.lines() == expected);  // in order: the copy's rest before the truncated file's new lines
  CHECK(sink.count("truncation cp.log") == 1);
  CHECK(sink.count("rotation cp.log") == 0);
  CHECK(sink.watched().back() == 1);
}

TEST_CASE("copytruncate while stopped: the copy beside the file is read from the saved offset", "[follower][resume]") {
  TempDir dir;
  const std::string log = dir / "cp.log";
  write_file(log, numbered("one", 0, 100));
  std::vector<FilePosition> saved;
  {
    RecordingSink sink;
    Follower f(options_for({log}), sink);
    f.poll_once();
    saved = f.positions();
  }
  append(log, numbered("one", 100, 150));  // written while stopped
  copy_file(log, dir / "cp.log.1");        // then logrotate's copytruncate
  truncate_and_write(log, numbered("two", 0, 10));
  const std::string pattern = GENERATE(as<std::string>{}, "cp.log", "cp.log*");
  CAPTURE(pattern);
  FollowOptions o = options_for({dir / pattern});  // from_beginning: the saved position still wins
  o.resume = saved;
  RecordingSink sink;
  Follower f(o, sink);
  f.poll_once();
  f.poll_once();
  Lines expected = numbered_lines("one", 100, 150);
  for (const auto& l : numbered_lines("two", 0, 10)) expected.push_back(l);
  CHECK(sink.lines() == expected);
  CHECK(sink.count("truncation cp.log") == 1);
  for (const auto& e : sink.events()) CHECK(e.rfind("rotation ", 0) != 0);
}

TEST_CASE("a rename rotation through a glob counts once however many rotated names it matches", "[follower][copies]") {
  TempDir dir;
  write_file(dir / "cp.log", numbered("r0", 0, 5));
  RecordingSink sink;
  Follower f(options_for({dir / "cp.log*"}), sink);
  f.poll_once();
  Lines expected = numbered_lines("r0", 0, 5);
  const bool delaycompress = GENERATE(false, true);
  const bool pass_between = GENERATE(false, true);  // a pass between the rename and the create
  CAPTURE(delaycompress, pass_between);
  for (int round = 1; round <= 6; ++round) {
    const std::string tag = "r" + std::to_string(round);
    append(dir / "cp.log", numbered(tag + "-late", 0, 2));  // in the old file, not read before the rotation
    for (const auto& l : numbered_lines(tag + "-late", 0, 2)) expected.push_back(l);
    logrotate_create(dir, 4, delaycompress, numbered(tag, 0, 5), [&] {
      if (pass_between) f.poll_once();
    });
    for (const auto& l : numbered_lines(tag, 0, 5)) expected.push_back(l);
    f.poll_once();
    f.poll_once();
  }
  CHECK(sorted(sink.lines()) == sorted(expected));
  CHECK(sink.count("rotation cp.log") == 6);
  std::size_t rotations = 0;
  for (const auto& e : sink.events()) rotations += e.rfind("rotation ", 0) == 0 ? 1 : 0;
  CHECK(rotations == 6);
}

TEST_CASE("copytruncate through a glob many times counts truncations, not rotations", "[follower][copies]") {
  TempDir dir;
  const std::string log = dir / "cp.log";
  write_file(log, numbered("r0", 0, 5));
  RecordingSink sink;
  Follower f(options_for({dir / "cp.log*"}), sink);
  f.poll_once();
  Lines expected = numbered_lines("r0", 0, 5);
  for (int round = 1; round <= 5; ++round) {
    const std::string tag = "r" + std::to_string(round);
    append(log, numbered(tag + "-late", 0, 3));  // lost by the truncation unless read from the copy
    for (const auto& l : numbered_lines(tag + "-late", 0, 3)) expected.push_back(l);
    for (int n = 3; n >= 1; --n) {
      const std::string from = log + "." + std::to_string(n);
      if (::access(from.c_str(), F_OK) == 0) rename_file(from, log + "." + std::to_string(n + 1));
    }
    copy_file(log, log + ".1");
    truncate_and_write(log, numbered(tag, 0, 4));
    for (const auto& l : numbered_lines(tag, 0, 4)) expected.push_back(l);
    f.poll_once();
    f.poll_once();
  }
  CHECK(sorted(sink.lines()) == sorted(expected));
  CHECK(sink.count("truncation cp.log") == 5);
  for (const auto& e : sink.events()) CHECK(e.rfind("rotation ", 0) != 0);
}

TEST_CASE("lines that repeat from file to file are never taken for a copy", "[follower][copies]") {
  // Logs without timestamps repeat their lines exactly: only where a file is (a rotated name of
  // a truncated path) makes it a copy.
  TempDir dir;
  const std::string log = dir / "cp.log";
  const auto same = [](int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += "same\n";
    return out;
  };
  write_file(log, same(5));
  RecordingSink sink;
  Follower f(options_for({dir / "cp.log*"}), sink);
  f.poll_once();
  std::size_t expected = 5;
  SECTION("create: every new file is read whole") {
    for (int round = 1; round <= 3; ++round) {
      append(log, same(2));  // not read before the rotation
      logrotate_create(dir, 4, false, same(5));
      f.poll_once();
      f.poll_once();
      expected += 7;
    }
    CHECK(sink.count("rotation cp.log") == 3);
  }
  SECTION("copytruncate: every copy is read from where the original was") {
    for (int round = 1; round <= 3; ++round) {
      append(log, same(4));
      f.poll_once();
      append(log, same(3));  // not read before the truncation: only the copy keeps them
      if (::access((log + ".1").c_str(), F_OK) == 0) rename_file(log + ".1", log + ".2");
      copy_file(log, log + ".1");
      truncate_and_write(log, same(2));
      f.poll_once();
      f.poll_once();
      expected += 9;
    }
    CHECK(sink.count("truncation cp.log") == 3);
  }
  CHECK(sink.lines().size() == expected);
}

TEST_CASE("a rotated name that only starts like its original is held, and read whole once it differs",
          "[follower][copies]") {
  TempDir dir;
  write_file(dir / "cp.log", "2026-12-02T10:00:00Z first line of cp.log\n");
  RecordingSink sink;
  Follower f(options_for({dir / "cp.log*"}), sink);
  f.poll_once();
  write_file(dir / "cp.log.1", "2026-12-02T1");  // so far a prefix of cp.log: maybe its copy
  f.poll_once();
  CHECK(sink.lines() == Lines{"2026-12-02T10:00:00Z first line of cp.log"});
  CHECK(f.positions().size() == 2);
  CHECK(f.positions()[1].offset == 12);  // held: saved as read to its end
  append(dir / "cp.log.1", "1:00:00Z first line of cp.log.1\n");
  f.poll_once();
  CHECK(sink.lines() ==
        Lines{"2026-12-02T10:00:00Z first line of cp.log", "2026-12-02T11:00:00Z first line of cp.log.1"});
}

TEST_CASE("a saved position applies whatever the spelling of the path", "[follower][resume]") {
  TempDir dir;
  REQUIRE(::mkdir((dir / "sub").c_str(), 0755) == 0);
  write_file(dir / "app.log", "a\nb\n");
  std::vector<FilePosition> saved;
  {
    RecordingSink sink;
    Follower f(options_for({dir / "sub/../app.log"}), sink);
    f.poll_once();
    saved = f.positions();
  }
  REQUIRE(saved.size() == 1);
  char* real = ::realpath(dir.path().c_str(), nullptr);
  REQUIRE(real != nullptr);
  CHECK(saved[0].path == std::string(real) + "/app.log");  // the canonical path
  std::free(real);
  append(dir / "app.log", "c\n");
  const std::string pattern = GENERATE(as<std::string>{}, "./app.log", "sub/../app.log", "*.log", "sub/../*.log");
  CAPTURE(pattern);
  FollowOptions o = options_for({dir / pattern});  // from_beginning: the saved position still wins
  o.resume = saved;
  RecordingSink sink;
  Follower f(o, sink);
  f.poll_once();
  CHECK(sink.lines() == Lines{"c"});
  CHECK(sink.notices().empty());
}

TEST_CASE("positions and resume round trip", "[follower][resume]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\nb\npart");
  std::vector<FilePosition> saved;
  {
    RecordingSink sink;
    Follower f(options_for({log}), sink);
    f.poll_once();
    CHECK(sink.lines() == Lines{"a", "b"});
    saved = f.positions();
  }
  REQUIRE(saved.size() == 1);
  CHECK(saved[0].path == log);
  CHECK(saved[0].inode == inode_of(log));
  CHECK(saved[0].offset == 4);  // after "b\n": the partial line is read again on resume
  CHECK(saved[0].fingerprint_bytes == 4);

  SECTION("the same file, appended while stopped, continues at the offset") {
    append(log, "ial\nc\n");
    FollowOptions o = options_for({log}, false);  // resume wins over start-at-end
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.events() == Lines{"line app.log partial", "line app.log c"});
  }
  SECTION("renamed away while stopped: the old file's rest, then the new file") {
    append(log, "ial\nc\n");
    rename_file(log, dir / "app.log.1");
    write_file(log, "d\n");
    FollowOptions o = options_for({log}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.events() ==
          Lines{"line app.log partial", "line app.log c", "rotation app.log", "line app.log d"});
  }
  SECTION("renamed twice while stopped: oldest first, each file once") {
    append(log, "ial\n");
    rename_file(log, dir / "app.log.1");
    write_file(log, "middle\n");
    rename_file(dir / "app.log.1", dir / "app.log.2");
    rename_file(log, dir / "app.log.1");
    write_file(log, "newest\n");
    write_file(dir / "app.log.3.gz", gzip("compressed, older\n"));
    FollowOptions o = options_for({log}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.events() == Lines{"line app.log partial", "rotation app.log", "line app.log middle",
                                 "rotation app.log", "line app.log newest"});
  }
  SECTION("renamed away and not recreated: the old file stays open for the path") {
    append(log, "ial\n");
    rename_file(log, dir / "app.log.1");
    FollowOptions o = options_for({log}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.lines() == Lines{"partial"});
    append(dir / "app.log.1", "more\n");
    f.poll_once();
    write_file(log, "new\n");
    f.poll_once();
    CHECK(sink.events() == Lines{"line app.log partial", "line app.log more", "rotation app.log", "line app.log new"});
  }
  SECTION("truncated and rewritten while stopped: read from 0 with a truncation") {
    truncate_and_write(log, "X\nY\nZ\n");  // longer than the offset, but other bytes before it
    FollowOptions o = options_for({log}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.events() == Lines{"truncation app.log", "line app.log X", "line app.log Y", "line app.log Z"});
  }
  SECTION("truncated shorter while stopped: read from 0 with a truncation") {
    truncate_and_write(log, "Q\n");
    FollowOptions o = options_for({log}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.events() == Lines{"truncation app.log", "line app.log Q"});
  }
  SECTION("the saved file gone for good: one notice and the path from 0") {
    TempDir elsewhere;
    rename_file(log, elsewhere / "moved.log");  // keeps the inode in use, so it is not reused
    write_file(log, "fresh\n");
    FollowOptions o = options_for({log}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    f.poll_once();
    CHECK(sink.lines() == Lines{"fresh"});
    REQUIRE(sink.notices().size() == 1);
    CHECK_THAT(sink.notices()[0], Catch::Contains(log) && Catch::Contains("gone"));
  }
  SECTION("a saved position for a path no pattern names is ignored with a notice") {
    FollowOptions o = options_for({dir / "other.log"}, false);
    o.resume = saved;
    RecordingSink sink;
    Follower f(o, sink);
    f.poll_once();
    CHECK(sink.events().empty());
    CHECK(sink.notices().size() == 2);  // ignored, and waiting for other.log
  }
}

TEST_CASE("positions during a rotation name the old file until it is finished", "[follower][resume]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "a\n");
  RecordingSink sink;
  FollowOptions o = options_for({log});
  Follower f(o, sink);
  f.poll_once();
  const auto old_inode = inode_of(log);
  std::vector<FilePosition> during;
  rename_file(log, dir / "app.log.1");
  append(dir / "app.log.1", "b\n");
  write_file(log, "c\n");
  // Take positions at the first chunk of the pass: the old file is being finished.
  sink.on_chunk = [&] {
    if (during.empty()) during = f.positions();
  };
  f.poll_once();
  REQUIRE(during.size() == 1);
  CHECK(during[0].inode == old_inode);
  CHECK(during[0].offset == 4);
  const auto after = f.positions();
  REQUIRE(after.size() == 1);
  CHECK(after[0].inode == inode_of(log));
  CHECK(after[0].offset == 2);
}

TEST_CASE("run() with inotify sees an append promptly and stops promptly", "[follower][run][concurrency]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "first\n");
  RecordingSink sink;
  Follower f(options_for({log}), sink);
  REQUIRE(f.using_inotify());
  std::thread runner([&] { f.run(); });
  const bool first = eventually([&] { return sink.lines().size() == 1; });
  append(log, "second\n");
  const bool second = eventually([&] { return sink.lines().size() == 2; });
  const auto t0 = std::chrono::steady_clock::now();
  f.request_stop();
  runner.join();
  const auto stop_time = std::chrono::steady_clock::now() - t0;
  CHECK(first);
  CHECK(second);
  CHECK(sink.lines() == Lines{"first", "second"});
  CHECK(stop_time < std::chrono::milliseconds(500));
}

TEST_CASE("run() with inotify finds files under directories created later", "[follower][run][concurrency]") {
  TempDir dir;
  RecordingSink sink;
  Follower f(options_for({dir / "missing/app.log", dir / "*/nested.log"}, false), sink);
  REQUIRE(f.using_inotify());
  std::thread runner([&] { f.run(); });
  // on_files_watched comes at the end of the first pass: files created after it are "later" ones.
  const bool started = eventually([&] { return !sink.watched().empty(); });
  const bool waiting = sink.notices().size() == 2;
  REQUIRE(::mkdir((dir / "missing").c_str(), 0755) == 0);
  append(dir / "missing/app.log", "one\n");
  const bool one = eventually([&] { return sink.lines().size() == 1; });
  REQUIRE(::mkdir((dir / "x").c_str(), 0755) == 0);
  append(dir / "x/nested.log", "two\n");
  const bool two = eventually([&] { return sink.lines().size() == 2; });
  f.request_stop();
  runner.join();
  CHECK(started);
  CHECK(waiting);
  CHECK(one);
  CHECK(two);
  CHECK(sink.lines() == Lines{"one", "two"});
}

TEST_CASE("run() in polling mode sees an append and stops promptly", "[follower][run][concurrency]") {
  TempDir dir;
  const std::string log = dir / "app.log";
  write_file(log, "first\n");
  FollowOptions o = options_for({log});
  o.force_polling = true;
  o.poll_interval = std::chrono::milliseconds(20);
  RecordingSink sink;
  Follower f(o, sink);
  CHECK_FALSE(f.using_inotify());
  std::thread runner([&] { f.run(); });
  const bool first = eventually([&] { return sink.lines().size() == 1; });
  append(log, "second\n");
  const bool second = eventually([&] { return sink.lines().size() == 2; });
  const auto t0 = std::chrono::steady_clock::now();
  f.request_stop();
  runner.join();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
  CHECK(first);
  CHECK(second);
}

TEST_CASE("run() returns at once when a stop was requested before it started", "[follower][run]") {
  TempDir dir;
  RecordingSink sink;
  FollowOptions o = options_for({dir / "x.log"});
  o.force_polling = true;
  o.poll_interval = std::chrono::hours(1);
  Follower f(o, sink);
  f.request_stop();
  const auto t0 = std::chrono::steady_clock::now();
  f.run();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(500));
}
