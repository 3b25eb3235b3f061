// Tests for source/journal_source: real journal files written by systemd-journal-remote (through
// tests/integration/journal_fixture.py), read with poll_once(); run() only where the blocking
// loop itself is under test.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "source/journal_source.h"

namespace {

namespace fs = std::filesystem;
using nle::JournalOptions;
using nle::JournalSink;
using nle::JournalSource;
using Message = std::optional<std::string>;  // nullopt: an entry without a MESSAGE field
using Strings = std::vector<std::string>;

const std::string kFixture = std::string(NLE_TESTDATA_DIR) + "/../tests/integration/journal_fixture.py";
const std::string kUnit = "nixfleet-control-plane.service";

// ---- helpers -------------------------------------------------------------------------------

// A fresh directory, removed with everything in it. The journal lives in dir()/journal.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "nle-journal-test-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    root_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& root() const { return root_; }
  fs::path journal() const { return root_ / "journal"; }

 private:
  fs::path root_;
};

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 0xf];
  }
  return out;
}

// Adds entries to the journal in `dir` with systemd-journal-remote: a new file per call
// (remote.journal, remote-2.journal, ...), or appended to `output` if that file exists.
void write_journal(const TempDir& tmp, const std::vector<Message>& messages, const std::string& unit = kUnit,
                   const std::string& output = "") {
  // Messages go through a file: one argument is limited to 128 KiB, and hex keeps any byte safe.
  const fs::path hex_file = tmp.root() / "messages.hex";
  {
    std::ofstream out(hex_file, std::ios::binary | std::ios::trunc);
    for (const Message& m : messages) out << (m ? hex(*m) : "none") << '\n';
  }
  std::string command = "python3 '" + kFixture + "' '" + tmp.journal().string() + "' --unit '" + unit +
                        "' --hex-file '" + hex_file.string() + "'";
  if (!output.empty()) command += " --output '" + output + "'";
  command += " >/dev/null";
  INFO(command);
  REQUIRE(std::system(command.c_str()) == 0);
}

void write_journal(const TempDir& tmp, const Strings& messages, const std::string& unit = kUnit,
                   const std::string& output = "") {
  write_journal(tmp, std::vector<Message>(messages.begin(), messages.end()), unit, output);
}

// Records what the source hands out; safe to read from another thread while run() goes on.
class Recorder : public JournalSink {
 public:
  void on_message(std::string_view message, std::string_view cursor, std::uint64_t realtime_usec) override {
    std::lock_guard lock(mu_);
    realtimes_.push_back(realtime_usec);
    messages_.emplace_back(message);
    cursors_.emplace_back(cursor);
    changed_.notify_all();
  }
  void on_caught_up() override {
    std::lock_guard lock(mu_);
    ++caught_up_;
    changed_.notify_all();
  }
  void on_error(std::string_view reason, std::string_view message) override {
    std::lock_guard lock(mu_);
    errors_.push_back(std::string(reason) + ": " + std::string(message));
  }
  void on_notice(std::string_view message) override {
    std::lock_guard lock(mu_);
    notices_.emplace_back(message);
  }

