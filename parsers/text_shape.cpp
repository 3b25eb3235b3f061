// tracing-subscriber's fmt text:
//   [TIMESTAMP] LEVEL [span{k=v}:span2: ][target: ]message key=value key=value ...
// possibly behind `journalctl -o short`'s `Mon DD HH:MM:SS host ident[pid]: ` prefix.
//
// Text is ambiguous by nature, so each step leans on what we know rather than on separators:
// - The level token (TRACE DEBUG INFO WARN ERROR) must be among the first three tokens; this is
//   what tells a CP line from the continuation lines of a multi-line message.
// - The message is found by trying the known event messages after the level and after every
//   ": " outside span braces, since targets, spans and messages all may contain ": ".
// - The message comes before the first `key=` field: an event message inside a field's free
//   text ("error=...: dispatch: held by fleet-level gate") is not the line's message.
// - Display values are unquoted and may contain spaces, so a value ends only where the next
//   field name follows (` name=`, a Rust identifier), not at a space. Values of fields that are
//   identifiers (event, gate, version, git_commit, event_id) end at the first space.
// - Debug values are quoted Rust strings and are decoded, so quotes and `k=v` inside them are
//   inert. The first occurrence of a field wins: later ones are inside free text.

#include <array>
#include <cstdint>
#include <cstring>

#include "parsers/shapes.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace nle::parsers {
namespace {

// A table, not a chain of comparisons: the field walk asks this of most bytes of a counting line.
constexpr std::array<bool, 256> kIdentBytes = [] {
  std::array<bool, 256> table{};
  for (int c = 0; c < 256; ++c) {
    table[static_cast<std::size_t>(c)] =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
  }
  return table;
}();

bool is_ident_byte(char c) { return kIdentBytes[static_cast<unsigned char>(c)]; }

// Fixed-size compares, not a string compare per level: asked of up to three words per line.
bool is_level(std::string_view word) {
  const char* w = word.data();
  if (word.size() == 4) return std::memcmp(w, "INFO", 4) == 0 || std::memcmp(w, "WARN", 4) == 0;
  if (word.size() != 5) return false;
  return std::memcmp(w, "DEBUG", 5) == 0 || std::memcmp(w, "ERROR", 5) == 0 || std::memcmp(w, "TRACE", 5) == 0;
}

// Returns the offset just past the level token, or npos.
std::size_t find_level_in_order(std::string_view s) {
  std::size_t i = 0;
  for (int token = 0; token < 3; ++token) {
    while (i < s.size() && s[i] == ' ') ++i;
    const std::size_t start = i;
    const void* space = std::memchr(s.data() + i, ' ', s.size() - i);  // a timestamp is ~30 bytes
    i = space != nullptr ? static_cast<std::size_t>(static_cast<const char*>(space) - s.data()) : s.size();
    const std::size_t length = i - start;
    if (length == 0) return std::string_view::npos;
    if ((length != 4 && length != 5) || i == s.size()) continue;  // no level, or nothing after it
    if (is_level(s.substr(start, length))) return i;
  }
  return std::string_view::npos;
}

// The same, from a mask of the spaces among the first 64 bytes: every line is asked this several
// times (the screen, the next line's, the reader), and a memchr call per token cost more than
// the tokens. A token that does not end inside the window leaves it to the loop above.
std::size_t find_level_in(std::string_view s) {
#if defined(__x86_64__)
  if (s.size() >= 64) {
    std::uint64_t spaces = 0;
    for (int k = 0; k < 4; ++k) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + 16 * k));
      spaces |= static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(' ')))))
                << (16 * k);
    }
    std::size_t i = 0;
    for (int token = 0; token < 3; ++token) {
      const std::uint64_t word_bytes = ~spaces >> i;  // i < 64: the last token ended at a space
      if (word_bytes == 0) break;
      i += static_cast<std::size_t>(__builtin_ctzll(word_bytes));
      const std::uint64_t spaces_after = spaces >> i;
      if (spaces_after == 0) break;
      const std::size_t start = i;
      i += static_cast<std::size_t>(__builtin_ctzll(spaces_after));
      const std::size_t length = i - start;  // at least 1, and a space follows
      if ((length == 4 || length == 5) && is_level(s.substr(start, length))) return i;
      if (token == 2) return std::string_view::npos;
    }
  }
#endif
  return find_level_in_order(s);
}

std::size_t find_level(std::string_view line) {
  std::size_t at = find_level_in(line);
  if (at != std::string_view::npos) return at;
  // A syslog prefix (`journalctl -o short`) ends at the first ": " of the line.
  const std::size_t limit = line.size() < 256 ? line.size() : 256;
  const std::size_t colon = line.substr(0, limit).find(": ");
  if (colon == std::string_view::npos) return std::string_view::npos;
  at = find_level_in(line.substr(colon + 2));
  return at == std::string_view::npos ? at : colon + 2 + at;
}

