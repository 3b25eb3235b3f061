// The candidate scan (parsers/candidate_scan.h) against a line-by-line reference, and the
// LineIngester's block path against feeding each line to the parser.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cmd/ingest.h"
#include "exporter/exposition.h"
#include "parsers/candidate_scan.h"
#include "parsers/line_parser.h"
#include "source/line_splitter.h"

namespace {

struct Found {
  std::size_t begin, end;
  std::uint64_t lines_before;
  bool operator==(const Found&) const = default;
};

// Every occurrence of every needle, each asked whether it counts where it sits.
bool holds_needle(std::string_view line) {
  for (std::string_view needle : nle::relevance_needles()) {
    for (std::size_t at = line.find(needle); at != std::string_view::npos; at = line.find(needle, at + 1)) {
      if (nle::needle_occurrence_counts(line, at, needle)) return true;
    }
  }
  return false;
}

// What makes a needle count when it ends a line: `version` must be a field name with a value.
std::string counting_suffix(std::string_view needle) {
  if (needle == "version") return "=";
  if (needle.find("118, 101, 114, 115, 105, 111, 110") == 0) return ", 61";  // journald's encoded `version=`
  if (needle.find("118,101,114,115,105,111,110") == 0) return ",61";
  return "";
}

// What the scan must report, computed one line at a time.
std::vector<Found> reference(std::string_view block, std::size_t max_line_bytes) {
  std::vector<Found> found;
  std::size_t start = 0;
  std::uint64_t skipped = 0;
  while (start < block.size()) {
    std::size_t nl = block.find('\n', start);
    const bool partial = nl == std::string_view::npos;
    if (partial) nl = block.size();
    const std::string_view line = block.substr(start, nl - start);
    if (holds_needle(line) || line.size() > max_line_bytes) {
      found.push_back({start, nl, skipped});
      skipped = 0;
    } else if (!partial) {
      ++skipped;
    }
    start = nl + 1;
  }
  return found;
}

// For each line scan_all() finds: whether the scan marked it as spelling a counting value first.
std::vector<bool> counting_marks(std::string_view block, std::size_t max_line_bytes, std::string_view kernel) {
  std::vector<bool> marks;
  for (std::size_t from = 0; from < block.size();) {
    const nle::Candidate c = nle::find_candidate_with(kernel, block, from, max_line_bytes);
    if (!c.found) break;
    marks.push_back(c.counting_value);
    from = c.line_end + 1;
  }
  return marks;
}

std::vector<Found> scan_all(std::string_view block, std::size_t max_line_bytes, std::string_view kernel = "") {
  std::vector<Found> found;
  std::size_t from = 0;
  while (from < block.size()) {
    const nle::Candidate c = nle::find_candidate_with(kernel, block, from, max_line_bytes);
    if (!c.found) break;
    found.push_back({c.line_begin, c.line_end, c.lines_before});
    from = c.line_end + 1;
  }
  return found;
}

// Random lines built from needle pieces, near misses and filler, so needles straddle 64-byte
// chunks and block ends, and long lines sit beside short ones.
std::string random_block(std::mt19937_64& rng) {
  static const std::vector<std::string> pieces = [] {
    std::vector<std::string> p = {"report receive", "eport received", "versio", "ersion", "held by fleet-level",
                                  "\"MESSAGE\":nul", "118,101", "118, 101,", "p", "c", "v", "s", "8", "0", "\r",
                                  " ", "xx", "{\"a\":1}", "\x1b[3m", "=", "\":\"", "HTTP/", "HTTP", "_",
                                  "\x1b[0m", "ompliance", "untime", "\\", ",61", ", 61", ",72,84,84,80,47", ",95", "[", "]",
                                  ",27,91,48,109"};
    for (std::string_view needle : nle::relevance_needles()) p.emplace_back(needle);
    return p;
  }();
  std::string block;
  const int lines = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < lines; ++i) {
    const int parts = std::uniform_int_distribution<int>(0, 30)(rng);
    for (int k = 0; k < parts; ++k) {
      const auto& piece = pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(rng)];
      // Mostly filler, so that needles are rare as in a real log.
      if (std::uniform_int_distribution<int>(0, 9)(rng) < 7) block.append(piece.size(), 'a');
      else block += piece;
    }
    block += '\n';
  }
  if (std::uniform_int_distribution<int>(0, 3)(rng) == 0) block += "trailing version";  // no newline
  return block;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The exposition after feeding `data` line by line (reference) or in blocks of whole lines.