  Strings messages() const {
    std::lock_guard lock(mu_);
    return messages_;
  }
  Strings cursors() const {
    std::lock_guard lock(mu_);
    return cursors_;
  }
  Strings errors() const {
    std::lock_guard lock(mu_);
    return errors_;
  }
  Strings notices() const {
    std::lock_guard lock(mu_);
    return notices_;
  }
  std::vector<std::uint64_t> realtimes() const {
    std::lock_guard lock(mu_);
    return realtimes_;
  }
  int caught_up() const {
    std::lock_guard lock(mu_);
    return caught_up_;
  }
  // Waits (without polling) until at least `count` messages arrived; false after the deadline.
  bool wait_for_messages(size_t count, std::chrono::seconds deadline = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, deadline, [&] { return messages_.size() >= count; });
  }
  bool wait_for_caught_up(int count, std::chrono::seconds deadline = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return changed_.wait_for(lock, deadline, [&] { return caught_up_ >= count; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable changed_;
  Strings messages_, cursors_, errors_, notices_;
  std::vector<std::uint64_t> realtimes_;
  int caught_up_ = 0;
};

JournalOptions from_head(const TempDir& tmp) {
  JournalOptions options;
  options.directory = tmp.journal().string();
  options.from_beginning = true;
  return options;
}

// Opens, reads everything available once, and returns the messages.
Strings read_once(JournalOptions options, Recorder* recorder = nullptr) {
  Recorder local;
  Recorder& sink = recorder ? *recorder : local;
  JournalSource source(std::move(options), sink);
  REQUIRE(source.open() == "");
  source.poll_once();
  CHECK(sink.errors().empty());
  return sink.messages();
}

// ---- unit names ----------------------------------------------------------------------------

TEST_CASE("a unit name without a type gets .service, one with a type is kept", "[journal]") {
  CHECK(JournalSource::unit_name("nixfleet-control-plane") == "nixfleet-control-plane.service");
  CHECK(JournalSource::unit_name("nixfleet-control-plane.service") == "nixfleet-control-plane.service");
  CHECK(JournalSource::unit_name("cp.socket") == "cp.socket");
  CHECK(JournalSource::unit_name("cp@web-07") == "cp@web-07.service");
  CHECK(JournalSource::unit_name("cp.v2") == "cp.v2.service");  // not a unit type: part of the name
}

// ---- reading -------------------------------------------------------------------------------

TEST_CASE("a directory read from the head delivers every entry in order, then catches up", "[journal]") {
  TempDir tmp;
  const auto now_usec = [] {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  };
  const std::uint64_t written_after = now_usec();
  write_journal(tmp, Strings{"first", "second", "third"});
  Recorder sink;
  JournalSource source(from_head(tmp), sink);
  REQUIRE(source.cursor().empty());
  REQUIRE(source.open() == "");
  source.poll_once();
  CHECK(sink.messages() == Strings{"first", "second", "third"});
  CHECK(sink.caught_up() == 1);
  CHECK(sink.errors().empty());
  // Each entry's own time (the fixture stamps them now, strictly increasing), for the lag metric.
  const std::vector<std::uint64_t> realtimes = sink.realtimes();
  REQUIRE(realtimes.size() == 3);
  CHECK(realtimes[0] >= written_after);
  CHECK(realtimes[0] < realtimes[1]);
  CHECK(realtimes[1] < realtimes[2]);
  CHECK(realtimes[2] <= now_usec());
  const Strings cursors = sink.cursors();
  REQUIRE(cursors.size() == 3);
  CHECK(cursors[0] != cursors[1]);
  CHECK(source.cursor() == cursors[2]);

  source.poll_once();  // nothing new: no messages, but still a catch-up
  CHECK(sink.messages().size() == 3);
  CHECK(sink.caught_up() == 2);
}

TEST_CASE("entries of another unit are not delivered", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"cp 1"});
  write_journal(tmp, Strings{"other 1"}, "sshd.service");
  write_journal(tmp, Strings{"cp 2"});

  JournalOptions options = from_head(tmp);
  options.units = {"nixfleet-control-plane"};  // without .service
  CHECK(read_once(options) == Strings{"cp 1", "cp 2"});

  options.units = {kUnit, "sshd.service"};  // several units are OR-ed
  CHECK(read_once(options) == Strings{"cp 1", "other 1", "cp 2"});

  options.units = {"absent.service"};
  CHECK(read_once(options).empty());
}

TEST_CASE("a MESSAGE with colour escapes, invalid UTF-8 and NUL is delivered byte-exact", "[journal]") {
  TempDir tmp;
  const std::string coloured =
      "\x1b[2m2026-11-20T08:14:03.511203Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mreport\x1b[0m\x1b[2m:\x1b[0m "
      "report received \x1b[3mhostname\x1b[0m\x1b[2m=\x1b[0mweb-07";
  const std::string invalid_utf8 = "host=\xff\xfe\xc3 web-\xe9t\xe9";
  const std::string with_nul = std::string("a\0b", 3);
  write_journal(tmp, Strings{coloured, invalid_utf8, with_nul, "plain"});
  CHECK(read_once(from_head(tmp)) == Strings{coloured, invalid_utf8, with_nul, "plain"});
}

TEST_CASE("an embedded newline stays inside one message", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"error: first line\n  caused by: second line\n", "next"});
  CHECK(read_once(from_head(tmp)) == Strings{"error: first line\n  caused by: second line\n", "next"});
}

TEST_CASE("entries without MESSAGE are skipped silently", "[journal]") {
  TempDir tmp;
  write_journal(tmp, std::vector<Message>{"one", std::nullopt, "", "two"});
  Recorder sink;
  CHECK(read_once(from_head(tmp), &sink) == Strings{"one", "", "two"});  // an empty MESSAGE is a message
  CHECK(sink.errors().empty());
}

