// The exporter module: registry rules, exposition formats, escaping, UTF-8 repair and the
// process collector's parsing. No files or sockets, except promtool's run over a rendered page.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <locale>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/exposition.h"
#include "exporter/health_metrics.h"
#include "exporter/process_metrics.h"
#include "exporter/registry.h"
#include "exporter/step_sampler.h"
#include "parsers/event.h"

// Counts every heap allocation in this binary, so a test can pin that a path allocates nothing.
// Every unaligned form is replaced: AddressSanitizer supplies each one separately, and a block
// from its nothrow new freed by ours would be reported as a mismatch. Not inlined: inlined into
// a caller, GCC 12 takes the malloc/free pairing for a new/free mismatch.
namespace {
std::atomic<std::uint64_t> g_allocations{0};

void* counted_malloc(std::size_t size) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size == 0 ? 1 : size);
}
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t size) {
  if (void* block = counted_malloc(size)) return block;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t size) {
  if (void* block = counted_malloc(size)) return block;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_malloc(size); }
[[gnu::noinline]] void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return counted_malloc(size);
}
[[gnu::noinline]] void operator delete(void* block) noexcept { std::free(block); }
[[gnu::noinline]] void operator delete[](void* block) noexcept { std::free(block); }
[[gnu::noinline]] void operator delete(void* block, std::size_t) noexcept { std::free(block); }
[[gnu::noinline]] void operator delete[](void* block, std::size_t) noexcept { std::free(block); }
[[gnu::noinline]] void operator delete(void* block, const std::nothrow_t&) noexcept { std::free(block); }
[[gnu::noinline]] void operator delete[](void* block, const std::nothrow_t&) noexcept { std::free(block); }