std::string ingest(std::string_view data, bool blocks, std::size_t max_line_bytes) {
  nle::Registry registry;
  nle::LineIngester ingester(nle::InputFormat::auto_detect, registry);
  nle::LineSplitter splitter(max_line_bytes);
  auto on_line = [&](std::string_view line) { ingester.line(line, splitter.complete_offset()); };
  auto on_oversize = [&](std::uint64_t bytes) { ingester.oversize_line(bytes); };
  ingester.bytes(data.size());
  if (blocks) {
    const std::size_t end = data.rfind('\n') == std::string_view::npos ? 0 : data.rfind('\n') + 1;
    ingester.lines(data.substr(0, end), 0, 0, max_line_bytes);
    splitter.reset(end);
    splitter.feed(data.substr(end), on_line, on_oversize);
  } else {
    splitter.feed(data, on_line, on_oversize);
  }
  splitter.finish(on_line, on_oversize);
  ingester.end_of_input(splitter.complete_offset());
  ingester.flush();
  // OpenMetrics: the exemplars (the latest event of each series) are compared too.
  return nle::render(registry.snapshot(), {nle::ExpositionFormat::openmetrics, false});
}

// A compliance failure report as tracing's text or JSON line, its event_id written as given.
std::string compliance_report(bool json, std::string_view host, std::string_view control, std::string_view event_id) {
  if (json) {
    return "{\"timestamp\":\"2026-11-20T08:14:03.511203Z\",\"level\":\"INFO\",\"fields\":{\"message\":"
           "\"report received\",\"hostname\":\"" + std::string(host) + "\",\"event\":\"compliance-failure\","
           "\"control_id\":\"" + std::string(control) + "\",\"event_id\":\"" + std::string(event_id) +
           "\"},\"target\":\"report\"}\n";
  }
  return "2026-11-20T08:14:03.511203Z  INFO nixfleet_control_plane::report: report received hostname=" +
         std::string(host) + " event=compliance-failure control_id=" + std::string(control) +
         " event_id=" + std::string(event_id) + "\n";
}

}  // namespace

TEST_CASE("every relevance needle is covered by a scan anchor") {
  CHECK(nle::candidate_scan_covers_all_needles());
  const std::string_view kernel = nle::candidate_scan_kernel();
  CHECK((kernel == "avx2" || kernel == "sse2" || kernel == "scalar"));
}

TEST_CASE("a line holding a needle is found wherever the needle sits") {
  for (std::string_view needle : nle::relevance_needles()) {
    for (std::size_t before = 0; before < 140; before += 3) {
      const std::string suffix = counting_suffix(needle) + "y";
      std::string block = "short\nanother line\n" + std::string(before, '.') + std::string(needle) + suffix + "\nlast\n";
      const auto found = scan_all(block, 1 << 20);
      REQUIRE(found.size() == 1);
      CHECK(found[0] == Found{19, 19 + before + needle.size() + suffix.size(), 2});
    }
  }
}

TEST_CASE("a block without needles is only counted") {
  std::string block;
  for (int i = 0; i < 1000; ++i) block += "{\"level\":\"INFO\",\"fields\":{\"message\":\"target assigned\"}}\n";
  const nle::Candidate c = nle::find_candidate(block, 0, 1 << 20);
  CHECK_FALSE(c.found);
  CHECK(c.lines_before == 1000);
  CHECK(c.line_begin == block.size());
}

TEST_CASE("lines over the cap are found from the gaps between newlines") {
  const std::string block = std::string(64, 'a') + "\n" + std::string(65, 'b') + "\nshort\n" + std::string(500, 'c') + "\n";
  const auto found = scan_all(block, 64);
  REQUIRE(found.size() == 2);
  CHECK(found[0] == Found{65, 130, 1});
  CHECK(found[1] == Found{137, 637, 1});
}

