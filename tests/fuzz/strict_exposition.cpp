#include "tests/fuzz/strict_exposition.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <set>

#include "exporter/exemplar.h"
#include "exporter/step_sampler.h"

namespace nle::fuzz {
namespace {

bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':'; }
bool is_name_byte(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

// A metric or label name at the front of `rest`, consumed; "" when there is none.
std::string_view take_name(std::string_view& rest) {
  std::size_t n = 0;
  if (rest.empty() || !is_name_start(rest[0])) return {};
  while (n < rest.size() && is_name_byte(rest[n])) ++n;
  const std::string_view name = rest.substr(0, n);
  rest.remove_prefix(n);
  return name;
}

std::optional<double> read_value(std::string_view text) {
  if (text == "NaN") return std::nan("");
  if (text == "+Inf") return HUGE_VAL;
  if (text == "-Inf") return -HUGE_VAL;
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Unescapes a HELP text or a label value; nullopt on an escape the format does not have.
std::optional<std::string> unescape(std::string_view text, bool quote_escape) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out += text[i];
      continue;
    }
    if (++i == text.size()) return std::nullopt;
    if (text[i] == 'n') out += '\n';
    else if (text[i] == '\\') out += '\\';
    else if (text[i] == '"' && quote_escape) out += '"';
    else return std::nullopt;
  }
  return out;
}

struct Reader {
  ExpositionFormat format;
  std::string& error;
  std::vector<ParsedSample> samples;
  std::string family;  // the family of the last TYPE line
  std::string type;
  std::set<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> seen;
  std::set<std::string> families_seen;

  bool fail(std::size_t line_number, const std::string& what) {
    error = "line " + std::to_string(line_number) + ": " + what;
    return false;
  }

  bool metadata(std::size_t n, std::string_view rest) {
    const bool help = rest.starts_with("HELP ");
    if (!help && !rest.starts_with("TYPE ")) return fail(n, "a comment that is neither HELP nor TYPE");
    rest.remove_prefix(5);
    const std::string name(take_name(rest));
    if (name.empty() || !rest.starts_with(' ')) return fail(n, "no metric name, or no space after it");
    rest.remove_prefix(1);
    if (help) {
      const auto text = unescape(rest, format == ExpositionFormat::openmetrics);
      if (!text || !is_valid_utf8(*text)) return fail(n, "a HELP text with a bad escape or invalid UTF-8");
      if (families_seen.count(name) != 0) return fail(n, "HELP after the family's TYPE");
      return true;
    }
    if (rest != "counter" && rest != "gauge") return fail(n, "an unknown TYPE");
    if (!families_seen.insert(name).second) return fail(n, "a family declared twice");
    family = name;
    type = rest;
    return true;
  }

  bool belongs_to_family(std::string_view name) const {
    if (type == "gauge") return name == family;
    if (format == ExpositionFormat::prometheus) return name == family && name.ends_with("_total");
    return name == family + "_total" || name == family + "_created";
  }

  // `{name="value",...}` at the front of `rest`, consumed into `labels`.
  bool label_set(std::size_t n, std::string_view& rest, std::vector<std::pair<std::string, std::string>>& labels) {
    rest.remove_prefix(1);
    for (;;) {
      std::string label(take_name(rest));
      if (label.empty() || !rest.starts_with("=\"")) return fail(n, "a label without a name or =\"");
      rest.remove_prefix(2);
      std::size_t end = 0;
      while (end < rest.size() && rest[end] != '"') end += rest[end] == '\\' ? 2 : 1;
      if (end >= rest.size()) return fail(n, "a label value that never closes");
      const auto value = unescape(rest.substr(0, end), true);
      if (!value) return fail(n, "a label value with a bad escape");
      if (!is_valid_utf8(*value)) return fail(n, "a label value that is not UTF-8");
      for (const auto& [other, _] : labels) {
        if (other == label) return fail(n, "a label given twice");
      }
      labels.emplace_back(std::move(label), *value);
      rest.remove_prefix(end + 1);
      if (rest.starts_with(',')) {
        rest.remove_prefix(1);
        continue;
      }
      if (!rest.starts_with('}')) return fail(n, "label pairs not closed by }");
      rest.remove_prefix(1);
      return true;
    }
  }