// The message is exactly `message`: it ends the line or a `key=` field follows, so a longer
// message that merely starts with it ("report received twice, dropping duplicate") is not it.
bool message_at(std::string_view s, std::string_view message) {
  if (s.size() < message.size() || s.substr(0, message.size()) != message) return false;
  if (s.size() == message.size()) return true;
  if (s[message.size()] != ' ') return false;
  std::size_t i = message.size() + 1;
  const std::size_t name_start = i;
  while (i < s.size() && is_ident_byte(s[i])) ++i;
  return i > name_start && i < s.size() && s[i] == '=';
}

// ` name=` at `pos` (pos at the space): returns the field name, else empty. Names are Rust
// identifiers (dots allowed, as tracing allows), so ` (MaxAuthTries=4)` inside a value is not one.
std::string_view field_at(std::string_view s, std::size_t pos) {
  if (pos >= s.size() || s[pos] != ' ') return {};
  std::size_t i = pos + 1;
  if (i >= s.size() || !((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_')) return {};
  while (i < s.size() && is_ident_byte(s[i])) ++i;
  if (i >= s.size() || s[i] != '=') return {};
  return s.substr(pos + 1, i - pos - 1);
}

// The first ` name=` at or after `from` (its space), or s.size(); `*eq` is set to its '='. Found
// from the '=' rather than the space: a field's name is the run of identifier bytes just before
// its '=', so each '=' has one possible start, and '=' is far rarer than ' ' in a line. Fields come
// in the same order either way (the name run of one field ends before the next field's space).
std::size_t next_field(std::string_view s, std::size_t from, std::size_t* eq_at = nullptr) {
  for (std::size_t from_eq = from; from_eq < s.size();) {
    const void* hit = std::memchr(s.data() + from_eq, '=', s.size() - from_eq);
    if (hit == nullptr) break;
    const std::size_t eq = static_cast<std::size_t>(static_cast<const char*>(hit) - s.data());
    from_eq = eq + 1;
    std::size_t name = eq;
    while (name > from + 1 && is_ident_byte(s[name - 1])) --name;
    if (name == eq || name < from + 1 || s[name - 1] != ' ') continue;
    const char c = s[name];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
      if (eq_at != nullptr) *eq_at = eq;
      return name - 1;
    }
  }
  return s.size();
}

// The name of the field next_field() found at `pos`, its '=' at `eq`: what field_at() would say.
std::string_view field_name(std::string_view s, std::size_t pos, std::size_t eq) {
  return s.substr(pos + 1, eq - pos - 1);
}

// After the level: the offset where an event message starts (and which one), or npos.
std::size_t find_event_message(std::string_view rest, std::string_view& message) {
  std::size_t i = 0;
  while (i < rest.size() && rest[i] == ' ') ++i;
  int depth = 0;
  bool quoted = false;
  for (std::size_t candidate = i; candidate != std::string_view::npos;) {
    for (std::string_view m : {kReportReceived, kGateHeld}) {
      if (message_at(rest.substr(candidate), m)) {
        message = m;
        return candidate;
      }
    }
    // Next ": " outside span braces and quotes.
    std::size_t j = candidate;
    candidate = std::string_view::npos;
    for (; j + 1 < rest.size(); ++j) {
      const char c = rest[j];
      if (quoted) {
        if (c == '\\') ++j;
        else if (c == '"') quoted = false;
      } else if (c == '"') {
        quoted = true;
      } else if (c == '{') {
        ++depth;
      } else if (c == '}') {
        if (depth > 0) --depth;
      } else if (c == ':' && rest[j + 1] == ' ' && depth == 0) {
        candidate = j + 2;
        break;
      } else if (c == ' ' && depth == 0 && !field_at(rest, j).empty()) {
        return std::string_view::npos;  // fields have begun: a message after this is a value's text
      }
    }
  }
  return std::string_view::npos;
}

// A JSON object value (`details={"control_id":"x"}`): its end, string-aware, or npos.
std::size_t json_object_end(std::string_view s, std::size_t start) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = start; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}' && --depth == 0) {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

bool is_identifier_valued(std::string_view name) {
  return name == "event" || name == "gate" || name == "version" || name == "git_commit" || name == "event_id";
}

void assign(EventFields& f, std::string_view name, std::string_view value, bool is_json_object) {
  auto set = [&](std::optional<std::string_view>& slot) {
    if (!slot) slot = value;
  };
  if (name == "hostname") set(f.hostname);
  else if (name == "event") set(f.event);
  else if (name == "control_id") set(f.control_id);
  else if (name == "gate") set(f.gate);
  else if (name == "version") set(f.version);
  else if (name == "git_commit") set(f.git_commit);
  else if (name == "event_id") set(f.event_id);
  else if (name == "host") set(f.host);
  else if (name == "details" && is_json_object) set(f.details_json);
  else if (name == "report" && is_json_object) set(f.report_json);
}

// `fields` is what follows the message: ` key=value key=value ...`.
void scan_fields(std::string_view s, EventFields& f, Arena& arena) {
  std::size_t eq = 0;
  std::size_t pos = next_field(s, 0, &eq);
  while (pos < s.size()) {
    const std::string_view name = field_name(s, pos, eq);
    const std::size_t value_start = pos + 1 + name.size() + 1;
    std::size_t next = std::string_view::npos;
    std::string_view value;
    bool is_json_object = false;
    if (value_start < s.size() && s[value_start] == '"') {
      std::size_t consumed = 0;
      if (auto decoded = decode_rust_debug_string(s.substr(value_start), consumed, arena)) {
        value = *decoded;
        next = value_start + consumed;
      }
    } else if (value_start < s.size() && s[value_start] == '{') {
      const std::size_t end = json_object_end(s, value_start);
      if (end != std::string_view::npos && (end == s.size() || s[end] == ' ')) {
        value = s.substr(value_start, end - value_start);
        is_json_object = true;
        next = end;
      }
    }
    if (next == std::string_view::npos) {
      next = next_field(s, value_start, &eq);
      value = s.substr(value_start, next - value_start);
      if (is_identifier_valued(name)) value = value.substr(0, value.find(' '));
      assign(f, name, value, false);
      pos = next;  // already the next field (or the end)
      continue;
    }
    assign(f, name, value, is_json_object);
    pos = next_field(s, next, &eq);
  }
}

bool contains(std::string_view haystack, std::string_view needle) { return contains_bytes(haystack, needle); }

// Outside span braces: the `version=` / `git_commit=` fields of a line whose message we do not
// know (a startup line), each a quoted Debug string or a token.
void scan_build_info(std::string_view s, EventFields& f, Arena& arena) {
  int depth = 0;
  std::size_t counted = 0;  // braces of s[0, counted) are in depth
  std::size_t eq = 0;
  for (std::size_t i = next_field(s, 0, &eq); i < s.size(); i = next_field(s, i + 1, &eq)) {
    const std::string_view name = field_name(s, i, eq);
    if (name != "version" && name != "git_commit") continue;
    for (; counted < i; ++counted) {
      if (s[counted] == '{') ++depth;
      else if (s[counted] == '}' && depth > 0) --depth;
    }
    if (depth != 0) continue;
    const std::size_t value_start = i + 1 + name.size() + 1;
    std::string_view value;
    std::size_t consumed = 0;
    if (value_start < s.size() && s[value_start] == '"') {
      auto decoded = decode_rust_debug_string(s.substr(value_start), consumed, arena);
      if (!decoded) continue;
      value = *decoded;
    } else {
      const std::size_t end = s.find(' ', value_start);
      value = s.substr(value_start, end == std::string_view::npos ? end : end - value_start);
    }
    assign(f, name, value, false);
  }
}

}  // namespace

