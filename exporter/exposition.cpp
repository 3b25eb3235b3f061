#include "exporter/exposition.h"

#include "exporter/step_sampler.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace nle {
namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// One step of a UTF-8 decoder: either a well-formed sequence of `length` bytes, or an ill-formed
// one whose maximal subpart (the longest prefix that could still have begun a well-formed
// sequence) is `length` bytes and becomes one U+FFFD.
struct Utf8Step {
  std::size_t length;
  bool valid;
};

// The well-formed sequences are those of Unicode table 3-7; the narrowed second-byte ranges
// exclude overlong forms (E0, F0), the surrogates (ED) and code points above U+10FFFF (F4).
Utf8Step next_utf8_step(std::string_view bytes, std::size_t at) {
  const auto lead = static_cast<unsigned char>(bytes[at]);
  if (lead < 0x80) return {1, true};
  std::size_t continuation_count = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuation_count = 1;
  } else if (lead == 0xE0) {
    continuation_count = 2;
    second_min = 0xA0;
  } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
    continuation_count = 2;
  } else if (lead == 0xED) {
    continuation_count = 2;
    second_max = 0x9F;
  } else if (lead == 0xF0) {
    continuation_count = 3;
    second_min = 0x90;
  } else if (lead >= 0xF1 && lead <= 0xF3) {
    continuation_count = 3;
  } else if (lead == 0xF4) {
    continuation_count = 3;
    second_max = 0x8F;
  } else {
    return {1, false};  // 80..C1 (continuation or overlong lead) and F5..FF never start one
  }
  for (std::size_t offset = 1; offset <= continuation_count; ++offset) {
    if (at + offset >= bytes.size()) return {offset, false};
    const auto byte = static_cast<unsigned char>(bytes[at + offset]);
    const unsigned char min = offset == 1 ? second_min : 0x80;
    const unsigned char max = offset == 1 ? second_max : 0xBF;
    if (byte < min || byte > max) return {offset, false};
  }
  return {continuation_count + 1, true};
}

// Label values and help texts are nearly always ASCII, so skip whole words of it at a time.
std::size_t skip_ascii(std::string_view bytes, std::size_t at) {
  constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;
  while (at + 8 <= bytes.size()) {
    std::uint64_t word;
    std::memcpy(&word, bytes.data() + at, sizeof word);
    if ((word & kHighBits) != 0) break;
    at += 8;
  }
  while (at < bytes.size() && static_cast<unsigned char>(bytes[at]) < 0x80) ++at;
  return at;
}

enum class EscapeSet : unsigned char {
  label_value,       // \\ \" \n
  prometheus_help,   // \\ \n: text 0.0.4 has no \" escape in HELP and rejects one
  openmetrics_help,  // \\ \" \n
};

void append_escaped_valid_utf8(std::string& out, std::string_view text, EscapeSet set) {
  // A byte loop, not find_first_of: libstdc++'s find_first_of runs memchr over the set once per
  // byte of text, which made escaping the costliest part of rendering a large exposition.
  const bool escape_quote = set != EscapeSet::prometheus_help;
  std::size_t chunk_start = 0;
  for (std::size_t at = 0; at < text.size(); ++at) {
    const char c = text[at];
    if (c != '\\' && c != '\n' && (c != '"' || !escape_quote)) continue;
    out.append(text.substr(chunk_start, at - chunk_start));
    out += '\\';
    out += c == '\n' ? 'n' : c;
    chunk_start = at + 1;
  }
  out.append(text.substr(chunk_start));
}

void append_escaped(std::string& out, std::string_view text, EscapeSet set) {
  if (is_valid_utf8(text)) {
    append_escaped_valid_utf8(out, text, set);
    return;
  }
  std::string sanitized;
  append_sanitized_utf8(sanitized, text);
  append_escaped_valid_utf8(out, sanitized, set);
}

// Integral values up to 2^63 print in full ("1000000", where shortest round-trip would give
// "1e+06"); everything else as the shortest string that reads back to the same double. to_chars
// never consults the locale.
void append_number(std::string& out, double value) {
  if (std::isnan(value)) {
    out += "NaN";
    return;
  }
  if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buffer[32];
  constexpr double kTwoToThe63 = 9223372036854775808.0;
  std::to_chars_result result{};
  if (value == std::trunc(value) && value > -kTwoToThe63 && value < kTwoToThe63) {
    result = std::to_chars(buffer, buffer + sizeof buffer, static_cast<long long>(value));
  } else {
    result = std::to_chars(buffer, buffer + sizeof buffer, value);
  }
  out.append(buffer, result.ptr);
}

// The fixed text around one family's sample values, built once per family rather than
// appended piece by piece for every series: `{name="` before the first value, `",name="`
// before each later one, `"}` after the last (nothing at all for a family without labels).
struct SampleFrame {
  std::vector<std::string> before_value;
  std::string_view after_values;

  explicit SampleFrame(const Family& family) {
    for (std::size_t i = 0; i < family.label_names.size(); ++i) {
      before_value.push_back((i == 0 ? "{" : "\",") + family.label_names[i] + "=\"");
    }
    after_values = family.label_names.empty() ? "" : "\"}";
  }
};