  // What follows ` # ` after a value: `{labels} value[ timestamp]`, within OpenMetrics' limit.
  bool exemplar(std::size_t n, std::string_view rest, ParsedExemplar& out) {
    if (!rest.starts_with('{')) return fail(n, "an exemplar without labels");
    if (!label_set(n, rest, out.labels)) return false;
    std::size_t code_points = 0;
    for (const auto& [name, value] : out.labels) code_points += utf8_code_points(name) + utf8_code_points(value);
    if (code_points > kExemplarMaxCodePoints) return fail(n, "an exemplar's labels over 128 code points");
    if (!rest.starts_with(' ')) return fail(n, "no space before the exemplar's value");
    rest.remove_prefix(1);
    const std::size_t space = rest.find(' ');
    const auto value = read_value(rest.substr(0, space));
    if (!value) return fail(n, "an exemplar value that is not a number");
    out.value = *value;
    if (space == std::string_view::npos) return true;
    out.timestamp = rest.substr(space + 1);
    if (!read_value(out.timestamp) || !std::isfinite(*read_value(out.timestamp))) {
      return fail(n, "an exemplar timestamp that is not a number");
    }
    return true;
  }

  bool sample(std::size_t n, std::string_view rest) {
    ParsedSample s;
    s.name = take_name(rest);
    if (s.name.empty()) return fail(n, "a sample without a name");
    if (family.empty() || !belongs_to_family(s.name)) return fail(n, "a sample outside the family of its TYPE line");
    if (rest.starts_with('{') && !label_set(n, rest, s.labels)) return false;
    if (!rest.starts_with(' ')) return fail(n, "no space before the value");
    rest.remove_prefix(1);
    // OpenMetrics: ` # ` after the value starts an exemplar, allowed on a counter's _total only.
    if (const std::size_t hash = rest.find(" # "); hash != std::string_view::npos &&
                                                  format == ExpositionFormat::openmetrics) {
      if (type != "counter" || !s.name.ends_with("_total")) return fail(n, "an exemplar outside a counter's _total");
      if (!exemplar(n, rest.substr(hash + 3), s.exemplar.emplace())) return false;
      rest = rest.substr(0, hash);
    }
    const auto value = read_value(rest);
    if (!value) return fail(n, "a value that is not a number");
    s.value = *value;
    if (!seen.emplace(s.name, s.labels).second) return fail(n, "a series given twice");
    samples.push_back(std::move(s));
    return true;
  }
};

}  // namespace

bool ParsedSample::operator==(const ParsedSample& other) const {
  const bool same_value = value == other.value || (std::isnan(value) && std::isnan(other.value));
  return name == other.name && labels == other.labels && same_value && exemplar == other.exemplar;
}

std::optional<std::vector<ParsedSample>> parse_exposition_strictly(std::string_view page, ExpositionFormat format,
                                                                   std::string& error) {
  Reader reader{format, error, {}, {}, {}, {}, {}};
  if (!is_valid_utf8(page)) {
    error = "the page is not UTF-8";
    return std::nullopt;
  }
  if (!page.empty() && page.back() != '\n') {
    error = "the page does not end in a newline";
    return std::nullopt;
  }
  bool eof = false;
  std::size_t n = 0;
  while (!page.empty()) {
    ++n;
    const std::size_t nl = page.find('\n');
    const std::string_view line = page.substr(0, nl);
    page.remove_prefix(nl + 1);
    if (eof) {
      reader.fail(n, "text after # EOF");
      return std::nullopt;
    }
    bool ok = true;
    if (format == ExpositionFormat::openmetrics && line == "# EOF") eof = true;
    else if (line.starts_with("# ")) ok = reader.metadata(n, line.substr(2));
    else ok = reader.sample(n, line);
    if (!ok) return std::nullopt;
  }
  if (format == ExpositionFormat::openmetrics && !eof) {
    error = "no # EOF";
    return std::nullopt;
  }
  return std::move(reader.samples);
}

std::vector<ParsedSample> expected_samples(const Snapshot& snapshot, ExpositionFormat format) {
  std::vector<ParsedSample> samples;
  for (const Family& family : snapshot) {
    const bool counter = family.type == MetricType::counter;
    for (const Series& series : family.series) {
      ParsedSample s;
      s.name = family.name + (counter ? "_total" : "");
      for (std::size_t i = 0; i < family.label_names.size(); ++i) {
        s.labels.emplace_back(family.label_names[i], sanitize_utf8(i < series.label_values.size() ? series.label_values[i] : ""));
      }
      s.value = series.value;
      if (counter && format == ExpositionFormat::openmetrics && series.exemplar) {
        const Exemplar& exemplar = *series.exemplar;
        s.exemplar = ParsedExemplar{{{exemplar.label_name, sanitize_utf8(exemplar.label_value)}}, 1,
                                    exemplar.timestamp_micros ? format_timestamp_seconds(*exemplar.timestamp_micros) : ""};
      }
      samples.push_back(s);
      s.exemplar.reset();
      if (counter && format == ExpositionFormat::openmetrics) {
        s.name = family.name + "_created";
        s.value = series.created;
        samples.push_back(std::move(s));
      }
    }
  }
  return samples;
}

}  // namespace nle::fuzz