namespace {

using nle::Event;
using nle::EventKind;
using nle::ExpositionFormat;
using nle::Family;
using nle::MetricType;
using nle::Registry;
using nle::RegistryOptions;
using nle::RenderOptions;
using nle::Series;
using nle::Snapshot;

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

Event compliance(std::string_view control_id, std::string_view host) {
  Event event;
  event.kind = EventKind::compliance_failure;
  event.control_id = control_id;
  event.host = host;
  return event;
}

Event gate_block(std::string_view gate) {
  Event event;
  event.kind = EventKind::gate_block;
  event.gate = gate;
  return event;
}

Event runtime_gate_error() {
  Event event;
  event.kind = EventKind::runtime_gate_error;
  return event;
}

const Family* find_family(const Snapshot& snapshot, std::string_view name) {
  for (const Family& family : snapshot) {
    if (family.name == name) return &family;
  }
  return nullptr;
}

const Series* find_series(const Family& family, const std::vector<std::string>& label_values) {
  for (const Series& series : family.series) {
    if (series.label_values == label_values) return &series;
  }
  return nullptr;
}

// The value of one series, or -1 when the family or series does not exist.
double value_of(const Snapshot& snapshot, std::string_view family_name, const std::vector<std::string>& labels = {}) {
  const Family* family = find_family(snapshot, family_name);
  if (family == nullptr) return -1;
  const Series* series = find_series(*family, labels);
  return series == nullptr ? -1 : series->value;
}

std::string render_prometheus(const Snapshot& snapshot) { return nle::render(snapshot, RenderOptions{}); }

std::string render_openmetrics(const Snapshot& snapshot, bool include_created) {
  return nle::render(snapshot, RenderOptions{ExpositionFormat::openmetrics, include_created});
}

Family one_counter(std::string name, std::vector<std::string> label_names, std::vector<std::string> label_values,
                   double value, double created = 0) {
  return Family{std::move(name), "Help.", MetricType::counter, std::move(label_names),
                {Series{std::move(label_values), value, created}}};
}

Family one_gauge(std::string name, double value) {
  return Family{std::move(name), "Help.", MetricType::gauge, {}, {Series{{}, value, 0}}};
}

// A fixed clock the tests step by hand.
struct ManualClock {
  double now = 1732480000.0;
};

RegistryOptions options_with_clock(ManualClock& clock) {
  RegistryOptions options;
  options.clock = [&clock] { return clock.now; };
  return options;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Escaping

TEST_CASE("label values escape backslash, quote and newline") {
  CHECK(nle::escape_label_value(R"(a\b)") == R"(a\\b)");
  CHECK(nle::escape_label_value(R"(say "hi")") == R"(say \"hi\")");
  CHECK(nle::escape_label_value("two\nlines") == R"(two\nlines)");
  CHECK(nle::escape_label_value("tab\tand\rcarriage return stay") == "tab\tand\rcarriage return stay");
  CHECK(nle::escape_label_value("") == "");
}

TEST_CASE("prometheus help escapes backslash and newline and leaves quotes alone") {
  CHECK(nle::escape_help("a \"quoted\" \\ path\nnext", ExpositionFormat::prometheus) ==
        "a \"quoted\" \\\\ path\\nnext");
}

TEST_CASE("openmetrics help also escapes the double quote") {
  CHECK(nle::escape_help("a \"quoted\" \\ path\nnext", ExpositionFormat::openmetrics) ==
        "a \\\"quoted\\\" \\\\ path\\nnext");
}

TEST_CASE("escaping repairs invalid UTF-8 so its output is always valid") {
  CHECK(nle::escape_label_value("web\xFF\"07") == "web\xEF\xBF\xBD\\\"07");
  CHECK(nle::escape_help("bad \xC0 byte", ExpositionFormat::prometheus) == "bad \xEF\xBF\xBD byte");
}

// ---------------------------------------------------------------------------------------------
// UTF-8

TEST_CASE("valid UTF-8 passes through sanitize unchanged") {
  const std::vector<std::string> valid = {
      "",
      "plain ascii host-01",
      "m\xC3\xBCnchen",                  // U+00FC
      "\xE2\x82\xAC",                    // U+20AC
      "\xED\x9F\xBF",                    // U+D7FF, just below the surrogates
      "\xEE\x80\x80",                    // U+E000, just above them
      "\xF0\x9F\x98\x80",                // U+1F600
      "\xF4\x8F\xBF\xBF",                // U+10FFFF, the last code point
      "\xEF\xBF\xBD",                    // U+FFFD itself
      "0123456789abcdef\xC3\xA9xyz0123"  // past the 8-byte ASCII fast path
  };
  for (const std::string& text : valid) {
    INFO(text);
    CHECK(nle::is_valid_utf8(text));
    CHECK(nle::sanitize_utf8(text) == text);
  }
}

TEST_CASE("each maximal subpart of invalid UTF-8 becomes one U+FFFD") {
  const std::string r(kReplacement);
  struct Case {
    std::string input;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"\x80", r},                             // lone continuation byte
      {"\xC0\x80", r + r},                     // overlong NUL: C0 never starts a sequence
      {"\xC1\xBF", r + r},                     // overlong
      {"\xE0\x80\x80", r + r + r},             // overlong 3-byte: E0 needs A0..BF next
      {"\xE0\x9F\xBF", r + r + r},             // overlong 3-byte, last one
      {"\xF0\x80\x80\x80", r + r + r + r},     // overlong 4-byte
      {"\xED\xA0\x80", r + r + r},             // surrogate U+D800
      {"\xED\xBF\xBF", r + r + r},             // surrogate U+DFFF
      {"\xF4\x90\x80\x80", r + r + r + r},     // U+110000, above the last code point
      {"\xF5\x80\x80\x80", r + r + r + r},     // F5 never starts a sequence
      {"\xFF", r},                             //
      {"abc\xE2\x82", "abc" + r},              // truncated at the end: one U+FFFD for both bytes
      {"\xE2\x82x", r + "x"},                  // truncated before ASCII
      {"\xF0\x9F\x98", r},                     // 3 of 4 bytes
      {"\xC3\xC3\xA9", r + "\xC3\xA9"},        // a lead cut short by another lead
      // The example of Unicode 15 section 3.9, table 3-8 (and WHATWG's decoder).
      {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", "a" + r + r + r + "b" + r + "c" + r + r + "d"},
  };
  for (const Case& c : cases) {
    INFO(nle::escape_label_value(c.expected));
    CHECK_FALSE(nle::is_valid_utf8(c.input));
    CHECK(nle::sanitize_utf8(c.input) == c.expected);
  }
}

TEST_CASE("is_valid_utf8 agrees with sanitize on random bytes") {
  std::mt19937 random(20261120);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> length(0, 24);
  for (int round = 0; round < 20000; ++round) {
    std::string bytes(static_cast<std::size_t>(length(random)), '\0');
    // Bias towards the bytes that make interesting sequences.
    for (char& b : bytes) b = static_cast<char>(round % 2 == 0 ? byte(random) : 0x80 + byte(random) % 0x78);
    const std::string sanitized = nle::sanitize_utf8(bytes);
    INFO(nle::escape_label_value(sanitized));
    REQUIRE(nle::is_valid_utf8(sanitized));
    REQUIRE(nle::is_valid_utf8(bytes) == (sanitized == bytes));
    REQUIRE(nle::sanitize_utf8(sanitized) == sanitized);
  }
}

// ---------------------------------------------------------------------------------------------
// Number formatting and layout

TEST_CASE("integers render without a decimal point") {
  const Snapshot snapshot = {one_gauge("a", 0), one_gauge("b", 3), one_gauge("c", 1000000),
                             one_gauge("d", -2), one_gauge("e", 9007199254740992.0), one_gauge("f", -0.0)};
  CHECK(render_prometheus(snapshot) ==
        "# HELP a Help.\n# TYPE a gauge\na 0\n"
        "# HELP b Help.\n# TYPE b gauge\nb 3\n"
        "# HELP c Help.\n# TYPE c gauge\nc 1000000\n"
        "# HELP d Help.\n# TYPE d gauge\nd -2\n"
        "# HELP e Help.\n# TYPE e gauge\ne 9007199254740992\n"
        "# HELP f Help.\n# TYPE f gauge\nf 0\n");
}

TEST_CASE("non-integers render as the shortest decimal that reads back the same") {
  const Snapshot snapshot = {one_gauge("a", 0.1), one_gauge("b", 1732480000.123), one_gauge("c", 2.5e-7),
                             one_gauge("d", std::nan("")), one_gauge("e", HUGE_VAL), one_gauge("f", -HUGE_VAL)};
  const std::string text = render_prometheus(snapshot);
  CHECK(text.find("\na 0.1\n") != std::string::npos);
  CHECK(text.find("\nb 1732480000.123\n") != std::string::npos);
  CHECK(text.find("\nc 2.5e-07\n") != std::string::npos);
  CHECK(text.find("\nd NaN\n") != std::string::npos);
  CHECK(text.find("\ne +Inf\n") != std::string::npos);
  CHECK(text.find("\nf -Inf\n") != std::string::npos);
}

TEST_CASE("unlabelled series print no braces") {
  const std::string text = render_prometheus({one_counter("plain", {}, {}, 4)});
  CHECK(text == "# HELP plain_total Help.\n# TYPE plain_total counter\nplain_total 4\n");
}

TEST_CASE("labels print in the family's order with escaped values") {
  const std::string text =
      render_prometheus({one_counter("x", {"control_id", "host"}, {"CIS-1", "we\"b\\0\n7"}, 1)});
  CHECK(text == "# HELP x_total Help.\n# TYPE x_total counter\n"
                "x_total{control_id=\"CIS-1\",host=\"we\\\"b\\\\0\\n7\"} 1\n");
}

TEST_CASE("prometheus text names counter families with _total in HELP and TYPE") {
  const std::string text = render_prometheus({one_counter("nixfleet_gate_block", {"gate"}, {"host-edge"}, 2)});
  CHECK(text ==
        "# HELP nixfleet_gate_block_total Help.\n"
        "# TYPE nixfleet_gate_block_total counter\n"
        "nixfleet_gate_block_total{gate=\"host-edge\"} 2\n");
}

TEST_CASE("openmetrics counters are named without _total in TYPE") {
  const Snapshot snapshot = {one_counter("nixfleet_gate_block", {"gate"}, {"host-edge"}, 2, 1732480000.5),
                             one_gauge("nixfleet_log_exporter_files_watched", 1)};
  CHECK(render_openmetrics(snapshot, false) ==
        "# HELP nixfleet_gate_block Help.\n"
        "# TYPE nixfleet_gate_block counter\n"
        "nixfleet_gate_block_total{gate=\"host-edge\"} 2\n"
        "# HELP nixfleet_log_exporter_files_watched Help.\n"
        "# TYPE nixfleet_log_exporter_files_watched gauge\n"
        "nixfleet_log_exporter_files_watched 1\n"
        "# EOF\n");
}

TEST_CASE("openmetrics _created follows each counter sample when asked, never a gauge's") {
  const Snapshot snapshot = {
      Family{"c", "Help.", MetricType::counter, {"k"},
             {Series{{"a"}, 1, 1732480000.123}, Series{{"b"}, 2, 1732480001}}},
      one_gauge("g", 5)};
  CHECK(render_openmetrics(snapshot, true) ==
        "# HELP c Help.\n# TYPE c counter\n"
        "c_total{k=\"a\"} 1\nc_created{k=\"a\"} 1732480000.123\n"
        "c_total{k=\"b\"} 2\nc_created{k=\"b\"} 1732480001\n"
        "# HELP g Help.\n# TYPE g gauge\ng 5\n"
        "# EOF\n");
  // The text format has no _created, whatever the option says.
  CHECK(nle::render(snapshot, RenderOptions{ExpositionFormat::prometheus, true}).find("_created") ==
        std::string::npos);
}

TEST_CASE("an empty snapshot renders as nothing, or only # EOF in openmetrics") {
  CHECK(render_prometheus({}).empty());
  CHECK(render_openmetrics({}, true) == "# EOF\n");
}

TEST_CASE("a family without help prints no HELP line rather than a trailing space") {
  Family family = one_gauge("g", 1);
  family.help.clear();
  CHECK(render_prometheus({family}) == "# TYPE g gauge\ng 1\n");
}

TEST_CASE("render is the same under a German locale") {
  ManualClock clock;
  clock.now = 1732480000.125;
  Registry registry(options_with_clock(clock));
  for (int i = 0; i < 1234567; i += 1000) registry.record(runtime_gate_error());
  registry.set_self(nle::SelfGauge::files_watched, 2.5);
  const Snapshot snapshot = registry.snapshot();
  const std::string classic_text = render_prometheus(snapshot);
  const std::string classic_openmetrics = render_openmetrics(snapshot, true);

  // A C++ global locale with a comma decimal point and digit grouping is always available; a
  // German C locale only where it is installed, so that part is best effort.
  struct CommaDecimal : std::numpunct<char> {
    char do_decimal_point() const override { return ','; }
    char do_thousands_sep() const override { return '.'; }
    std::string do_grouping() const override { return "\3"; }
  };
  const std::string previous_c_locale = std::setlocale(LC_ALL, nullptr);
  bool german_c_locale = false;
  for (const char* name : {"de_DE.UTF-8", "de_DE.utf8", "de_DE"}) {
    if (std::setlocale(LC_ALL, name) != nullptr) {
      german_c_locale = true;
      break;
    }
  }
  const std::locale previous_cpp_locale =
      std::locale::global(std::locale(std::locale::classic(), new CommaDecimal));
  const std::string localized_text = render_prometheus(snapshot);
  const std::string localized_openmetrics = render_openmetrics(snapshot, true);
  std::locale::global(previous_cpp_locale);
  std::setlocale(LC_ALL, previous_c_locale.c_str());

  if (!german_c_locale) WARN("no German C locale installed: checked the C++ global locale only");
  CHECK(localized_text == classic_text);
  CHECK(localized_openmetrics == classic_openmetrics);
  CHECK(classic_text.find("nixfleet_runtime_gate_error_events_total 1235\n") != std::string::npos);
  CHECK(classic_text.find("nixfleet_log_exporter_files_watched 2.5\n") != std::string::npos);
  CHECK(classic_openmetrics.find("_created 1732480000.125\n") != std::string::npos);
}

TEST_CASE("rendered output has no trailing spaces, ends in a newline and is valid UTF-8") {
  Registry registry;
  registry.record(compliance("CIS \xFF", "host with spaces \"and\" \\ \n"));
  registry.record_build_info({"1.2.3 ", ""}, 1);
  for (const bool openmetrics : {false, true}) {
    const std::string text = openmetrics ? render_openmetrics(registry.snapshot(), true)
                                         : render_prometheus(registry.snapshot());
    INFO(text);
    CHECK(nle::is_valid_utf8(text));
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    CHECK(text.find(" \n") == std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// Registry

TEST_CASE("six known gates, quarantine among them, exist at zero from the start") {
  const Snapshot snapshot = Registry().snapshot();
  const Family* gates = find_family(snapshot, "nixfleet_gate_block");
  REQUIRE(gates != nullptr);
  CHECK(gates->type == MetricType::counter);
  CHECK(gates->label_names == std::vector<std::string>{"gate"});
  REQUIRE(gates->series.size() == 6);
  // Sorted by value, bytewise.
  const std::vector<std::string> expected = {"channel-edges", "compliance-wave", "disruption-budget", "host-edge",
                                             "quarantine",    "wave-promotion"};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(gates->series[i].label_values == std::vector<std::string>{expected[i]});
    CHECK(gates->series[i].value == 0);
  }
}

TEST_CASE("the runtime gate error counter exists at zero from the start") {
  const Snapshot snapshot = Registry().snapshot();
  CHECK(value_of(snapshot, "nixfleet_runtime_gate_error_events") == 0);
  const Family* compliance_family = find_family(snapshot, "nixfleet_compliance_failure_events");
  REQUIRE(compliance_family != nullptr);
  CHECK(compliance_family->series.empty());
  CHECK(compliance_family->label_names == std::vector<std::string>{"control_id", "host"});
}

TEST_CASE("compliance failures count per control and host") {
  Registry registry;
  registry.record(compliance("CIS-5.2.1", "web-07"));
  registry.record(compliance("CIS-5.2.1", "web-07"));
  registry.record(compliance("CIS-5.2.1", "web-08"));
  registry.record(compliance("CIS-1.1", "web-07"));
  const Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"}) == 2);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-08"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-1.1", "web-07"}) == 1);
  CHECK(find_family(snapshot, "nixfleet_compliance_failure_events")->series.size() == 3);
}

TEST_CASE("an empty control or host counts as unknown") {
  Registry registry;
  registry.record(compliance("", ""));
  registry.record(gate_block(""));
  const Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"unknown", "unknown"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_gate_block", {"unknown"}) == 1);
}

TEST_CASE("an unknown gate is counted under its own name") {
  Registry registry;
  registry.record(gate_block("quorum-wait"));
  registry.record(gate_block("host-edge"));
  const Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_gate_block", {"quorum-wait"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_gate_block", {"host-edge"}) == 1);
  CHECK(find_family(snapshot, "nixfleet_gate_block")->series.size() == 7);
}

TEST_CASE("an invalid UTF-8 host becomes U+FFFD and shares one series") {
  Registry registry;
  registry.record(compliance("CIS-1", "web\xFF"));
  registry.record(compliance("CIS-1", "web\xFE"));
  registry.record(compliance("CIS-1", "web\xC0"));
  registry.record(compliance("CIS-1", "web\xEF\xBF\xBD"));  // an honest U+FFFD renders the same
  const Snapshot snapshot = registry.snapshot();
  const Family* family = find_family(snapshot, "nixfleet_compliance_failure_events");
  REQUIRE(family->series.size() == 1);
  CHECK(family->series[0].label_values == std::vector<std::string>{"CIS-1", "web\xEF\xBF\xBD"});
  CHECK(family->series[0].value == 4);
}

TEST_CASE("snapshot order stays sorted while series are added between snapshots") {
  RegistryOptions options;
  options.max_series_per_family = 100000;
  Registry registry(options);
  // Values that sort differently as bytes than as length-prefixed keys, a prefix of another,
  // bytes above 0x7F (after ASCII, as std::string compares), and many plain ones in random order.
  std::vector<std::pair<std::string, std::string>> labels = {
      {"a", "z"}, {"ab", "a"}, {"a", "y"}, {"a b", "a"}, {"\xC3\xA9", "a"}, {"z", "\xC3\xA9"}, {"Z", "a"}, {"a", "yy"},
  };
  for (int i = 0; i < 3000; ++i) {
    labels.emplace_back("CIS-" + std::to_string(i % 97), "web-" + std::to_string(i * 7919 % 1000));
  }
  std::mt19937 rng(42);
  std::shuffle(labels.begin(), labels.end(), rng);

  std::map<std::vector<std::string>, double> want;
  const auto check = [&] {
    const Snapshot snapshot = registry.snapshot();
    const Family* family = find_family(snapshot, "nixfleet_compliance_failure_events");
    REQUIRE(family != nullptr);
    std::vector<std::pair<std::vector<std::string>, double>> got;
    for (const Series& series : family->series) got.emplace_back(series.label_values, series.value);
    // std::map iterates in the order std::vector<std::string> compares, the order wanted.
    CHECK(got == std::vector<std::pair<std::vector<std::string>, double>>(want.begin(), want.end()));
    std::vector<std::vector<std::string>> exported;
    for (const nle::CounterState& state : registry.export_counters()) {
      if (state.family == "nixfleet_compliance_failure_events") exported.push_back(state.label_values);
    }
    CHECK(std::is_sorted(exported.begin(), exported.end()));
    CHECK(exported.size() == want.size());
  };
  std::size_t next_check = 1;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const auto& [control, host] = labels[i];
    registry.record(compliance(control, host));
    want[{control, host}] += 1;
    // Some series are counted again, so old series keep their place as new ones arrive.
    if (i % 5 == 0) {
      const auto& [old_control, old_host] = labels[i / 2];
      registry.record(compliance(old_control, old_host));
      want[{old_control, old_host}] += 1;
    }
    if (i + 1 == next_check) {  // snapshots at growing gaps: 1, 2, 4, ... and a few between
      check();
      next_check = next_check * 2 + (i % 3);
    }
  }
  check();

  // A merged registry's new series are sorted into place too.
  Registry other(options);
  other.record(compliance("AAA", "first"));
  other.record(compliance("zzz", "last"));
  registry.merge(other);
  want[{"AAA", "first"}] += 1;
  want[{"zzz", "last"}] += 1;
  check();
}

TEST_CASE("label sets that concatenate alike stay separate series") {
  Registry registry;
  registry.record(compliance("a", "bc"));
  registry.record(compliance("ab", "c"));
  registry.record(compliance("", "abc"));  // "" reads as unknown, still distinct
  const Snapshot snapshot = registry.snapshot();
  CHECK(find_family(snapshot, "nixfleet_compliance_failure_events")->series.size() == 3);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"a", "bc"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"ab", "c"}) == 1);
}

