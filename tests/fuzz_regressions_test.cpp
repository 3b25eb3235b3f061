// The fuzz targets' properties (tests/fuzz/checks.h) in every build: the inputs the fuzzers found
// (testdata/fuzz-regressions/<target>/, one case per finding, named after what it pins), the
// bundled logs, and the strict exposition reader's own rules.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "exporter/exposition.h"
#include "tests/fuzz/checks.h"
#include "tests/fuzz/strict_exposition.h"

namespace {

namespace fs = std::filesystem;
const fs::path kRegressions = fs::path(NLE_TESTDATA_DIR) / "fuzz-regressions";

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void check(std::string_view target_name, std::string_view input) {
  const nle::fuzz::Target* target = nle::fuzz::find_target(target_name);
  REQUIRE(target != nullptr);
  try {
    target->check(input);
  } catch (const nle::fuzz::CheckFailure& failure) {
    FAIL(failure.what());
  }
}

}  // namespace

TEST_CASE("every kept fuzz input still holds its target's properties") {
  REQUIRE(fs::is_directory(kRegressions));
  for (const nle::fuzz::Target& target : nle::fuzz::targets()) {
    const fs::path dir = kRegressions / target.name;
    if (!fs::is_directory(dir)) continue;
    for (const auto& entry : fs::directory_iterator(dir)) {
      INFO(entry.path());
      check(target.name, read_file(entry.path()));
    }
  }
  // A directory named after no target would never be replayed.
  for (const auto& entry : fs::directory_iterator(kRegressions)) {
    INFO(entry.path());
    CHECK((!entry.is_directory() || nle::fuzz::find_target(entry.path().filename().string()) != nullptr));
  }
}

TEST_CASE("the exposition property holds on its bundled seeds, exemplars among them") {
  int seeds = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(NLE_TESTDATA_DIR) / "fuzz-seeds" / "exposition")) {
    INFO(entry.path());
    check("exposition", read_file(entry.path()));
    ++seeds;
  }
  CHECK(seeds >= 3);
}

TEST_CASE("the line parser properties hold on every bundled log, in every format") {
  int logs = 0;
  for (const char* dir : {"sample", "golden", "real"}) {
    for (const auto& entry : fs::recursive_directory_iterator(fs::path(NLE_TESTDATA_DIR) / dir)) {
      if (!entry.is_regular_file() || entry.path().extension() != ".log") continue;
      INFO(entry.path());
      const std::string log = read_file(entry.path());
      for (std::string_view target : {"line_parser_auto", "line_parser_json", "line_parser_text", "line_parser_journald"}) {
        check(target, log);
      }
      ++logs;
    }
  }
  CHECK(logs >= 5);
}

TEST_CASE("the candidate scan agrees with the reference around 64-byte blocks, at every alignment") {
  std::string block;
  for (std::size_t length = 0; length <= 200; ++length) {
    // A needle that ends at the block's last byte, after filler and a newline.
    std::string input = {static_cast<char>(40), static_cast<char>(length % 64)};
    block.assign(length, 'a');
    if (length > 20) block.replace(length - 20, 1, "\n");
    if (length >= 7) block.replace(length - 7, 7, "version");
    check("candidate_scan", input + block);
  }
}

TEST_CASE("the strict exposition reader refuses what Prometheus would refuse") {
  std::string error;
  using nle::ExpositionFormat;
  using nle::fuzz::parse_exposition_strictly;
  CHECK(parse_exposition_strictly("# TYPE a gauge\na 1\n", ExpositionFormat::prometheus, error).has_value());
  CHECK_FALSE(parse_exposition_strictly("a 1\n", ExpositionFormat::prometheus, error));  // no TYPE
  CHECK_FALSE(parse_exposition_strictly("# TYPE a gauge\na{l=\"x\\t\"} 1\n", ExpositionFormat::prometheus, error));
  CHECK_FALSE(parse_exposition_strictly("# TYPE a gauge\na{l=\"x\"} 1\na{l=\"x\"} 2\n", ExpositionFormat::prometheus,
                                        error));
  CHECK_FALSE(parse_exposition_strictly("# TYPE a gauge\na{l=\"\xFF\"} 1\n", ExpositionFormat::prometheus, error));
  CHECK_FALSE(parse_exposition_strictly("# TYPE a gauge\na 1\n", ExpositionFormat::openmetrics, error));  // no EOF
  CHECK_FALSE(parse_exposition_strictly("# TYPE a counter\na_total 1\n# EOF\nx\n", ExpositionFormat::openmetrics,
                                        error));
  CHECK(parse_exposition_strictly("# TYPE a counter\na_total 1\na_created 2\n# EOF\n", ExpositionFormat::openmetrics,
                                  error)
            .has_value());
  CHECK_FALSE(parse_exposition_strictly("# HELP a_total x\\\"y\n# TYPE a_total counter\n", ExpositionFormat::prometheus,
                                        error));
}

TEST_CASE("the strict exposition reader takes exemplars only where OpenMetrics allows them") {
  std::string error;
  using nle::ExpositionFormat;
  using nle::fuzz::parse_exposition_strictly;
  const auto page = [](std::string_view sample) { return "# TYPE a counter\n" + std::string(sample) + "\n# EOF\n"; };
  const auto parsed = parse_exposition_strictly(page("a_total 1 # {id=\"x\"} 1 17.5"), ExpositionFormat::openmetrics, error);
  REQUIRE(parsed.has_value());
  CHECK(parsed->at(0).exemplar == nle::fuzz::ParsedExemplar{{{"id", "x"}}, 1, "17.5"});
  CHECK(parse_exposition_strictly(page("a_total 1 # {id=\"x\"} 1"), ExpositionFormat::openmetrics, error));
  CHECK(parse_exposition_strictly(page("a_total 1 # {id=\"" + std::string(126, 'x') + "\"} 1"),
                                  ExpositionFormat::openmetrics, error));
  CHECK_FALSE(parse_exposition_strictly(page("a_total 1 # {id=\"" + std::string(127, 'x') + "\"} 1"),
                                        ExpositionFormat::openmetrics, error));  // 129 code points
  CHECK_FALSE(parse_exposition_strictly(page("a_created 1 # {id=\"x\"} 1"), ExpositionFormat::openmetrics, error));
  CHECK_FALSE(parse_exposition_strictly(page("a_total 1 # {id=\"x\"}"), ExpositionFormat::openmetrics, error));
  CHECK_FALSE(parse_exposition_strictly(page("a_total 1 # {id=\"x\"} 1 soon"), ExpositionFormat::openmetrics, error));
  CHECK_FALSE(parse_exposition_strictly("# TYPE a gauge\na 1 # {id=\"x\"} 1\n# EOF\n", ExpositionFormat::openmetrics,
                                        error));
  CHECK_FALSE(parse_exposition_strictly("# TYPE a_total counter\na_total 1 # {id=\"x\"} 1\n", ExpositionFormat::prometheus,
                                        error));
}
