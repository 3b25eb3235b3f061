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
  for (const char* p = v - 2; p >= begin && p >= v - 6 && *p != '\n'; --p) {
    if (*p == '\x1b') return true;
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
  constexpr std::string_view kBefore = "\"message\":\"";
  const char* after = r + kReportReceived.size();
  return static_cast<std::size_t>(r - begin) >= kBefore.size() &&
         std::memcmp(r - kBefore.size(), kBefore.data(), kBefore.size()) == 0 && after < end && *after == '"';
}

}  // namespace nle::parsers