// ` # {event_id="..."} 1 1795162652.411481`: OpenMetrics' exemplar after a counter's value.
void append_exemplar(std::string& out, const Exemplar& exemplar) {
  out += " # {";
  out += exemplar.label_name;
  out += "=\"";
  append_escaped(out, exemplar.label_value, EscapeSet::label_value);
  out += "\"} 1";
  if (exemplar.timestamp_micros) {
    out += ' ';
    out += format_timestamp_seconds(*exemplar.timestamp_micros);
  }
}

void append_sample(std::string& out, std::string_view name, const SampleFrame& frame, const Series& series,
                   double value, const Exemplar* exemplar = nullptr) {
  out += name;
  for (std::size_t i = 0; i < frame.before_value.size(); ++i) {
    out += frame.before_value[i];
    // A snapshot short of values renders them empty rather than misaligning the pairs.
    if (i < series.label_values.size()) append_escaped(out, series.label_values[i], EscapeSet::label_value);
  }
  out += frame.after_values;
  out += ' ';
  append_number(out, value);
  if (exemplar != nullptr) append_exemplar(out, *exemplar);
  out += '\n';
}

// Enough for the common case in one allocation; escaping may still grow the string.
std::size_t estimated_size(const Snapshot& snapshot, bool include_created) {
  constexpr std::size_t kSlack = 48;  // comment keywords, suffixes, quotes, a number
  std::size_t size = 8;
  for (const Family& family : snapshot) {
    size += 2 * (family.name.size() + kSlack) + family.help.size();
    std::size_t label_names_size = 0;
    for (const std::string& name : family.label_names) label_names_size += name.size() + 4;
    for (const Series& series : family.series) {
      std::size_t line = family.name.size() + label_names_size + kSlack;
      for (const std::string& value : series.label_values) line += value.size();
      if (series.exemplar) line += series.exemplar->label_value.size() + kSlack;
      size += include_created ? 2 * line : line;
    }
  }
  return size;
}

}  // namespace

bool is_valid_utf8(std::string_view bytes) {
  std::size_t at = 0;
  while ((at = skip_ascii(bytes, at)) < bytes.size()) {
    const Utf8Step step = next_utf8_step(bytes, at);
    if (!step.valid) return false;
    at += step.length;
  }
  return true;
}

std::size_t utf8_code_points(std::string_view bytes) {
  std::size_t count = 0;
  std::size_t at = 0;
  for (;;) {
    const std::size_t ascii_end = skip_ascii(bytes, at);
    count += ascii_end - at;
    at = ascii_end;
    if (at >= bytes.size()) return count;
    at += next_utf8_step(bytes, at).length;  // a whole character, or one U+FFFD's maximal subpart
    ++count;
  }
}

void append_sanitized_utf8(std::string& out, std::string_view bytes) {
  std::size_t valid_run_start = 0;
  std::size_t at = 0;
  while ((at = skip_ascii(bytes, at)) < bytes.size()) {
    const Utf8Step step = next_utf8_step(bytes, at);
    if (!step.valid) {
      out.append(bytes.substr(valid_run_start, at - valid_run_start));
      out.append(kReplacementCharacter);
      valid_run_start = at + step.length;
    }
    at += step.length;
  }
  out.append(bytes.substr(valid_run_start));
}

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_sanitized_utf8(out, bytes);
  return out;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  append_escaped(out, value, EscapeSet::label_value);
  return out;
}

std::string escape_help(std::string_view help, ExpositionFormat format) {
  std::string out;
  out.reserve(help.size());
  append_escaped(out, help,
                 format == ExpositionFormat::openmetrics ? EscapeSet::openmetrics_help : EscapeSet::prometheus_help);
  return out;
}

std::string render(const Snapshot& snapshot, const RenderOptions& options) {
  const bool openmetrics = options.format == ExpositionFormat::openmetrics;
  const bool include_created = openmetrics && options.include_created;
  const EscapeSet help_escapes = openmetrics ? EscapeSet::openmetrics_help : EscapeSet::prometheus_help;

  std::string out;
  out.reserve(estimated_size(snapshot, include_created));
  for (const Family& family : snapshot) {
    const bool counter = family.type == MetricType::counter;
    // Text 0.0.4 names the counter family by its sample name; OpenMetrics by the bare name.
    const std::string_view metadata_suffix = counter && !openmetrics ? "_total" : "";
    const std::string_view sample_suffix = counter ? "_total" : "";

    // An empty docstring would leave a trailing space; HELP is optional in both formats.
    if (!family.help.empty()) {
      out += "# HELP ";
      out += family.name;
      out += metadata_suffix;
      out += ' ';
      append_escaped(out, family.help, help_escapes);
      out += '\n';
    }
    out += "# TYPE ";
    out += family.name;
    out += metadata_suffix;
    out += counter ? " counter\n" : " gauge\n";

    const SampleFrame frame(family);
    const std::string sample_name = family.name + std::string(sample_suffix);
    const std::string created_name = family.name + "_created";
    for (const Series& series : family.series) {
      // Text 0.0.4 has no exemplars; OpenMetrics allows them on a counter's _total sample.
      const Exemplar* exemplar = counter && openmetrics && series.exemplar ? &*series.exemplar : nullptr;
      append_sample(out, sample_name, frame, series, series.value, exemplar);
      if (counter && include_created) append_sample(out, created_name, frame, series, series.created);
    }
  }
  if (openmetrics) out += "# EOF\n";
  return out;
}

}  // namespace nle
