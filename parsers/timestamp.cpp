#include "parsers/timestamp.h"

#include <string.h>

#include <array>
#include <cstddef>
#include <cstring>

namespace nle {
namespace {

constexpr std::int64_t kMicrosPerSecond = 1'000'000;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// `count` decimal digits at `at`, or -1.
int digits(std::string_view s, std::size_t at, std::size_t count) {
  if (at + count > s.size()) return -1;
  int value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (!is_digit(s[i])) return -1;
    value = value * 10 + (s[i] - '0');
  }
  return value;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// Skips SGR escapes (`ESC [ ... m`) at `at`: the fmt layer colours the timestamp.
std::size_t skip_sgr(std::string_view s, std::size_t at) {
  while (at + 1 < s.size() && s[at] == '\x1b' && s[at + 1] == '[') {
    std::size_t end = at + 2;
    while (end < s.size() && (is_digit(s[end]) || s[end] == ';')) ++end;
    if (end >= s.size() || s[end] != 'm') return at;
    at = end + 1;
  }
  return at;
}

// The string value of JSON member `key` (given with its quotes) as raw bytes up to the closing
// quote; nullopt when absent. Member names are matched with their quotes, so a `"timestamp"`
// inside an escaped string (a journald MESSAGE holding the CP's JSON) is `\"timestamp\"`, no match.
// memmem, not string_view::find: a JSON line is full of quotes, each a false start for find().
std::optional<std::string_view> json_string_member(std::string_view line, std::string_view key) {
  const void* found = ::memmem(line.data(), line.size(), key.data(), key.size());
  if (found == nullptr) return std::nullopt;
  std::size_t at = static_cast<std::size_t>(static_cast<const char*>(found) - line.data()) + key.size();
  while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
  if (at >= line.size() || line[at] != ':') return std::nullopt;
  ++at;
  while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
  if (at >= line.size() || line[at] != '"') return std::nullopt;
  const std::size_t begin = at + 1;
  const std::size_t end = line.find('"', begin);
  if (end == std::string_view::npos) return std::nullopt;
  return line.substr(begin, end - begin);
}

// `journalctl -o short` / `-o short-precise`: "Mmm dd hh:mm:ss[.ffffff] host ident[pid]: ".
// Returns the offset just past the prefix, or npos.
std::size_t syslog_prefix_end(std::string_view line) {
  static constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (line.size() < 16) return std::string_view::npos;
  bool month = false;
  for (std::string_view m : kMonths) month = month || line.substr(0, 3) == m;
  if (!month || line[3] != ' ' || line[6] != ' ' || line[9] != ':' || line[12] != ':') return std::string_view::npos;
  const std::size_t limit = line.size() < 256 ? line.size() : 256;
  const std::size_t colon = line.substr(0, limit).find(": ");
  return colon == std::string_view::npos ? colon : colon + 2;
}

std::optional<LogTimeMicros> json_timestamp(std::string_view line) {
  // tracing's JSON formatter writes its timestamp first; no journald field is named so.
  constexpr std::string_view kTracingStart = "{\"timestamp\":\"";
  if (line.substr(0, kTracingStart.size()) == kTracingStart) return parse_rfc3339_prefix(line.substr(kTracingStart.size()));
  if (auto realtime = json_string_member(line, "\"__REALTIME_TIMESTAMP\"")) {
    if (realtime->empty() || realtime->size() > 18) return std::nullopt;
    std::int64_t micros = 0;
    for (char c : *realtime) {
      if (!is_digit(c)) return std::nullopt;
      micros = micros * 10 + (c - '0');
    }
    return micros;
  }
  if (auto timestamp = json_string_member(line, "\"timestamp\"")) return parse_rfc3339_prefix(*timestamp);
  return std::nullopt;
}

// Days since 1970-01-01 of the `YYYY-MM-DD` at the front of `s`, or nullopt. Lines in a row nearly
// always share their date, so the last one read is remembered (per thread): a timestamp per
// counted event (an exemplar's) then costs no calendar arithmetic.
std::optional<std::int64_t> date_days(std::string_view s) {
  struct LastDate {
    std::array<char, 10> text{};
    std::int64_t days = 0;
    bool set = false;
  };
  thread_local LastDate last;
  if (s.size() < last.text.size()) return std::nullopt;
  if (last.set && std::memcmp(s.data(), last.text.data(), last.text.size()) == 0) return last.days;
  const int year = digits(s, 0, 4);
  const int month = digits(s, 5, 2);
  const int day = digits(s, 8, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31 || s[4] != '-' || s[7] != '-') return std::nullopt;
  std::memcpy(last.text.data(), s.data(), last.text.size());
  last.days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  last.set = true;
  return last.days;
}

}  // namespace

std::optional<LogTimeMicros> parse_rfc3339_prefix(std::string_view s) {
  const std::optional<std::int64_t> days = date_days(s);
  const int hour = digits(s, 11, 2);
  const int minute = digits(s, 14, 2);
  const int second = digits(s, 17, 2);
  if (!days || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60 ||
      (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  std::size_t at = 19;
  std::int64_t micros = 0;
  if (at < s.size() && (s[at] == '.' || s[at] == ',')) {
    ++at;
    std::int64_t scale = 100000;
    const std::size_t first = at;
    for (; at < s.size() && is_digit(s[at]); ++at) {
      micros += (s[at] - '0') * scale;
      scale /= 10;
    }
    if (at == first) return std::nullopt;
  }
  std::int64_t offset_seconds = 0;
  if (at < s.size() && (s[at] == 'Z' || s[at] == 'z')) {
    ++at;
  } else if (at < s.size() && (s[at] == '+' || s[at] == '-')) {
    const int sign = s[at] == '-' ? -1 : 1;
    const int offset_hours = digits(s, at + 1, 2);
    const bool colon = at + 3 < s.size() && s[at + 3] == ':';
    const int offset_minutes = digits(s, at + (colon ? 4 : 3), 2);
    if (offset_hours < 0 || offset_minutes < 0 || offset_hours > 23 || offset_minutes > 59) return std::nullopt;
    offset_seconds = sign * (offset_hours * 3600 + offset_minutes * 60);
    at += colon ? 6 : 5;
  }
  // The time must end here: "2026-11-20T08:14:03Zebra" is no timestamp.
  if (at < s.size() && (is_digit(s[at]) || (s[at] >= 'A' && s[at] <= 'Z') || (s[at] >= 'a' && s[at] <= 'z'))) {
    return std::nullopt;
  }
  const std::int64_t seconds = *days * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  return seconds * kMicrosPerSecond + micros;
}

std::optional<LogTimeMicros> line_timestamp(std::string_view line) {
  std::size_t at = 0;
  while (at < line.size() && (line[at] == ' ' || line[at] == '\t' || line[at] == '\x1e')) ++at;  // json-seq's RS
  if (at < line.size() && line[at] == '{') return json_timestamp(line.substr(at));
  at = skip_sgr(line, at);
  if (auto time = parse_rfc3339_prefix(line.substr(at))) return time;
  const std::size_t behind = syslog_prefix_end(line);
  if (behind == std::string_view::npos) return std::nullopt;
  const std::string_view rest = line.substr(behind);
  if (!rest.empty() && rest.front() == '{') return json_timestamp(rest);
  return parse_rfc3339_prefix(rest.substr(skip_sgr(rest, 0)));
}

}  // namespace nle