TEST_CASE("thousands of series with long shared prefixes are each found again as the family grows, up to the cap") {
  // Keys that differ only in their last bytes, counted again while the index grows (each
  // recount reaches back to an older series), then all again in the reverse order; a lookup that
  // lost or confused a series shows up as a wrong value or an extra series.
  RegistryOptions options;
  options.max_series_per_family = 3000;
  Registry registry(options);
  const std::string control_prefix(40, 'c');
  const std::string host_prefix(60, 'h');
  const auto label_set = [&](int i) {
    return std::vector<std::string>{control_prefix + std::to_string(i % 7), host_prefix + std::to_string(i)};
  };
  const auto count = [&](int i) {
    const std::vector<std::string> labels = label_set(i);
    registry.record(compliance(labels[0], labels[1]));
  };
  std::map<std::vector<std::string>, double> want;
  constexpr int kLabelSets = 3100;  // the last 100 beyond the cap
  for (int i = 0; i < kLabelSets; ++i) {
    count(i);
    if (i < 3000) want[label_set(i)] += 1;
    count(i / 2);
    want[label_set(i / 2)] += 1;
  }
  for (int i = kLabelSets - 1; i >= 0; --i) {
    count(i);
    if (i < 3000) want[label_set(i)] += 1;
  }
  // Another family grows past a thousand series while the presets among its first ones, and
  // the unlabelled series reached by cached pointers, still count where they were.
  for (int i = 0; i < 2000; ++i) registry.record(gate_block(host_prefix + std::to_string(i)));
  registry.record(gate_block("quarantine"));
  registry.record(runtime_gate_error());

  const auto check = [&](const Snapshot& snapshot) {
    const Family* family = find_family(snapshot, "nixfleet_compliance_failure_events");
    REQUIRE(family != nullptr);
    std::map<std::vector<std::string>, double> got;
    for (const Series& series : family->series) got[series.label_values] += series.value;
    CHECK(family->series.size() == 3000);
    CHECK(got == want);
    CHECK(value_of(snapshot, "nixfleet_log_exporter_series_dropped", {"nixfleet_compliance_failure_events_total"}) ==
          200);
    CHECK(find_family(snapshot, "nixfleet_gate_block")->series.size() == 2006);
    CHECK(value_of(snapshot, "nixfleet_gate_block", {"quarantine"}) == 1);
    CHECK(value_of(snapshot, "nixfleet_gate_block", {host_prefix + "1999"}) == 1);
    CHECK(value_of(snapshot, "nixfleet_runtime_gate_error_events") == 1);
  };
  check(registry.snapshot());

  // The same series found again by merge and by restore, in a fresh index of their own.
  Registry merged(options);
  merged.merge(registry);
  check(merged.snapshot());
  Registry restored(options);
  CHECK(restored.restore(registry.export_counters(), std::nullopt) == 0);
  check(restored.snapshot());
}

TEST_CASE("series beyond the cap are counted as dropped, not lost") {
  RegistryOptions options;
  options.max_series_per_family = 2;
  Registry registry(options);
  registry.record(compliance("C1", "h1"));
  registry.record(compliance("C2", "h1"));
  registry.record(compliance("C3", "h1"));  // a third label set: refused
  registry.record(compliance("C3", "h1"));
  registry.record(compliance("C1", "h1"));  // an existing one still counts
  registry.record(gate_block("new-gate"));  // the six known gates already exceed a cap of 2
  const Snapshot snapshot = registry.snapshot();
  CHECK(find_family(snapshot, "nixfleet_compliance_failure_events")->series.size() == 2);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"C1", "h1"}) == 2);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_series_dropped", {"nixfleet_compliance_failure_events_total"}) ==
        2);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_series_dropped", {"nixfleet_gate_block_total"}) == 1);
  CHECK(find_family(snapshot, "nixfleet_gate_block")->series.size() == 6);
  // Every recognised event is still counted by kind.
  CHECK(value_of(snapshot, "nixfleet_log_exporter_events", {"compliance_failure"}) == 5);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_events", {"gate_block"}) == 1);
}

TEST_CASE("a label value over max_label_bytes counts under a truncated, marked value") {
  RegistryOptions options;
  options.max_label_bytes = 100;
  Registry registry(options);
  const std::string long_host(1 << 20, 'h');
  registry.record(compliance("CIS-1", long_host));
  registry.record(compliance("CIS-1", long_host));
  registry.record(compliance("CIS-1", std::string(100, 'h')));  // exactly at the cap: kept whole
  const Snapshot snapshot = registry.snapshot();
  const Family* family = find_family(snapshot, "nixfleet_compliance_failure_events");
  REQUIRE(family->series.size() == 2);
  const std::string truncated = nle::truncate_label_value(long_host, 100);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-1", truncated}) == 2);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-1", std::string(100, 'h')}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_label_values_truncated", {"host"}) == 2);
  CHECK(find_family(snapshot, "nixfleet_log_exporter_label_values_truncated")->series.size() == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_events", {"compliance_failure"}) == 3);
}

TEST_CASE("a truncated label value is a marked, valid UTF-8 prefix within the cap") {
  const std::string value = std::string(60, 'a') + "\xC3\xA9\xE2\x82\xAC" + std::string(5000, 'b');
  for (std::size_t cap = 64; cap < 80; ++cap) {
    const std::string truncated = nle::truncate_label_value(value, cap);
    INFO("cap " << cap << ": " << truncated);
    CHECK(truncated.size() <= cap);
    CHECK(nle::is_valid_utf8(truncated));
    CHECK(truncated.find("\xE2\x80\xA6[truncated:") != std::string::npos);
    CHECK(truncated.back() == ']');
  }
  CHECK(nle::truncate_label_value(value, 64).starts_with("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
  // Invalid bytes count as the U+FFFD they become.
  CHECK(nle::is_valid_utf8(nle::truncate_label_value(std::string(300, '\xFF'), 64)));
  // Below the minimum the minimum applies.
  CHECK(nle::truncate_label_value(value, 1).size() <= nle::kMinMaxLabelBytes);
}

TEST_CASE("distinct long label values stay distinct series, under the series cap") {
  RegistryOptions options;
  options.max_label_bytes = 64;
  options.max_series_per_family = 3;
  Registry registry(options);
  const std::string prefix(200, 'x');
  for (int i = 0; i < 5; ++i) registry.record(compliance("CIS-1", prefix + std::to_string(i)));
  const Snapshot snapshot = registry.snapshot();
  CHECK(find_family(snapshot, "nixfleet_compliance_failure_events")->series.size() == 3);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_series_dropped", {"nixfleet_compliance_failure_events_total"}) == 2);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_label_values_truncated", {"host"}) == 5);
  CHECK(nle::truncate_label_value(prefix + "0", 64) != nle::truncate_label_value(prefix + "1", 64));
}

TEST_CASE("invalid UTF-8 that grows past the cap once repaired is truncated too") {
  RegistryOptions options;
  options.max_label_bytes = 64;
  Registry registry(options);
  registry.record(gate_block(std::string(40, '\xFF')));  // 40 bytes, 120 as U+FFFD
  const Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_log_exporter_label_values_truncated", {"gate"}) == 1);
  for (const Series& series : find_family(snapshot, "nixfleet_gate_block")->series) {
    CHECK(series.label_values[0].size() <= 64);
  }
}

TEST_CASE("long build info values from the log are bounded and counted") {
  RegistryOptions options;
  options.max_label_bytes = 64;
  Registry registry(options);
  registry.record_build_info({std::string(1000, 'v'), std::string(1000, 'g')}, 1);
  const Snapshot snapshot = registry.snapshot();
  const Family* info = find_family(snapshot, "nixfleet_cp_build_info");
  REQUIRE(info->series.size() == 1);
  CHECK(info->series[0].label_values[0] == nle::truncate_label_value(std::string(1000, 'g'), 64));
  CHECK(info->series[0].label_values[1] == nle::truncate_label_value(std::string(1000, 'v'), 64));
  CHECK(value_of(snapshot, "nixfleet_log_exporter_label_values_truncated", {"version"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_label_values_truncated", {"git_commit"}) == 1);
}

TEST_CASE("restored label values longer than the cap are bounded, not counted as truncations again") {
  std::vector<nle::CounterState> saved = {
      {"nixfleet_gate_block", {"gate"}, {std::string(500, 'g')}, 7, 1.5},
  };
  RegistryOptions options;
  options.max_label_bytes = 64;
  Registry registry(options);
  CHECK(registry.restore(saved, std::nullopt) == 0);
  const Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_gate_block", {nle::truncate_label_value(std::string(500, 'g'), 64)}) == 7);
  CHECK(find_family(snapshot, "nixfleet_log_exporter_label_values_truncated")->series.empty());
}

TEST_CASE("series_dropped has no series until something is dropped") {
  const Snapshot snapshot = Registry().snapshot();
  const Family* dropped = find_family(snapshot, "nixfleet_log_exporter_series_dropped");
  REQUIRE(dropped != nullptr);
  CHECK(dropped->series.empty());
}

TEST_CASE("build info is unknown until the log or a flag says otherwise") {
  const Snapshot snapshot = Registry().snapshot();
  const Family* info = find_family(snapshot, "nixfleet_cp_build_info");
  REQUIRE(info != nullptr);
  CHECK(info->type == MetricType::gauge);
  CHECK(info->label_names == std::vector<std::string>{"git_commit", "version"});
  REQUIRE(info->series.size() == 1);
  CHECK(info->series[0].label_values == std::vector<std::string>{"unknown", "unknown"});
  CHECK(info->series[0].value == 1);
}

TEST_CASE("build info from the log with the highest order wins, a tie goes to the later call") {
  Registry registry;
  registry.record_build_info({"1.0.0", "aaaa"}, 10);
  registry.record_build_info({"0.9.0", "bbbb"}, 5);  // an older line read later: ignored
  CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"aaaa", "1.0.0"}) == 1);
  registry.record_build_info({"1.1.0", "cccc"}, 10);
  CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"cccc", "1.1.0"}) == 1);
  CHECK(find_family(registry.snapshot(), "nixfleet_cp_build_info")->series.size() == 1);
}

TEST_CASE("a build info line without version is ignored, one without git_commit gives unknown") {
  Registry registry;
  registry.record_build_info({"1.0.0", "aaaa"}, 1);
  registry.record_build_info({"", "bbbb"}, 2);
  CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"aaaa", "1.0.0"}) == 1);
  registry.record_build_info({"2.0.0", ""}, 3);
  CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"unknown", "2.0.0"}) == 1);
}