TEST_CASE("every kernel finds exactly the lines a line-by-line reference finds") {
  for (std::string_view kernel : nle::candidate_scan_kernels()) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 2000; ++round) {
      const std::string block = random_block(rng);
      for (std::size_t cap : {std::size_t{1}, std::size_t{17}, std::size_t{63}, std::size_t{64}, std::size_t{100},
                              std::size_t{1} << 20}) {
        INFO("kernel " << kernel << " round " << round << " cap " << cap);
        REQUIRE(scan_all(block, cap, kernel) == reference(block, cap));
        REQUIRE(counting_marks(block, cap, kernel) == counting_marks(block, cap, "scalar"));
      }
    }
  }
}

TEST_CASE("a line is marked as spelling a counting value when that is the first needle found on it") {
  for (std::string_view needle : nle::relevance_needles()) {
    const std::string block = "{\"a\":\"" + std::string(needle) + counting_suffix(needle) + "\"}\n";
    const nle::Candidate c = nle::find_candidate(block, 0, 1 << 20);
    REQUIRE(c.found);
    const bool counting = needle == "compliance-failure" || needle == "ComplianceFailure" ||
                          needle == "runtime-gate-error" || needle == "RuntimeGateError";
    INFO(block);
    CHECK(c.counting_value == counting);
  }
  const auto marked = [](std::string_view line) { return nle::find_candidate(line, 0, 1 << 20).counting_value; };
  CHECK(marked(R"J({"fields":{"message":"report received","event":"ComplianceFailure","hostname":"h"}})J"));
  CHECK(marked(R"J({"message":"report received","event":"runtime-gate-error"})J"));
  CHECK_FALSE(marked("2026-11-20T08:14:03Z  INFO report: report received event=compliance-failure control_id=C"));
  CHECK_FALSE(marked(R"J({"fields":{"message":"starting","version":"1","event":"RuntimeGateError"}})J"));
  CHECK_FALSE(marked(R"J({"fields":{"message":"dispatch: held by fleet-level gate","gate":"ComplianceWave"}})J"));
}

TEST_CASE("a candidate is marked relevant only when its first needle makes may_be_relevant() say yes") {
  // Each needle where it counts, alone on a JSON-looking line and on a text line, and the random
  // blocks of the scan tests: a mark must never claim more than may_be_relevant() says.
  std::size_t marked = 0, marked_in_object = 0;
  const auto check_block = [&](std::string_view block) {
    for (std::size_t from = 0; from < block.size();) {
      const nle::Candidate c = nle::find_candidate(block, from, 1 << 20);
      if (!c.found) break;
      const std::string_view line = block.substr(c.line_begin, c.line_end - c.line_begin);
      INFO("line: " << line);
      if (c.relevant) REQUIRE(nle::may_be_relevant(line));
      if (c.relevant_if_json_object && nle::may_hold_byte_array(line)) REQUIRE(nle::may_be_relevant(line));
      marked += c.relevant ? 1 : 0;
      marked_in_object += c.relevant_if_json_object ? 1 : 0;
      from = c.line_end + 1;
    }
  };
  for (std::string_view needle : nle::relevance_needles()) {
    check_block("{\"a\":\"" + std::string(needle) + counting_suffix(needle) + "\",\"b\":[1]}\n");
    check_block("2026-11-20T08:14:03Z  INFO t: " + std::string(needle) + counting_suffix(needle) + "\n");
  }
  std::mt19937_64 rng(11);
  for (int round = 0; round < 2000; ++round) check_block(random_block(rng));
  CHECK(marked > 100);
  CHECK(marked_in_object > 10);
  // What the parser is spared on the lines of a busy CP.
  const auto mark = [](std::string_view line) { return nle::find_candidate(line, 0, 1 << 20).relevant; };
  CHECK(mark("2026-11-20T08:14:03Z  INFO report: report received hostname=h event=stale-target"));
  CHECK(mark(R"J({"fields":{"message":"starting control plane","version":"0.9.3"},"target":"t"})J"));
  CHECK_FALSE(mark(R"J({"fields":{"message":"report received","event":"ComplianceFailure","hostname":"h"}})J"));
}