TEST_CASE("a large compressed MESSAGE is delivered whole", "[journal]") {
  // journal-remote compresses big fields (zstd), and sd-journal documents that compressed fields
  // over its data threshold (64 KiB by default) might be truncated. (systemd 252 does not cut
  // zstd fields, so this pins the outcome, not the set_data_threshold call.)
  TempDir tmp;
  std::string big;
  for (int i = 0; big.size() < 300'000; ++i) big += "field" + std::to_string(i) + "=value ";
  write_journal(tmp, Strings{big, "after"});
  const Strings got = read_once(from_head(tmp));
  REQUIRE(got.size() == 2);
  CHECK(got[0].size() == big.size());
  CHECK(got[0] == big);
  CHECK(got[1] == "after");
}

// ---- start position ------------------------------------------------------------------------

TEST_CASE("resume after a cursor delivers exactly the entries after it", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"m1", "m2", "m3"});
  write_journal(tmp, Strings{"m4", "m5"});  // a second file: the cursor is in the first
  Recorder first;
  REQUIRE(read_once(from_head(tmp), &first) == Strings{"m1", "m2", "m3", "m4", "m5"});
  const Strings cursors = first.cursors();

  for (size_t i = 0; i < cursors.size(); ++i) {
    INFO("resume after m" << i + 1);
    JournalOptions options = from_head(tmp);  // a cursor wins over from_beginning
    options.resume_cursor = cursors[i];
    const Strings all = first.messages();
    CHECK(read_once(options) == Strings(all.begin() + static_cast<std::ptrdiff_t>(i) + 1, all.end()));
  }
}

TEST_CASE("resume after the last entry delivers only entries written later", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"old 1", "old 2"});
  Recorder first;
  read_once(from_head(tmp), &first);

  Recorder sink;
  JournalOptions options;  // neither head nor tail: the cursor decides
  options.directory = tmp.journal().string();
  options.resume_cursor = first.cursors().back();
  JournalSource source(options, sink);
  REQUIRE(source.open() == "");
  source.poll_once();
  CHECK(sink.messages().empty());
  CHECK(source.cursor().empty());

  write_journal(tmp, Strings{"new 1"}, kUnit, "remote.journal");  // appended to the same file
  write_journal(tmp, Strings{"new 2"});                           // and in a new file
  source.poll_once();
  CHECK(sink.messages() == Strings{"new 1", "new 2"});
  CHECK(sink.errors().empty());
}

TEST_CASE("the tail start (default) delivers only entries added later", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"before 1", "before 2"});
  Recorder sink;
  JournalOptions options;
  options.directory = tmp.journal().string();
  JournalSource source(options, sink);
  REQUIRE(source.open() == "");
  source.poll_once();
  CHECK(sink.messages().empty());
  CHECK(sink.caught_up() == 1);

  write_journal(tmp, Strings{"after 1"}, kUnit, "remote.journal");  // appended to the open file
  source.poll_once();
  CHECK(sink.messages() == Strings{"after 1"});
  write_journal(tmp, Strings{"after 2", "after 3"});  // a new file in the directory
  source.poll_once();
  CHECK(sink.messages() == Strings{"after 1", "after 2", "after 3"});
  CHECK(sink.errors().empty());
}

TEST_CASE("the tail start of a journal with no matching entry delivers the first one added", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"other"}, "sshd.service");
  Recorder sink;
  JournalOptions options;
  options.directory = tmp.journal().string();
  options.units = {kUnit};
  JournalSource source(options, sink);
  REQUIRE(source.open() == "");
  source.poll_once();
  CHECK(sink.messages().empty());

  write_journal(tmp, Strings{"cp 1"}, kUnit, "remote.journal");
  write_journal(tmp, Strings{"cp 2"});
  source.poll_once();
  CHECK(sink.messages() == Strings{"cp 1", "cp 2"});
}

TEST_CASE("the tail start of an empty directory delivers entries from files that appear", "[journal]") {
  TempDir tmp;
  fs::create_directories(tmp.journal());
  Recorder sink;
  JournalOptions options;
  options.directory = tmp.journal().string();
  JournalSource source(options, sink);
  REQUIRE(source.open() == "");
  CHECK(sink.notices().size() == 1);  // no journal files yet
  source.poll_once();
  CHECK(sink.messages().empty());

  write_journal(tmp, Strings{"first"});
  source.poll_once();
  write_journal(tmp, Strings{"second"});
  source.poll_once();
  CHECK(sink.messages() == Strings{"first", "second"});
}

// ---- rotation ------------------------------------------------------------------------------