TEST_CASE("build info from flags wins over the log") {
  SECTION("both flags") {
    RegistryOptions options;
    options.cp_version = "9.9.9";
    options.cp_git_commit = "f1a9";
    Registry registry(options);
    registry.record_build_info({"1.0.0", "aaaa"}, 1);
    CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"f1a9", "9.9.9"}) == 1);
  }
  SECTION("each flag wins on its own") {
    RegistryOptions options;
    options.cp_version = "9.9.9";
    Registry registry(options);
    CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"unknown", "9.9.9"}) == 1);
    registry.record_build_info({"1.0.0", "aaaa"}, 1);
    CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"aaaa", "9.9.9"}) == 1);
  }
  SECTION("the commit flag alone") {
    RegistryOptions options;
    options.cp_git_commit = "f1a9";
    Registry registry(options);
    registry.record_build_info({"1.0.0", "aaaa"}, 1);
    CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"f1a9", "1.0.0"}) == 1);
  }
  SECTION("a flag given empty counts as not given") {
    RegistryOptions options;
    options.cp_version = "";
    Registry registry(options);
    registry.record_build_info({"1.0.0", "aaaa"}, 1);
    CHECK(value_of(registry.snapshot(), "nixfleet_cp_build_info", {"aaaa", "1.0.0"}) == 1);
  }
}

TEST_CASE("merge adds counts and keeps the latest build info") {
  Registry first;
  first.record(compliance("CIS-1", "web-07"));
  first.record(gate_block("host-edge"));
  first.record_build_info({"1.0.0", "aaaa"}, 100);
  first.add_lines_read(10, 1000);
  first.add_skipped(nle::SkipReason::oversize);
  Registry second;
  second.record(compliance("CIS-1", "web-07"));
  second.record(compliance("CIS-2", "web-08"));
  second.record(gate_block("brand-new"));
  second.record(runtime_gate_error());
  second.record_build_info({"1.1.0", "bbbb"}, 200);
  second.add_lines_read(5, 500);
  second.add_self(nle::SelfCounter::read_errors, "EIO", 2);

  first.merge(second);
  const Snapshot snapshot = first.snapshot();
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}) == 2);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-2", "web-08"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_gate_block", {"host-edge"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_gate_block", {"brand-new"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_runtime_gate_error_events") == 1);
  CHECK(value_of(snapshot, "nixfleet_cp_build_info", {"bbbb", "1.1.0"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_lines_read") == 15);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_bytes_read") == 1500);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_lines_skipped", {"oversize"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_events", {"compliance_failure"}) == 3);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_read_errors", {"EIO"}) == 2);

  // An earlier line merged later does not take over.
  Registry older;
  older.record_build_info({"0.1.0", "cccc"}, 50);
  first.merge(older);
  CHECK(value_of(first.snapshot(), "nixfleet_cp_build_info", {"bbbb", "1.1.0"}) == 1);
}

TEST_CASE("merge keeps the earliest created time") {
  ManualClock early_clock;
  early_clock.now = 1000;
  ManualClock late_clock;
  late_clock.now = 2000;
  Registry late(options_with_clock(late_clock));
  late.record(compliance("CIS-1", "h"));
  Registry early(options_with_clock(early_clock));
  early_clock.now = 1500;
  early.record(compliance("CIS-1", "h"));
  late.merge(early);
  const Snapshot snapshot = late.snapshot();
  CHECK(find_series(*find_family(snapshot, "nixfleet_compliance_failure_events"), {"CIS-1", "h"})->created == 1500);
  CHECK(find_series(*find_family(snapshot, "nixfleet_gate_block"), {"host-edge"})->created == 1000);
}

TEST_CASE("merge respects the target's cap and counts the drops") {
  RegistryOptions small;
  small.max_series_per_family = 1;
  Registry target(small);
  target.record(compliance("C1", "h"));
  Registry source;
  source.record(compliance("C1", "h"));
  source.record(compliance("C2", "h"));
  source.record(compliance("C2", "h"));
  source.record(compliance("C3", "h"));
  target.merge(source);
  const Snapshot snapshot = target.snapshot();
  CHECK(find_family(snapshot, "nixfleet_compliance_failure_events")->series.size() == 1);
  CHECK(value_of(snapshot, "nixfleet_compliance_failure_events", {"C1", "h"}) == 2);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_series_dropped", {"nixfleet_compliance_failure_events_total"}) ==
        3);
}

TEST_CASE("merging a registry into itself doubles its counts") {
  Registry registry;
  registry.record(gate_block("host-edge"));
  registry.record_build_info({"1.0.0", "aaaa"}, 1);
  registry.merge(registry);
  const Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_gate_block", {"host-edge"}) == 2);
  CHECK(value_of(snapshot, "nixfleet_cp_build_info", {"aaaa", "1.0.0"}) == 1);
}

TEST_CASE("created is the clock at series creation and construction time for preset series") {
  ManualClock clock;
  clock.now = 1000.5;
  Registry registry(options_with_clock(clock));
  clock.now = 1010.25;
  registry.record(gate_block("host-edge"));
  registry.record(gate_block("quorum-wait"));
  clock.now = 1020;
  registry.record(gate_block("quorum-wait"));
  const Snapshot snapshot = registry.snapshot();
  const Family& gates = *find_family(snapshot, "nixfleet_gate_block");
  CHECK(find_series(gates, {"host-edge"})->created == 1000.5);
  CHECK(find_series(gates, {"quorum-wait"})->created == 1010.25);
  CHECK(find_series(*find_family(snapshot, "nixfleet_log_exporter_lines_read"), {})->created == 1000.5);
}

TEST_CASE("snapshot families are sorted by name and series by label values bytewise") {
  Registry registry;
  registry.record(compliance("b", "z"));
  registry.record(compliance("a", "\xC3\xA9"));  // non-ASCII sorts after ASCII, bytewise
  registry.record(compliance("a", "Z"));
  registry.record(compliance("a", "z"));
  const Snapshot snapshot = registry.snapshot();
  CHECK(std::is_sorted(snapshot.begin(), snapshot.end(),
                       [](const Family& a, const Family& b) { return a.name < b.name; }));
  for (const Family& family : snapshot) {
    INFO(family.name);
    CHECK(std::is_sorted(family.label_names.begin(), family.label_names.end()));
    for (const Series& series : family.series) CHECK(series.label_values.size() == family.label_names.size());
  }
  const Family& compliance_family = *find_family(snapshot, "nixfleet_compliance_failure_events");
  REQUIRE(compliance_family.series.size() == 4);
  CHECK(compliance_family.series[0].label_values == std::vector<std::string>{"a", "Z"});
  CHECK(compliance_family.series[1].label_values == std::vector<std::string>{"a", "z"});
  CHECK(compliance_family.series[2].label_values == std::vector<std::string>{"a", "\xC3\xA9"});
  CHECK(compliance_family.series[3].label_values == std::vector<std::string>{"b", "z"});
}

TEST_CASE("self-metrics count lines, bytes, event kinds and skip reasons from zero") {
  RegistryOptions options;
  options.exporter_version = "0.1.0";
  options.exporter_revision = "abc123";
  Registry registry(options);
  Snapshot snapshot = registry.snapshot();
  for (std::size_t kind = 0; kind < nle::kEventKindCount; ++kind) {
    CHECK(value_of(snapshot, "nixfleet_log_exporter_events",
                   {std::string(nle::event_kind_name(static_cast<EventKind>(kind)))}) == 0);
  }
  for (std::size_t reason = 0; reason < nle::kSkipReasonCount; ++reason) {
    CHECK(value_of(snapshot, "nixfleet_log_exporter_lines_skipped",
                   {std::string(nle::skip_reason_name(static_cast<nle::SkipReason>(reason)))}) == 0);
  }
  // Build labels not given read "unknown", never empty (an empty value reads as no label).
  CHECK(value_of(snapshot, "nixfleet_log_exporter_build_info", {"unknown", "unknown", "unknown", "abc123", "0.1.0"}) == 1);

  registry.add_lines_read(3, 120);
  registry.add_lines_read(1, 40);
  registry.add_skipped(nle::SkipReason::invalid_json);
  registry.add_skipped(nle::SkipReason::nul_byte, 4);
  registry.record(runtime_gate_error());
  snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_log_exporter_lines_read") == 4);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_bytes_read") == 160);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_lines_skipped", {"invalid_json"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_lines_skipped", {"nul_byte"}) == 4);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_events", {"runtime_gate_error"}) == 1);
}

TEST_CASE("follow-mode self-metrics: the unlabelled ones start at zero, labelled ones appear when first counted") {
  Registry registry;
  Snapshot snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_log_exporter_truncations") == 0);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_rotations") == 0);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_files_watched") == 0);
  CHECK(find_family(snapshot, "nixfleet_log_exporter_read_errors")->series.empty());
  CHECK(find_family(snapshot, "nixfleet_log_exporter_http_requests")->series.empty());

  registry.add_self(nle::SelfCounter::truncations);
  registry.add_self(nle::SelfCounter::rotations, {}, 2);
  registry.add_self(nle::SelfCounter::read_errors, "EACCES");
  registry.add_self(nle::SelfCounter::http_requests, "200", 3);
  registry.add_self(nle::SelfCounter::http_requests, "404");
  registry.set_self(nle::SelfGauge::files_watched, 2);
  snapshot = registry.snapshot();
  CHECK(value_of(snapshot, "nixfleet_log_exporter_truncations") == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_rotations") == 2);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_read_errors", {"EACCES"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_http_requests", {"200"}) == 3);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_http_requests", {"404"}) == 1);
  CHECK(value_of(snapshot, "nixfleet_log_exporter_files_watched") == 2);
}

TEST_CASE("recording into an existing series does not allocate") {
  Registry registry;
  const std::vector<Event> events = {compliance("CIS-5.2.1", "web-07"), compliance("CIS-1", "h\xFF\xFE"),
                                     gate_block("compliance-wave"), gate_block("quorum-wait"), runtime_gate_error()};
  for (const Event& event : events) registry.record(event);  // warm-up: series and key buffer
  registry.add_self(nle::SelfCounter::http_requests, "200");

  const std::uint64_t before = g_allocations.load();
  for (int round = 0; round < 1000; ++round) {
    for (const Event& event : events) registry.record(event);
    registry.add_lines_read(1, 100);
    registry.add_skipped(nle::SkipReason::unrecognised);
    registry.add_self(nle::SelfCounter::http_requests, "200");
    registry.add_self(nle::SelfCounter::rotations);
  }
  const std::uint64_t allocations = g_allocations.load() - before;
  CHECK(allocations == 0);
  CHECK(value_of(registry.snapshot(), "nixfleet_compliance_failure_events", {"CIS-1", "h\xEF\xBF\xBD\xEF\xBF\xBD"}) ==
        1001);
}

TEST_CASE("a moved registry keeps its counts") {
  Registry registry;
  registry.record(gate_block("host-edge"));
  Registry moved(std::move(registry));
  CHECK(value_of(moved.snapshot(), "nixfleet_gate_block", {"host-edge"}) == 1);
  Registry assigned;
  assigned = std::move(moved);
  CHECK(value_of(assigned.snapshot(), "nixfleet_gate_block", {"host-edge"}) == 1);
}