TEST_CASE("one line at a time, a needle is found exactly when the line holds one") {
  std::mt19937_64 rng(5);
  for (int round = 0; round < 2000; ++round) {
    const std::string block = random_block(rng);
    std::size_t start = 0;
    while (start <= block.size()) {
      std::size_t nl = block.find('\n', start);
      if (nl == std::string::npos) nl = block.size();
      const std::string_view line = std::string_view(block).substr(start, nl - start);
      INFO("round " << round << " line " << line);
      REQUIRE(nle::line_holds_needle(line) == holds_needle(line));
      start = nl + 1;
    }
  }
  for (std::string_view needle : nle::relevance_needles()) {
    for (std::size_t before = 0; before < 200; ++before) {
      const std::string line = std::string(before, '.') + std::string(needle) + counting_suffix(needle);
      REQUIRE(nle::line_holds_needle(line));
      REQUIRE_FALSE(nle::line_holds_needle(line.substr(0, line.size() - 1)));
    }
  }
}

TEST_CASE("counting skipped lines adds up to every line") {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 500; ++round) {
    std::string block = random_block(rng);
    const std::size_t end = block.rfind('\n') == std::string::npos ? 0 : block.rfind('\n') + 1;
    block.resize(end);
    std::uint64_t lines = 0;
    std::size_t from = 0;
    for (;;) {
      const nle::Candidate c = nle::find_candidate(block, from, 64);
      lines += c.lines_before;
      if (!c.found) break;
      ++lines;
      from = c.line_end + 1;
    }
    CHECK(lines == static_cast<std::uint64_t>(std::count(block.begin(), block.end(), '\n')));
  }
}

TEST_CASE("ingesting blocks of lines gives the exposition of ingesting each line") {
  for (const char* name : {"golden/json.log", "golden/text.log", "golden/ansi.log", "golden/journald.log",
                           "golden/mixed.log", "golden/malformed.log", "golden/labels.log", "golden/flat.log",
                           "real/journald-ansi.json", "real/journald-text.json", "real/text.log", "real/ansi.log"}) {
    const std::string data = read_file(std::string(NLE_TESTDATA_DIR) + "/" + name);
    REQUIRE_FALSE(data.empty());
    for (std::size_t cap : {std::size_t{64}, std::size_t{200}, std::size_t{1} << 20}) {
      INFO(name << " cap " << cap);
      CHECK(ingest(data, true, cap) == ingest(data, false, cap));
    }
  }
}

TEST_CASE("events counted in batches keep input order, also around events too long to batch") {
  // Within a block, events wait in a batch with copies of their values (the parser reuses its
  // buffers: a quoted text value with an escape, any JSON line); one whose values do not fit the
  // batch's room is counted at once, so the batch must be counted before it, or an older event
  // would name the series' exemplar. Random runs of each, longer than one batch, on a few
  // series, against line-by-line ingestion.
  std::mt19937 rng(20261203);
  const auto pick = [&rng](int below) { return std::uniform_int_distribution<int>(0, below - 1)(rng); };
  for (int round = 0; round < 200; ++round) {
    std::string data;
    const int reports = 1 + pick(80);
    for (int i = 0; i < reports; ++i) {
      const std::string host = "web-" + std::to_string(pick(4));
      const std::string control = "CIS-" + std::to_string(pick(3));
      const std::string id = "id" + std::to_string(i);
      switch (pick(5)) {
        case 0: data += compliance_report(false, host, control, "\"id\\\"" + std::to_string(i) + "\""); break;
        case 1: data += compliance_report(true, host, control, id); break;
        case 2: data += compliance_report(pick(2) == 0, host, control, id + std::string(300, 'x')); break;
        default: data += compliance_report(false, host, control, id);
      }
      if (pick(3) == 0) data += "filler line without needles\n";
    }
    data += compliance_report(false, "web-0", "CIS-0", "last");  // so some series has an exemplar
    INFO("round " << round);
    const std::string blocks = ingest(data, true, 1 << 20);
    REQUIRE(blocks == ingest(data, false, 1 << 20));
    REQUIRE(blocks.find("# {event_id=\"last\"}") != std::string::npos);  // exemplars were compared
  }
}