bool is_text_record_start(std::string_view line) { return find_level(line) != std::string_view::npos; }

std::size_t text_record_body(std::string_view line) { return find_level(line); }

bool text_starts_record(std::string_view line, Arena& arena) {
  // The level token sits near the start, so a long coloured line is first stripped only in part:
  // up to the first escape left in that part (where a sequence was cut, or a lone one), the part
  // reads as the whole line begins. A level found there is the level found in the whole line; if
  // none is found, the whole line decides.
  constexpr std::size_t kPart = 192;
  line = trim_front(line);
  if (line.size() > kPart && std::memchr(line.data(), '\x1b', kPart) != nullptr) {
    std::string_view part = strip_ansi(line.substr(0, kPart), arena);
    if (const void* esc = std::memchr(part.data(), '\x1b', part.size()); esc != nullptr) {
      part = part.substr(0, static_cast<std::size_t>(static_cast<const char*>(esc) - part.data()));
    }
    if (!part.empty() && part.front() != '{' && is_text_record_start(part)) return true;
  }
  if (std::memchr(line.data(), '\x1b', line.size()) != nullptr) line = strip_ansi(line, arena);
  return !line.empty() && line.front() != '{' && is_text_record_start(line);
}

ShapeStatus read_text_line(std::string_view line, EventFields& fields, Arena& arena) {
  const std::size_t level_end = find_level(line);
  if (level_end == std::string_view::npos) return ShapeStatus::not_this;
  const std::string_view rest = line.substr(level_end);
  std::string_view message;
  // Only a line that spells an event message can have one: most lines do not, and finding the
  // message walks the line byte by byte.
  const bool may_have_message = contains(rest, kReportReceived) || contains(rest, kGateHeld);
  const std::size_t at = may_have_message ? find_event_message(rest, message) : std::string_view::npos;
  if (at == std::string_view::npos) {
    scan_build_info(rest, fields, arena);
    return ShapeStatus::fields;
  }
  fields.message = message;
  scan_fields(rest.substr(at + message.size()), fields, arena);
  return ShapeStatus::fields;
}

}  // namespace nle::parsers