// ---------------------------------------------------------------------------------------------
// Whole pages

TEST_CASE("the LOG-FORMAT section 5 example renders exactly, families sorted by name") {
  RegistryOptions options;
  options.exporter_version = "0.1.0";
  options.exporter_revision = "0123456789ab";
  options.exporter_branch = "main";
  options.exporter_compiler = "GNU 12.2.0";
  options.exporter_platform = "linux/x86_64";
  Registry registry(options);
  for (int i = 0; i < 3; ++i) registry.record(compliance("CIS-5.2.1", "web-07"));
  registry.record(runtime_gate_error());
  for (int i = 0; i < 2; ++i) registry.record(gate_block("compliance-wave"));

  const std::string expected = R"(# HELP nixfleet_compliance_failure_events_total ComplianceFailure reports received, per control and host.
# TYPE nixfleet_compliance_failure_events_total counter
nixfleet_compliance_failure_events_total{control_id="CIS-5.2.1",host="web-07"} 3
# HELP nixfleet_cp_build_info Control plane version, from flags or its log.
# TYPE nixfleet_cp_build_info gauge
nixfleet_cp_build_info{git_commit="unknown",version="unknown"} 1
# HELP nixfleet_gate_block_total Dispatches held by a fleet-level gate, per gate kind.
# TYPE nixfleet_gate_block_total counter
nixfleet_gate_block_total{gate="channel-edges"} 0
nixfleet_gate_block_total{gate="compliance-wave"} 2
nixfleet_gate_block_total{gate="disruption-budget"} 0
nixfleet_gate_block_total{gate="host-edge"} 0
nixfleet_gate_block_total{gate="quarantine"} 0
nixfleet_gate_block_total{gate="wave-promotion"} 0
# HELP nixfleet_log_exporter_build_info The exporter's build: version, revision, branch, compiler, platform; always 1.
# TYPE nixfleet_log_exporter_build_info gauge
nixfleet_log_exporter_build_info{branch="main",compiler="GNU 12.2.0",platform="linux/x86_64",revision="0123456789ab",version="0.1.0"} 1
# HELP nixfleet_log_exporter_bytes_read_total Bytes read from the input, line terminators included.
# TYPE nixfleet_log_exporter_bytes_read_total counter
nixfleet_log_exporter_bytes_read_total 0
# HELP nixfleet_log_exporter_events_total CP events recognised, per kind; includes events whose series was dropped by the series cap.
# TYPE nixfleet_log_exporter_events_total counter
nixfleet_log_exporter_events_total{kind="compliance_failure"} 3
nixfleet_log_exporter_events_total{kind="gate_block"} 2
nixfleet_log_exporter_events_total{kind="runtime_gate_error"} 1
# HELP nixfleet_log_exporter_files_watched Files being followed now.
# TYPE nixfleet_log_exporter_files_watched gauge
nixfleet_log_exporter_files_watched 0
# HELP nixfleet_log_exporter_http_requests_total HTTP requests served, per status code.
# TYPE nixfleet_log_exporter_http_requests_total counter
# HELP nixfleet_log_exporter_label_values_truncated_total Label values longer than --max-label-bytes, counted under a truncated, marked value, per label name.
# TYPE nixfleet_log_exporter_label_values_truncated_total counter
# HELP nixfleet_log_exporter_lines_read_total Lines read from the input, whether or not they held an event.
# TYPE nixfleet_log_exporter_lines_read_total counter
nixfleet_log_exporter_lines_read_total 0
# HELP nixfleet_log_exporter_lines_skipped_total Lines not read as events because they were malformed, per reason.
# TYPE nixfleet_log_exporter_lines_skipped_total counter
nixfleet_log_exporter_lines_skipped_total{reason="invalid_json"} 0
nixfleet_log_exporter_lines_skipped_total{reason="invalid_utf8"} 0
nixfleet_log_exporter_lines_skipped_total{reason="message_elided"} 0
nixfleet_log_exporter_lines_skipped_total{reason="nul_byte"} 0
nixfleet_log_exporter_lines_skipped_total{reason="oversize"} 0
nixfleet_log_exporter_lines_skipped_total{reason="unrecognised"} 0
# HELP nixfleet_log_exporter_read_errors_total Errors reading the input, per reason; reading goes on after each.
# TYPE nixfleet_log_exporter_read_errors_total counter
# HELP nixfleet_log_exporter_rotations_total Times a followed file was replaced by a new one (log rotation) and the new one opened.
# TYPE nixfleet_log_exporter_rotations_total counter
nixfleet_log_exporter_rotations_total 0
# HELP nixfleet_log_exporter_series_dropped_total Events not counted because their new label set would exceed the per-family series cap, per family.
# TYPE nixfleet_log_exporter_series_dropped_total counter
# HELP nixfleet_log_exporter_truncations_total Times a followed file was truncated (it shrank, or was written again from its start) and read again from its start.
# TYPE nixfleet_log_exporter_truncations_total counter
nixfleet_log_exporter_truncations_total 0
# HELP nixfleet_runtime_gate_error_events_total RuntimeGateError reports received.
# TYPE nixfleet_runtime_gate_error_events_total counter
nixfleet_runtime_gate_error_events_total 1
)";
  CHECK(render_prometheus(registry.snapshot()) == expected);
}

TEST_CASE("the section 5 example in OpenMetrics carries _created from the injected clock") {
  ManualClock clock;
  clock.now = 1732480000.123;
  Registry registry(options_with_clock(clock));
  clock.now = 1732480100;
  for (int i = 0; i < 3; ++i) registry.record(compliance("CIS-5.2.1", "web-07"));
  registry.record(runtime_gate_error());
  for (int i = 0; i < 2; ++i) registry.record(gate_block("compliance-wave"));
  Snapshot snapshot = registry.snapshot();
  // Only the contract's four families, to keep the expectation readable.
  snapshot.erase(std::remove_if(snapshot.begin(), snapshot.end(),
                                [](const Family& family) {
                                  return family.name.rfind("nixfleet_log_exporter_", 0) == 0 ||
                                         family.name == "nixfleet_gate_block";
                                }),
                 snapshot.end());
  CHECK(render_openmetrics(snapshot, true) ==
        R"(# HELP nixfleet_compliance_failure_events ComplianceFailure reports received, per control and host.
# TYPE nixfleet_compliance_failure_events counter
nixfleet_compliance_failure_events_total{control_id="CIS-5.2.1",host="web-07"} 3
nixfleet_compliance_failure_events_created{control_id="CIS-5.2.1",host="web-07"} 1732480100
# HELP nixfleet_cp_build_info Control plane version, from flags or its log.
# TYPE nixfleet_cp_build_info gauge
nixfleet_cp_build_info{git_commit="unknown",version="unknown"} 1
# HELP nixfleet_runtime_gate_error_events RuntimeGateError reports received.
# TYPE nixfleet_runtime_gate_error_events counter
nixfleet_runtime_gate_error_events_total 1
nixfleet_runtime_gate_error_events_created 1732480000.123
# EOF
)");
}

namespace {

// Runs `command`, returning its exit code and everything it printed on stdout and stderr.
std::pair<int, std::string> run_capturing(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// promtool's exit code and its complaints about `page`, which it reads as text format 0.0.4.
std::pair<int, std::string> promtool_check(const std::string& page) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() / ("exporter_test_promtool_" + std::to_string(::getpid()) + ".prom");
  {
    std::ofstream file(path, std::ios::binary);
    file << page;
  }
  auto result = run_capturing("promtool check metrics < '" + path.string() + "'");
  std::filesystem::remove(path);
  return result;
}

bool promtool_installed() { return run_capturing("command -v promtool").first == 0; }

}  // namespace

TEST_CASE("a fresh registry's page, with families that have no series yet, passes promtool") {
  if (!promtool_installed()) FAIL("promtool is not installed (Debian package prometheus; CI installs it)");
  const std::string page = render_prometheus(Registry().snapshot());
  REQUIRE(page.find("# TYPE nixfleet_log_exporter_series_dropped_total counter\n# HELP") != std::string::npos);
  const auto [code, output] = promtool_check(page);
  INFO(page);
  INFO(output);
  CHECK(code == 0);
  CHECK(output.empty());
}