TEST_CASE("removing the file being read (vacuum after rotation) loses and repeats nothing", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"a1", "a2"});
  Recorder sink;
  JournalSource source(from_head(tmp), sink);
  REQUIRE(source.open() == "");
  source.poll_once();
  REQUIRE(sink.messages() == Strings{"a1", "a2"});

  write_journal(tmp, Strings{"b1", "b2"});  // remote-2.journal: the "rotated-to" file
  fs::remove(tmp.journal() / "remote.journal");
  source.poll_once();
  write_journal(tmp, Strings{"b3"}, kUnit, "remote-2.journal");
  source.poll_once();
  CHECK(sink.messages() == Strings{"a1", "a2", "b1", "b2", "b3"});
  CHECK(sink.errors().empty());
}

TEST_CASE("a renamed file (journald's archive step) is not read twice", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"a1", "a2"});
  Recorder sink;
  JournalSource source(from_head(tmp), sink);
  REQUIRE(source.open() == "");
  source.poll_once();

  fs::rename(tmp.journal() / "remote.journal", tmp.journal() / "remote@archived.journal");
  write_journal(tmp, Strings{"b1"}, kUnit, "remote.journal");  // a fresh active file
  source.poll_once();
  CHECK(sink.messages() == Strings{"a1", "a2", "b1"});
}

// ---- run() ---------------------------------------------------------------------------------

TEST_CASE("run sees appended entries within a deadline and stops promptly on request",
          "[journal][concurrency]") {
  TempDir tmp;
  write_journal(tmp, Strings{"before"});
  Recorder sink;
  JournalSource source(from_head(tmp), sink);
  REQUIRE(source.open() == "");
  std::thread runner([&] { source.run(); });

  CHECK(sink.wait_for_messages(1));
  write_journal(tmp, Strings{"appended"}, kUnit, "remote.journal");  // SD_JOURNAL_APPEND
  CHECK(sink.wait_for_messages(2));
  write_journal(tmp, Strings{"new file 1", "new file 2"});  // SD_JOURNAL_INVALIDATE
  CHECK(sink.wait_for_messages(4));
  CHECK(sink.wait_for_caught_up(3));

  const auto asked = std::chrono::steady_clock::now();
  source.request_stop();
  runner.join();
  CHECK(std::chrono::steady_clock::now() - asked < std::chrono::seconds(2));
  CHECK(sink.messages() == Strings{"before", "appended", "new file 1", "new file 2"});
  CHECK(sink.errors().empty());
}

TEST_CASE("request_stop before run makes run return at once", "[journal][concurrency]") {
  TempDir tmp;
  write_journal(tmp, Strings{"x"});
  Recorder sink;
  JournalSource source(from_head(tmp), sink);
  REQUIRE(source.open() == "");
  source.request_stop();
  source.run();  // must not block
  CHECK(sink.caught_up() == 0);
}

// ---- open() errors -------------------------------------------------------------------------

TEST_CASE("a missing directory is a clear open error", "[journal]") {
  TempDir tmp;
  Recorder sink;
  JournalOptions options;
  options.directory = (tmp.root() / "no-such-dir").string();
  JournalSource source(options, sink);
  const std::string error = source.open();
  CHECK_THAT(error, Catch::Contains("does not exist") && Catch::Contains(options.directory));
  source.poll_once();  // harmless after a failed open
  source.run();
  CHECK(sink.caught_up() == 0);
}

TEST_CASE("a file given as the journal directory is a clear open error", "[journal]") {
  TempDir tmp;
  const fs::path file = tmp.root() / "file";
  std::ofstream(file) << "x";
  Recorder sink;
  JournalOptions options;
  options.directory = file.string();
  JournalSource source(options, sink);
  CHECK_THAT(source.open(), Catch::Contains("is not a directory"));
}

TEST_CASE("an unparsable resume cursor is a clear open error", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"x"});
  Recorder sink;
  JournalOptions options = from_head(tmp);
  options.resume_cursor = "not a cursor";
  JournalSource source(options, sink);
  CHECK_THAT(source.open(), Catch::Contains("cursor") && Catch::Contains("not a cursor"));
}

TEST_CASE("an empty unit name is a clear open error", "[journal]") {
  TempDir tmp;
  write_journal(tmp, Strings{"x"});
  Recorder sink;
  JournalOptions options = from_head(tmp);
  options.units = {""};
  JournalSource source(options, sink);
  CHECK_THAT(source.open(), Catch::Contains("--journal-unit"));
}

}  // namespace
