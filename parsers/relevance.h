// Where a relevance needle counts (line_parser.h's needle_occurrence_counts()), as inline
// byte tests shared by the parser's relevance test and the SIMD scan's hit check, which calls
// them for most lines of a busy CP. Pure; each reads only the bytes around a needle, never past a
// "\n" nor outside [begin, end).
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

#include "parsers/shapes.h"

namespace nle::parsers {

inline bool is_name_byte(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Is the `version` at `v` (in a line, or in a block of lines: nothing here looks past a "\n") a
// field name, as JSON (`"version"`, `\"version\"` inside journald's MESSAGE string) or text
// (`version=`, coloured `version\x1b[0m`), but not `agent_version` or prose?
inline bool is_version_field_name(const char* begin, const char* end, const char* v) {
  constexpr std::size_t kVersionSize = 7;
  const char* after = v + kVersionSize;
  if (after >= end || !(*after == '"' || *after == '=' || *after == '\\' || *after == '\x1b')) return false;
  if (v == begin || v[-1] == '\n' || !is_name_byte(v[-1])) return true;
  // Coloured field names start right after an SGR sequence such as ESC[3m.
  if (v[-1] != 'm') return false;
  // Back from v - 2 by index: a pointer before `begin` may not even be formed.
  for (std::ptrdiff_t back = 2; back <= 6 && back <= v - begin && v[-back] != '\n'; ++back) {
    if (v[-back] == '\x1b') return true;
  }
  return false;
}

// Does the value of the `version` field name ending at `after` start with `HTTP/`? tower-http's
// request spans record the request's protocol as `version` (`"version":"HTTP/1.1"`,
// `version=HTTP/1.1`): on a busy CP most lines carry one, and none is the CP's version. Between the
// name and the value only the separators of the shapes are stepped over: quotes, backslashes
// (journald's escaped JSON), `:`, `=` and colour escapes. Never looks past a "\n".
inline bool version_value_is_http(const char* after, const char* end) {
  const char* p = after;
  for (int steps = 0; p < end && steps < 32; ++steps) {
    const char c = *p;
    if (c == '"' || c == '\\' || c == ':' || c == '=') {
      ++p;
    } else if (c == '\x1b') {
      // ESC [ parameters m, as strip_ansi() removes them.
      const char* q = p + 1;
      if (q >= end || *q != '[') return false;
      ++q;
      while (q < end && ((*q >= '0' && *q <= '9') || *q == ';')) ++q;
      if (q >= end || *q != 'm') return false;
      p = q + 1;
    } else {
      break;
    }
  }
  constexpr std::string_view kHttp = "HTTP/";
  return static_cast<std::size_t>(end - p) >= kHttp.size() && std::memcmp(p, kHttp.data(), kHttp.size()) == 0;
}

// A `version` field that may be build info: a field name whose value is not a request's protocol.
inline bool is_build_info_version_at(const char* begin, const char* end, const char* v) {
  return is_version_field_name(begin, end, v) && !version_value_is_http(v + 7, end);
}

// Is the `report received` at `r` a tracing JSON line's message (`"message":"report received"`)?
// Such a line is one whole record: it counts only if it also spells a counting value. Any other
// `report received` (a text record, whose fields may go on in continuation lines; journald's
// escaped JSON) is a candidate by itself, as before.
inline bool is_json_report_message(const char* begin, const char* end, const char* r) {
  const auto before = [&](std::string_view text) {
    return static_cast<std::size_t>(r - begin) >= text.size() && std::memcmp(r - text.size(), text.data(), text.size()) == 0;
  };
  const char* after = r + kReportReceived.size();
  if (before("\"message\":\"")) return after < end && *after == '"';
  // The same line as a journald MESSAGE string: escaped once. Decoded, it is the line above.
  if (before("\\\"message\\\":\\\"")) return end - after >= 2 && after[0] == '\\' && after[1] == '"';
  return false;
}

// journald's byte-array spelling of a MESSAGE (`[50,48,...]`, compact or `, `-spaced): is the
// encoded `version` at [v, v_end) one that may be a build-info field once decoded? The bytes
// around it are decoded into a small window (6 bytes back, as far as a colour escape before a
// name reaches; 40 on) and asked as is_build_info_version_at() asks raw bytes. Anything that does
// not decode cleanly counts: this may only ever say yes too often.
inline bool encoded_version_counts(const char* begin, const char* end, const char* v, const char* v_end) {
  constexpr int kBack = 6;
  constexpr int kOn = 40;
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  unsigned char back[kBack];
  int nb = 0;
  for (const char* p = v; nb < kBack;) {  // p: the start of the last token decoded
    const char* q = p;
    if (q > begin && q[-1] == ' ') --q;
    if (q == begin || q[-1] != ',') break;  // the array's first value, or not a list here
    --q;
    const char* digits_end = q;
    while (q > begin && is_digit(q[-1]) && digits_end - q < 4) --q;
    const long length = digits_end - q;
    if (length == 0 || length > 3) return true;
    unsigned value = 0;
    for (const char* d = q; d < digits_end; ++d) value = value * 10 + static_cast<unsigned>(*d - '0');
    if (value > 255) return true;
    back[nb++] = static_cast<unsigned char>(value);
    p = q;
  }
  char window[kBack + 7 + kOn];
  int n = 0;
  for (int k = nb - 1; k >= 0; --k) window[n++] = static_cast<char>(back[k]);
  const int name = n;
  for (char c : std::string_view("version")) window[n++] = c;
  for (const char* p = v_end; n < static_cast<int>(sizeof window);) {
    const char* q = p;
    if (q == end || *q != ',') break;  // the array's last value, or the needle ended mid-number
    ++q;
    if (q < end && *q == ' ') ++q;
    const char* digits = q;
    while (q < end && is_digit(*q) && q - digits < 4) ++q;
    const long length = q - digits;
    if (length == 0 || length > 3) return true;
    unsigned value = 0;
    for (const char* d = digits; d < q; ++d) value = value * 10 + static_cast<unsigned>(*d - '0');
    if (value > 255) return true;
    window[n++] = static_cast<char>(value);
    p = q;
  }
  // Not on a value's bounds ("2118,..." or "...,1105"): not what it seems; let the parser see.
  if ((v > begin && is_digit(v[-1])) || (v_end < end && is_digit(*v_end))) return true;
  // A window cut short hides no `HTTP/` from the test: a value it cannot see counts.
  return is_build_info_version_at(window, window + n, window + name);
}

}  // namespace nle::parsers