TEST_CASE("a page with every family touched passes promtool check metrics") {
  if (!promtool_installed()) FAIL("promtool is not installed (Debian package prometheus; CI installs it)");

  RegistryOptions options;
  options.max_series_per_family = 8;  // the six known gates, quorum-wait, over-the-cap; not also-over
  options.exporter_version = "0.1.0";
  Registry registry(options);
  registry.record(compliance("CIS-5.2.1", "web-07"));
  registry.record(compliance("CIS \"quoted\"", "back\\slash\nnew line \xFF m\xC3\xBCnchen"));
  registry.record(runtime_gate_error());
  registry.record(gate_block("compliance-wave"));
  registry.record(gate_block("quorum-wait"));
  registry.record(gate_block("over-the-cap"));
  registry.record(gate_block("also-over"));
  registry.record_build_info({"1.2.3", "91c2e0"}, 1);
  registry.add_lines_read(100, 12345);
  registry.add_skipped(nle::SkipReason::invalid_json, 2);
  registry.add_self(nle::SelfCounter::truncations);
  registry.add_self(nle::SelfCounter::rotations);
  registry.add_self(nle::SelfCounter::read_errors, "EIO");
  registry.add_self(nle::SelfCounter::http_requests, "200");
  registry.set_self(nle::SelfGauge::files_watched, 1);
  Snapshot snapshot = registry.snapshot();
  REQUIRE(value_of(snapshot, "nixfleet_log_exporter_series_dropped", {"nixfleet_gate_block_total"}) == 1);
  nle::FollowHealth health;
  health.last_read_time = 1764672000.5;
  health.following_files = true;
  health.unread_files = {{"/var/log/cp.log", 10}, {"/var/log/c\"p\n.log", 0}};
  health.journal_lag_seconds = 1.5;
  health.state = nle::FollowHealth::StateSaves{2, 1764670000, 1764671999.25};
  for (Family& family : nle::health_families(health)) snapshot.push_back(std::move(family));
  for (Family& family : nle::process_families()) snapshot.push_back(std::move(family));
  std::sort(snapshot.begin(), snapshot.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
  const std::string page = render_prometheus(snapshot);
  const auto [code, output] = promtool_check(page);
  INFO(page);
  INFO(output);
  CHECK(code == 0);
  CHECK(output.empty());
}

// ---------------------------------------------------------------------------------------------
// Process metrics

TEST_CASE("process stat fields are counted from the last parenthesis") {
  // comm holds a space and a ')' of its own; utime 250, stime 150, starttime 81848,
  // vsize 3133440, rss 380 pages.
  const std::string_view line =
      "6291 (we ird) name) R 6288 6288 3976 0 -1 4194304 99 0 0 0 250 150 0 0 20 0 1 0 81848 3133440 380 "
      "18446744073709551615 94198176833536 94198176853417 140722080083104 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
  const auto stat = nle::parse_proc_stat(line, 100, 4096, 1795550872);
  REQUIRE(stat.has_value());
  CHECK(stat->cpu_seconds == 4.0);
  CHECK(stat->virtual_memory_bytes == 3133440);
  CHECK(stat->resident_memory_bytes == 380.0 * 4096);
  CHECK(stat->start_time_seconds == 1795550872 + 818.48);
}

TEST_CASE("process stat parsing rejects a truncated or malformed line") {
  CHECK_FALSE(nle::parse_proc_stat("", 100, 4096, 0).has_value());
  CHECK_FALSE(nle::parse_proc_stat("6291 (cat R 6288", 100, 4096, 0).has_value());
  CHECK_FALSE(nle::parse_proc_stat("6291 (cat) R 6288 6288 3976 0 -1 4194304 99 0 0 0 0 0", 100, 4096, 0).has_value());
  CHECK_FALSE(nle::parse_proc_stat(
                  "1 (x) R 1 1 1 0 -1 0 0 0 0 0 2x 0 0 0 20 0 1 0 5 100 10", 100, 4096, 0)
                  .has_value());
  CHECK_FALSE(nle::parse_proc_stat("1 (x) R 1 1 1 0 -1 0 0 0 0 0 2 0 0 0 20 0 1 0 5 100 10", 0, 4096, 0).has_value());
}

TEST_CASE("boot time comes from the btime line of /proc/stat") {
  CHECK(nle::parse_boot_time("cpu  1 2 3\nintr 5\nbtime 1795550872\nprocesses 7\n") == 1795550872.0);
  CHECK_FALSE(nle::parse_boot_time("cpu  1 2 3\n").has_value());
  CHECK_FALSE(nle::parse_boot_time("btime soon\n").has_value());
}

TEST_CASE("process families read from /proc are sorted, named and plausible") {
  const std::vector<Family> families = nle::process_families();
  std::vector<std::string> names;
  for (const Family& family : families) names.push_back(family.name);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(names == std::vector<std::string>{"process_cpu_seconds", "process_max_fds", "process_open_fds",
                                          "process_resident_memory_bytes", "process_start_time_seconds",
                                          "process_virtual_memory_bytes"});
  for (const Family& family : families) {
    INFO(family.name);
    CHECK(family.type == (family.name == "process_cpu_seconds" ? MetricType::counter : MetricType::gauge));
    REQUIRE(family.series.size() == 1);
    CHECK(family.series[0].value >= 0);
  }
  const Snapshot snapshot(families.begin(), families.end());
  CHECK(value_of(snapshot, "process_open_fds") >= 3);  // stdin, stdout, stderr at least
  CHECK(value_of(snapshot, "process_resident_memory_bytes") > 0);
  CHECK(value_of(snapshot, "process_start_time_seconds") > 1.0e9);
}

// ---------------------------------------------------------------------------------------------
// Step sampling (replay --step)

namespace {

using nle::MemoryStepPointStore;
using nle::StepSampler;
using nle::StepSamplerOptions;

constexpr std::int64_t kMinute = 60'000'000;
constexpr std::int64_t kT0 = 1795162440LL * 1'000'000;  // 2026-11-20T08:14:00Z, a whole minute

// A counter family "g" labelled by gate, with the given (gate, value) series, sorted, and a gauge.
Snapshot gate_counts(std::vector<std::pair<std::string, double>> gates) {
  nle::Family counter{"g", "Held \"dispatches\".", nle::MetricType::counter, {"gate"}, {}};
  std::sort(gates.begin(), gates.end());
  for (const auto& [gate, value] : gates) counter.series.push_back(nle::Series{{gate}, value, 0});
  nle::Family empty{"e", "Nothing yet.", nle::MetricType::counter, {"host"}, {}};
  nle::Family gauge{"info", "A gauge.", nle::MetricType::gauge, {}, {nle::Series{{}, 1, 0}}};
  return {empty, counter, gauge};
}

std::string render_steps(StepSampler& sampler) {
  std::string out;
  REQUIRE(sampler.render([&](std::string_view piece) { out += piece; }));
  return out;
}

}  // namespace

TEST_CASE("step samples render every series at every step, series by series, ending in EOF") {
  MemoryStepPointStore store;
  StepSampler sampler(StepSamplerOptions{kMinute, 1 << 20, {}}, store);
  REQUIRE(sampler.sample(kT0, gate_counts({{"b", 1}})));
  // Nothing sampled for two minutes: those steps keep the values of kT0.
  REQUIRE(sampler.sample(kT0 + 3 * kMinute, gate_counts({{"b", 4}, {"a", 2}})));
  REQUIRE(sampler.sample(kT0 + 4 * kMinute, gate_counts({{"b", 4}, {"a", 2}})));
  CHECK(sampler.steps() == 5);
  CHECK(render_steps(sampler) ==
        "# HELP e Nothing yet.\n"
        "# TYPE e counter\n"
        "# HELP g Held \\\"dispatches\\\".\n"
        "# TYPE g counter\n"
        "g_total{gate=\"a\"} 2 1795162620\n"  // first seen at the fourth step: starts there
        "g_total{gate=\"a\"} 2 1795162680\n"
        "g_total{gate=\"b\"} 1 1795162440\n"
        "g_total{gate=\"b\"} 1 1795162500\n"
        "g_total{gate=\"b\"} 1 1795162560\n"
        "g_total{gate=\"b\"} 4 1795162620\n"
        "g_total{gate=\"b\"} 4 1795162680\n"
        "# EOF\n");
}

TEST_CASE("step rendering under a tiny memory budget reads the store again and writes the same") {
  const auto run = [](std::size_t budget) {
    MemoryStepPointStore store;
    StepSampler sampler(StepSamplerOptions{kMinute, budget, {}}, store);
    for (int step = 0; step < 20; ++step) {
      std::vector<std::pair<std::string, double>> gates;
      for (int gate = 0; gate < 7; ++gate) {
        if (gate <= step) gates.emplace_back("gate-" + std::to_string(gate), (step * (gate + 1)) / 3);
      }
      REQUIRE(sampler.sample(kT0 + step * kMinute, gate_counts(gates)));
    }
    return render_steps(sampler);
  };
  const std::string whole = run(1 << 20);
  CHECK(whole == run(1));
  CHECK(whole == run(5));
  // Every series' samples are contiguous and in time order (OpenMetrics), 20 - gate of them.
  CHECK(std::count(whole.begin(), whole.end(), '\n') == 4 + (20 + 19 + 18 + 17 + 16 + 15 + 14) + 1);
}

TEST_CASE("step samples carry the extra labels on every series, in name order with the family's") {
  MemoryStepPointStore store;
  StepSampler sampler(StepSamplerOptions{kMinute, 1 << 20, {{"job", "nixfleet-cp-log"}, {"instance", "cp:9761"}, {"zone", "a\"b"}}},
                      store);
  REQUIRE(sampler.sample(kT0, gate_counts({{"b", 1}})));
  CHECK(render_steps(sampler) ==
        "# HELP e Nothing yet.\n"
        "# TYPE e counter\n"
        "# HELP g Held \\\"dispatches\\\".\n"
        "# TYPE g counter\n"
        "g_total{gate=\"b\",instance=\"cp:9761\",job=\"nixfleet-cp-log\",zone=\"a\\\"b\"} 1 1795162440\n"
        "# EOF\n");
}

TEST_CASE("an extra label needs a Prometheus label name and a non-empty UTF-8 value") {
  CHECK(nle::check_extra_label("job", "nixfleet-cp-log").empty());
  CHECK(nle::check_extra_label("_a1", "x").empty());
  CHECK(nle::check_extra_label("instance", "k\xc3\xb6ln:9761").empty());
  CHECK(nle::check_extra_label("", "x") == "\"\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)");
  CHECK_FALSE(nle::check_extra_label("1job", "x").empty());
  CHECK_FALSE(nle::check_extra_label("jo-b", "x").empty());
  CHECK(nle::check_extra_label("__name__", "x") == "label names starting with __ are reserved to Prometheus");
  CHECK(nle::check_extra_label("job", "") == "label job has an empty value, which Prometheus reads as no label");
  CHECK(nle::check_extra_label("job", "\xff") == "the value of label job is not valid UTF-8");
}

TEST_CASE("an empty sampler renders only EOF") {
  MemoryStepPointStore store;
  StepSampler sampler(StepSamplerOptions{}, store);
  CHECK(sampler.steps() == 0);
  CHECK(render_steps(sampler) == "# EOF\n");
}

TEST_CASE("step timestamps are Unix seconds with the fraction only when there is one") {
  CHECK(nle::format_timestamp_seconds(kT0) == "1795162440");
  CHECK(nle::format_timestamp_seconds(kT0 + 500'000) == "1795162440.5");
  CHECK(nle::format_timestamp_seconds(kT0 + 1) == "1795162440.000001");
  CHECK(nle::format_timestamp_seconds(-500'000) == "-0.5");
}

// ---- follow's health families ----------------------------------------------------------------

TEST_CASE("health families: only those that apply, sorted, with zero before the first read or save") {
  nle::FollowHealth health;  // stdin, no state file, nothing read yet
  std::vector<Family> families = nle::health_families(health);
  REQUIRE(families.size() == 1);
  CHECK(families[0].name == "nixfleet_log_exporter_last_read_timestamp_seconds");
  CHECK(families[0].type == MetricType::gauge);
  CHECK(families[0].series.at(0).value == 0);

  health.following_files = true;
  health.journal_lag_seconds = -0.25;  // an entry stamped in the future by a skewed clock
  health.state = nle::FollowHealth::StateSaves{3, 1000, std::nullopt};
  families = nle::health_families(health);
  std::vector<std::string> names;
  for (const Family& family : families) names.push_back(family.name);
  CHECK(names == std::vector<std::string>{"nixfleet_log_exporter_file_unread_bytes",
                                          "nixfleet_log_exporter_journal_lag_seconds",
                                          "nixfleet_log_exporter_last_read_timestamp_seconds",
                                          "nixfleet_log_exporter_state_last_save_timestamp_seconds",
                                          "nixfleet_log_exporter_state_save_failures"});
  CHECK(families[1].series.at(0).value == 0);  // never negative
  CHECK(families[3].series.at(0).value == 0);  // no save yet
  CHECK(families[4].type == MetricType::counter);
  CHECK(families[4].series.at(0).value == 3);
  CHECK(families[4].series.at(0).created == 1000);
}

TEST_CASE("unread bytes: one series per file up to the cap, the rest summed under file=other") {
  nle::FollowHealth health;
  health.following_files = true;
  for (std::size_t i = 0; i < nle::kMaxUnreadFileSeries + 6; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/logs/cp-%03zu.log", nle::kMaxUnreadFileSeries + 5 - i);  // given unsorted
    health.unread_files.push_back({name, 10});
  }
  const std::vector<Family> families = nle::health_families(health);
  const Family* unread = find_family(families, "nixfleet_log_exporter_file_unread_bytes");
  REQUIRE(unread != nullptr);
  CHECK(unread->label_names == std::vector<std::string>{"file"});
  REQUIRE(unread->series.size() == nle::kMaxUnreadFileSeries + 1);
  CHECK(unread->series.front().label_values == std::vector<std::string>{"/logs/cp-000.log"});
  CHECK(value_of(families, "nixfleet_log_exporter_file_unread_bytes", {"other"}) == 60);  // six files of 10
  for (std::size_t i = 1; i < unread->series.size(); ++i) {
    CHECK(unread->series[i - 1].label_values < unread->series[i].label_values);
  }
}

// ---- exemplars -------------------------------------------------------------------------------

namespace {

constexpr std::int64_t kLoggedAt = 1795162652411481;  // 2026-11-20T08:17:32.411481Z

Event report(Event event, std::string_view event_id, std::optional<std::int64_t> logged_at = kLoggedAt) {
  event.event_id = event_id;
  event.log_time_micros = logged_at;
  return event;
}

Event gate_block_on(std::string_view gate, std::string_view host, std::optional<std::int64_t> logged_at = kLoggedAt) {
  Event event = gate_block(gate);
  event.host = host;
  event.log_time_micros = logged_at;
  return event;
}

// The exemplar of one series, or nullopt (also when the series does not exist).
std::optional<nle::Exemplar> exemplar_of(const Snapshot& snapshot, std::string_view family_name,
                                         const std::vector<std::string>& labels = {}) {
  const Family* family = find_family(snapshot, family_name);
  const Series* series = family == nullptr ? nullptr : find_series(*family, labels);
  return series == nullptr ? std::nullopt : series->exemplar;
}

std::optional<std::string> exemplar_name(const Registry& registry, std::string_view family_name,
                                         const std::vector<std::string>& labels = {}) {
  const std::optional<nle::Exemplar> exemplar = exemplar_of(registry.snapshot(), family_name, labels);
  return exemplar ? std::optional<std::string>(exemplar->label_value) : std::nullopt;
}

double exemplars_dropped(const Registry& registry, std::string_view family_public_name) {
  return value_of(registry.snapshot(), "nixfleet_log_exporter_exemplars_dropped", {std::string(family_public_name)});
}

std::string repeated(std::string_view piece, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += piece;
  return out;
}

}  // namespace

TEST_CASE("an OpenMetrics counter sample carries its exemplar after the value; _created and text 0.0.4 never do") {
  Family family = one_counter("nixfleet_compliance_failure_events", {"control_id", "host"}, {"CIS-5.2.1", "web-07"},
                              3, 1700000000);
  family.series[0].exemplar = nle::Exemplar{"event_id", "3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44", kLoggedAt};
  const Snapshot snapshot = {family};
  CHECK(render_openmetrics(snapshot, true) ==
        "# HELP nixfleet_compliance_failure_events Help.\n"
        "# TYPE nixfleet_compliance_failure_events counter\n"
        "nixfleet_compliance_failure_events_total{control_id=\"CIS-5.2.1\",host=\"web-07\"} 3 "
        "# {event_id=\"3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44\"} 1 1795162652.411481\n"
        "nixfleet_compliance_failure_events_created{control_id=\"CIS-5.2.1\",host=\"web-07\"} 1700000000\n"
        "# EOF\n");
  Snapshot without = snapshot;
  without[0].series[0].exemplar.reset();
  CHECK(render_prometheus(snapshot) == render_prometheus(without));
  CHECK(render_prometheus(snapshot).find('#', 1) == render_prometheus(snapshot).find("# TYPE"));
}

TEST_CASE("an exemplar without a log time has no timestamp, and its label value is escaped") {
  Family family = one_counter("nixfleet_gate_block", {"gate"}, {"host-edge"}, 1);
  family.series[0].exemplar = nle::Exemplar{"host", "db \"1\"\\\nx\xFF", std::nullopt};
  CHECK(render_openmetrics({family}, false) ==
        "# HELP nixfleet_gate_block Help.\n"
        "# TYPE nixfleet_gate_block counter\n"
        "nixfleet_gate_block_total{gate=\"host-edge\"} 1 # {host=\"db \\\"1\\\"\\\\\\nx\xEF\xBF\xBD\"} 1\n"
        "# EOF\n");
}

TEST_CASE("each CP series keeps the exemplar of the last event counted in it, in input order, not log time") {
  Registry registry;
  registry.record(report(compliance("CIS-1", "web-07"), "first", kLoggedAt));
  registry.record(report(compliance("CIS-1", "web-07"), "second", kLoggedAt - 60'000'000));  // logged earlier
  registry.record(report(compliance("CIS-2", "web-07"), "other series", kLoggedAt));
  registry.record(report(runtime_gate_error(), "rge-1"));
  registry.record(gate_block_on("host-edge", "web-09"));
  const Snapshot snapshot = registry.snapshot();
  CHECK(exemplar_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}) ==
        nle::Exemplar{"event_id", "second", kLoggedAt - 60'000'000});
  CHECK(exemplar_of(snapshot, "nixfleet_compliance_failure_events", {"CIS-2", "web-07"})->label_value ==
        "other series");
  CHECK(exemplar_of(snapshot, "nixfleet_runtime_gate_error_events") == nle::Exemplar{"event_id", "rge-1", kLoggedAt});
  CHECK(exemplar_of(snapshot, "nixfleet_gate_block", {"host-edge"}) == nle::Exemplar{"host", "web-09", kLoggedAt});
  CHECK_FALSE(exemplar_of(snapshot, "nixfleet_gate_block", {"quarantine"}));  // never counted
  // The exporter's own counters have none.
  CHECK_FALSE(exemplar_of(snapshot, "nixfleet_log_exporter_events", {"compliance_failure"}));
}

TEST_CASE("an event that names nothing leaves its series without an exemplar, and is not counted as dropped") {
  Registry registry;
  registry.record(report(compliance("CIS-1", "web-07"), "old"));
  registry.record(report(compliance("CIS-1", "web-07"), ""));  // a report without event_id
  registry.record(gate_block_on("host-edge", "web-09"));
  registry.record(gate_block_on("host-edge", ""));  // the usual gate block line: no host field
  CHECK_FALSE(exemplar_name(registry, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}));
  CHECK_FALSE(exemplar_name(registry, "nixfleet_gate_block", {"host-edge"}));
  CHECK(find_family(registry.snapshot(), "nixfleet_log_exporter_exemplars_dropped") == nullptr);
}

TEST_CASE("an exemplar label set of 128 code points is kept, one of 129 is dropped and counted") {
  // `event_id` is 8 code points and `host` 4: the values get 120 and 124.
  struct Case {
    std::string_view what;
    std::string piece;  // one code point
  };
  for (const Case& c : {Case{"ASCII", "a"}, Case{"two-byte", "\xC3\xA9"}, Case{"three-byte", "\xE6\x97\xA5"},
                        Case{"four-byte", "\xF0\x9F\x98\x80"}, Case{"an invalid byte, one U+FFFD", "\xFF"}}) {
    INFO(c.what);
    Registry registry;
    registry.record(report(compliance("CIS-1", "web-07"), repeated(c.piece, 120)));
    CHECK(nle::utf8_code_points(*exemplar_name(registry, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"})) ==
          120);
    registry.record(report(compliance("CIS-1", "web-07"), repeated(c.piece, 121)));
    // The older exemplar would name the wrong event: the series has none now.
    CHECK_FALSE(exemplar_name(registry, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}));
    CHECK(exemplars_dropped(registry, "nixfleet_compliance_failure_events_total") == 1);
    CHECK(value_of(registry.snapshot(), "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}) == 2);

    registry.record(gate_block_on("host-edge", repeated(c.piece, 124)));
    CHECK(exemplar_name(registry, "nixfleet_gate_block", {"host-edge"}));
    registry.record(gate_block_on("host-edge", repeated(c.piece, 125)));
    CHECK_FALSE(exemplar_name(registry, "nixfleet_gate_block", {"host-edge"}));
    registry.record(report(runtime_gate_error(), repeated(c.piece, 121)));
    registry.record(report(runtime_gate_error(), repeated(c.piece, 500)));
    CHECK(exemplars_dropped(registry, "nixfleet_gate_block_total") == 1);
    CHECK(exemplars_dropped(registry, "nixfleet_runtime_gate_error_events_total") == 2);
    // Once per event, whatever the scrapes: a snapshot does not count again.
    CHECK(exemplars_dropped(registry, "nixfleet_runtime_gate_error_events_total") == 2);
    // A later event that fits names its series again.
    registry.record(report(compliance("CIS-1", "web-07"), "short"));
    CHECK(exemplar_name(registry, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}) == "short");
  }
}

TEST_CASE("record() finds by label values where they lie the series that restore and merge find by key") {
  // record() hashes and compares label values in place, short ASCII ones without a UTF-8 pass, and
  // builds a key only for a new series; restore() and merge() look series up by built keys. Were
  // the two to disagree on a hash or on equality, a series would be found twice and show up
  // twice. Values of every length around the word size, at and over the cap, non-ASCII, invalid,
  // and with a NUL byte; exemplar names short, inline-long, heap-long, non-ASCII and too long.
  ManualClock clock;
  RegistryOptions options = options_with_clock(clock);
  options.max_label_bytes = 64;
  std::vector<std::string> values;
  for (std::size_t size = 0; size <= 20; ++size) values.push_back(std::string(size, static_cast<char>('a' + size)));
  for (const std::string_view odd : {std::string_view("b\xC3\xA4" "ckerei"), std::string_view("web\xFF"),
                                     std::string_view("web\xEF\xBF\xBD"), std::string_view("nul\0byte", 8),
                                     std::string_view("\xE6\x9D\xB1\xE4\xBA\xAC")}) {
    values.emplace_back(odd);
  }
  values.push_back(std::string(64, 'c'));                       // at the cap: kept whole
  values.push_back(std::string(63, 'c') + "\xC3\xA9");          // 65 bytes: truncated
  values.push_back(std::string(40, '\xFF'));                    // 40 bytes, 120 once sanitized: truncated
  values.push_back(std::string(300, 'd'));                      // truncated
  const std::vector<std::string> names = {"",
                                          "3b0f5c2e-1d1a-4a7c-9a51-0c7f3d1e2b44",
                                          std::string(39, 'e'),
                                          std::string(120, 'f'),
                                          std::string(121, 'g'),
                                          "caf\xC3\xA9",
                                          "bad\xFF"};
  std::vector<Event> events;
  std::size_t n = 0;
  for (const std::string& control : values) {
    for (const std::string& host : values) {
      events.push_back(report(compliance(control, host), names[n % names.size()], kLoggedAt + std::int64_t(n)));
      ++n;
    }
    events.push_back(gate_block_on(control, names[n % names.size()]));
    ++n;
  }

  // The rule registry.h states, applied by hand: a missing value reads "unknown"; one over the cap
  // (in bytes, after invalid bytes became U+FFFD) becomes truncate_label_value()'s.
  const auto bounded = [](std::string_view value) {
    if (value.empty()) return std::string("unknown");
    const std::string sanitized = nle::sanitize_utf8(value);
    return sanitized.size() <= 64 ? sanitized : nle::truncate_label_value(value, 64);
  };
  std::map<std::vector<std::string>, double> want;
  for (const std::string& control : values) {
    for (const std::string& host : values) want[{bounded(control), bounded(host)}] += 2;
  }

  Registry twice(options);
  for (const Event& event : events) twice.record(event);
  for (const Event& event : events) twice.record(event);
  const Snapshot snapshot = twice.snapshot();
  const Family* family = find_family(snapshot, "nixfleet_compliance_failure_events");
  REQUIRE(family != nullptr);
  std::map<std::vector<std::string>, double> got;
  for (const Series& series : family->series) got[series.label_values] += series.value;
  CHECK(family->series.size() == want.size());
  CHECK(got == want);
  const std::string page = render_openmetrics(snapshot, true);

  // The second pass recorded into a registry restored from the first: every series found again.
  Registry first(options);
  for (const Event& event : events) first.record(event);
  Registry restored(options);
  CHECK(restored.restore(first.export_counters(), first.export_build_info()) == 0);
  for (const Event& event : events) restored.record(event);
  CHECK(render_openmetrics(restored.snapshot(), true) == page);

  // The same, merged: the second pass recorded alone, then added to the first.
  Registry second(options);
  for (const Event& event : events) second.record(event);
  first.merge(second);
  CHECK(render_openmetrics(first.snapshot(), true) == page);

  // And under a series cap that refuses most of them, in both paths alike.
  options.max_series_per_family = 50;
  Registry capped(options);
  for (const Event& event : events) capped.record(event);
  for (const Event& event : events) capped.record(event);
  Registry capped_first(options);
  for (const Event& event : events) capped_first.record(event);
  Registry capped_restored(options);
  CHECK(capped_restored.restore(capped_first.export_counters(), std::nullopt) == 0);
  for (const Event& event : events) capped_restored.record(event);
  const Snapshot capped_snapshot = capped.snapshot();
  CHECK(find_family(capped_snapshot, "nixfleet_compliance_failure_events")->series.size() == 50);
  CHECK(render_openmetrics(capped_restored.snapshot(), true) == render_openmetrics(capped_snapshot, true));
}

TEST_CASE("code points: one per character, one per invalid sequence") {
  for (const std::string_view bytes : {"", "web-07", "m\xC3\xBCnchen \xF0\x9F\x98\x80", "a\xFF\xFE" "b\xE6\x97", "\xED\xA0\x80x",
                                       "\xF4\x90\x80\x80", "\xC0\xAF\xE0\x80"}) {
    INFO(bytes);
    const std::string sanitized = nle::sanitize_utf8(bytes);
    std::size_t leads = 0;
    for (char c : sanitized) leads += (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
    CHECK(nle::utf8_code_points(bytes) == leads);
  }
  CHECK(nle::utf8_code_points("") == 0);
  CHECK(nle::utf8_code_points("web-07") == 6);
  CHECK(nle::utf8_code_points("m\xC3\xBCnchen-\xE6\x97\xA5-\xF0\x9F\x98\x80") == 11);
  CHECK(nle::utf8_code_points("a\xFF\xFE" "b\xE6\x97") == 5);  // \xE6\x97: one truncated sequence
  CHECK(nle::exemplar_label_fits("event_id", repeated("\xF0\x9F\x98\x80", 120)));
  CHECK_FALSE(nle::exemplar_label_fits("event_id", repeated("a", 121)));
}

TEST_CASE("exemplars_dropped is on no page until its first count, so text pages stay as they were") {
  Registry plain;
  Registry named;
  for (Registry* registry : {&plain, &named}) {
    const bool name = registry == &named;
    registry->record(report(compliance("CIS-1", "web-07"), name ? "3b0f" : ""));
    registry->record(report(runtime_gate_error(), name ? "rge" : ""));
    registry->record(gate_block_on("host-edge", name ? "web-09" : ""));
  }
  CHECK(render_prometheus(plain.snapshot()) == render_prometheus(named.snapshot()));
  CHECK(render_prometheus(plain.snapshot()).find("exemplars_dropped") == std::string::npos);
  CHECK(render_openmetrics(named.snapshot(), true).find("exemplars_dropped") == std::string::npos);
  named.record(report(runtime_gate_error(), repeated("x", 200)));
  const std::string page = render_prometheus(named.snapshot());
  CHECK(page.find("# TYPE nixfleet_log_exporter_exemplars_dropped_total counter\n"
                  "nixfleet_log_exporter_exemplars_dropped_total{family=\"nixfleet_runtime_gate_error_events_total\"} "
                  "1\n") != std::string::npos);
}

TEST_CASE("merge: a series the later registry counted takes its exemplar or its lack of one") {
  Registry first;
  first.record(report(compliance("CIS-1", "web-07"), "first-1"));
  first.record(report(compliance("CIS-2", "web-07"), "first-2"));
  first.record(report(compliance("CIS-3", "web-07"), "first-3"));
  first.record(gate_block_on("host-edge", "web-09"));
  Registry second;
  second.record(report(compliance("CIS-1", "web-07"), "second-1"));
  second.record(report(compliance("CIS-2", "web-07"), ""));  // counted, names nothing
  second.record(report(compliance("CIS-4", "web-07"), "second-4"));
  second.record(report(runtime_gate_error(), repeated("y", 121)));  // counted, dropped
  first.merge(second);
  CHECK(exemplar_name(first, "nixfleet_compliance_failure_events", {"CIS-1", "web-07"}) == "second-1");
  CHECK_FALSE(exemplar_name(first, "nixfleet_compliance_failure_events", {"CIS-2", "web-07"}));
  CHECK(exemplar_name(first, "nixfleet_compliance_failure_events", {"CIS-3", "web-07"}) == "first-3");
  CHECK(exemplar_name(first, "nixfleet_compliance_failure_events", {"CIS-4", "web-07"}) == "second-4");
  // The preset series exist at 0 in `second` too: not counted there, so `first`'s stays.
  CHECK(exemplar_name(first, "nixfleet_gate_block", {"host-edge"}) == "web-09");
  CHECK_FALSE(exemplar_name(first, "nixfleet_runtime_gate_error_events"));
  CHECK(exemplars_dropped(first, "nixfleet_runtime_gate_error_events_total") == 1);
}

TEST_CASE("merging ranges in input order gives the exemplars of reading the input in one piece") {
  struct Logged {
    std::string control_id, host, event_id;
  };
  std::vector<Logged> lines;
  for (int i = 0; i < 200; ++i) {
    lines.push_back({i % 7 == 0 ? "CIS-1" : "CIS-2", "web-0" + std::to_string(i % 3),
                     i % 11 == 0 ? "" : "id-" + std::to_string(i)});
  }
  Registry whole;
  std::vector<Registry> ranges(4);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Event event = report(compliance(lines[i].control_id, lines[i].host), lines[i].event_id,
                               kLoggedAt + static_cast<std::int64_t>(i));
    whole.record(event);
    ranges[i * ranges.size() / lines.size()].record(event);
  }
  Registry merged;
  for (const Registry& range : ranges) merged.merge(range);
  const Snapshot expected_snapshot = whole.snapshot();
  const Snapshot snapshot = merged.snapshot();
  const Family* expected = find_family(expected_snapshot, "nixfleet_compliance_failure_events");
  const Family* got = find_family(snapshot, "nixfleet_compliance_failure_events");
  REQUIRE(got->series.size() == expected->series.size());
  for (std::size_t i = 0; i < got->series.size(); ++i) {
    CHECK(got->series[i].value == expected->series[i].value);
    CHECK(got->series[i].exemplar == expected->series[i].exemplar);
  }
  CHECK(got->series.size() == 6);
}

TEST_CASE("recording with exemplars into an existing series does not allocate") {
  Registry registry;
  const std::string long_id(120, 'x');  // beyond the small-string buffer
  // Events hold views: the ids live as long as the events.
  const std::string too_long_id(121, 'y');
  const std::string invalid_id(5000, '\xFF');
  const std::string invalid_short_id(100, '\xFF');
  const std::vector<Event> events = {report(compliance("CIS-5.2.1", "web-07"), long_id),
                                     report(compliance("CIS-5.2.1", "web-07"), "3b0f5c2e"),
                                     report(runtime_gate_error(), long_id), gate_block_on("host-edge", "web-09"),
                                     report(compliance("CIS-1", "web-07"), too_long_id),
                                     report(compliance("CIS-1", "web-07"), invalid_id),
                                     report(compliance("CIS-1", "web-07"), invalid_short_id)};
  for (const Event& event : events) registry.record(event);  // warm-up: series, exemplars, buffers
  const std::uint64_t before = g_allocations.load();
  for (int round = 0; round < 1000; ++round) {
    for (const Event& event : events) registry.record(event);
  }
  CHECK(g_allocations.load() - before == 0);
  CHECK(exemplar_name(registry, "nixfleet_compliance_failure_events", {"CIS-5.2.1", "web-07"}) == "3b0f5c2e");
}

TEST_CASE("counting events in batches, each prefetched first, gives what counting them one by one gives") {
  // Replay counts the events of many lines together (LineIngester's batch): the same counts, the
  // same series under the cap, the same truncations and the same latest exemplar per series.
  std::mt19937 rng(20261203);
  const auto pick = [&rng](int below) { return std::uniform_int_distribution<int>(0, below - 1)(rng); };
  const std::vector<std::string> controls = {"CIS-1.1", "CIS-5.2.1", "", std::string(150, 'c'), "CIS-\xFF"};
  const std::vector<std::string> hosts = {"web-07", "db-01", "", "h\xC3\xA9te", std::string(150, 'h')};
  const std::vector<std::string> gates = {"quarantine", "host-edge", "made-up", ""};
  const std::vector<std::string> ids = {"3b0f01", "", std::string(200, 'e'), "id-\xFF"};
  for (int round = 0; round < 100; ++round) {
    std::deque<std::string> names;  // the events' views point here; a deque never moves them
    const auto keep = [&names](std::string name) -> std::string_view { return names.emplace_back(std::move(name)); };
    std::vector<Event> events;
    const int count = 1 + pick(120);
    for (int i = 0; i < count; ++i) {
      const int kind = pick(3);
      Event event = kind == 0   ? compliance(controls[pick(5)], keep(hosts[pick(5)] + std::to_string(pick(3))))
                    : kind == 1 ? gate_block_on(gates[pick(4)], keep(hosts[pick(5)]))
                                : runtime_gate_error();
      event.event_id = keep(ids[pick(4)] + std::to_string(pick(1000)));
      event.log_time_micros = pick(2) == 0 ? std::optional<std::int64_t>(kLoggedAt + pick(1000)) : std::nullopt;
      events.push_back(event);
    }
    RegistryOptions options;
    options.max_series_per_family = 1 + pick(12);
    options.max_label_bytes = 64;
    Registry one_by_one(options);
    Registry batched(options);
    for (const Event& event : events) one_by_one.record(event);
    for (std::size_t at = 0; at < events.size();) {
      const std::size_t n = std::min<std::size_t>(events.size() - at, 1 + pick(20));
      for (std::size_t i = at; i < at + n; ++i) batched.prefetch(events[i]);
      batched.record(std::span<const Event>(events.data() + at, n));
      at += n;
    }
    INFO("round " << round);
    const std::string expected = render_openmetrics(one_by_one.snapshot(), false);
    REQUIRE(render_openmetrics(batched.snapshot(), false) == expected);
    REQUIRE(expected.find(" # {") != std::string::npos);  // exemplars were compared too
  }
}
