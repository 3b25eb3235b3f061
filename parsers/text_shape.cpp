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
  if (s.empty() || s.front() != message.front()) return false;  // most candidates, cheaply
  if (s.size() < message.size() || s.substr(0, message.size()) != message) return false;
  if (s.size() == message.size()) return true;
  if (s[message.size()] != ' ') return false;
  std::size_t i = message.size() + 1;
  const std::size_t name_start = i;
  while (i < s.size() && is_ident_byte(s[i])) ++i;
  return i > name_start && i < s.size() && s[i] == '=';
}

// Is one of the event messages at the front of `s` (message_at())? Sets `message` to it.
bool event_message_at(std::string_view s, std::string_view& message) {
  for (std::string_view m : {kReportReceived, kGateHeld}) {
    if (message_at(s, m)) {
      message = m;
      return true;
    }
  }
  return false;
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
    if (event_message_at(rest.substr(candidate), message)) return candidate;
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

// The fields of a plain line: one with no '"' and no '{', so no Debug string, JSON value or span
// brace that the walks above must read around. In such a line every field is a '=' whose name
// (the run of identifier bytes before it) starts with a letter or '_' after a space, and a
// value runs to the next field's space; finding them all in one pass over the line, 64 bytes
// at a time, costs less than the search from each value's start for the next field. The same
// fields, in the same order, as next_field() finds from any value's start.
struct PlainFields {
  static constexpr std::size_t kMax = 64;  // more, and the general walk reads the line
  std::uint32_t space[kMax];               // the space before the field's name
  std::uint32_t eq[kMax];                  // its '='
  std::size_t count = 0;
};

#if defined(__x86_64__)
// Masks of 16 bytes: identifier bytes (kIdentBytes), '=', and the bytes that make a line not plain.
struct PlainMasks16 {
  unsigned ident, eq, special;
};
inline PlainMasks16 plain_masks16(__m128i x) {
  const __m128i lower = _mm_or_si128(x, _mm_set1_epi8(0x20));  // bytes >= 0x80 stay negative: no letter
  const __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)), _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1)));
  const __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
  const __m128i other = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('_')), _mm_cmpeq_epi8(x, _mm_set1_epi8('.')));
  const __m128i special = _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')), _mm_cmpeq_epi8(x, _mm_set1_epi8('{')));
  return {static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), other))),
          static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('=')))),
          static_cast<unsigned>(_mm_movemask_epi8(special))};
}
#endif

bool find_plain_fields(std::string_view s, PlainFields& f) {
  f.count = 0;
#if defined(__x86_64__)
  if (s.size() > UINT32_MAX) return false;
  const char* const d = s.data();
  const std::size_t n = s.size();
  std::uint64_t previous_ident = 0;  // of the block before: a name may begin there
  for (std::size_t base = 0; base < n; base += 64) {
    const char* block = d + base;
    alignas(16) char tail[64];
    if (n - base < 64) {
      std::memset(tail, 0, sizeof tail);  // NULs: neither '=', an identifier byte, nor special
      std::memcpy(tail, block, n - base);
      block = tail;
    }
    std::uint64_t ident = 0, eqs = 0, special = 0;
    for (int k = 0; k < 4; ++k) {
      const PlainMasks16 m = plain_masks16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16 * k)));
      ident |= static_cast<std::uint64_t>(m.ident) << (16 * k);
      eqs |= static_cast<std::uint64_t>(m.eq) << (16 * k);
      special |= static_cast<std::uint64_t>(m.special) << (16 * k);
    }
    if (special != 0) return false;
    for (; eqs != 0; eqs &= eqs - 1) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctzll(eqs));
      const std::size_t eq = base + bit;
      // The name: the identifier bytes just before the '=', back to the first byte that is not one.
      const std::uint64_t not_ident_below = bit == 0 ? 0 : ~ident & (~0ull >> (64 - bit));
      std::size_t name;
      if (not_ident_below != 0) {
        name = base + static_cast<std::size_t>(64 - __builtin_clzll(not_ident_below));
      } else if (~previous_ident != 0) {
        name = base - static_cast<std::size_t>(__builtin_clzll(~previous_ident));  // 0 in the first block
      } else {
        name = eq;
        while (name > 0 && is_ident_byte(d[name - 1])) --name;  // a name of more than 64 bytes
      }
      if (name == eq || name == 0 || d[name - 1] != ' ') continue;
      const char c = d[name];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) continue;
      if (f.count == PlainFields::kMax) return false;
      f.space[f.count] = static_cast<std::uint32_t>(name - 1);
      f.eq[f.count] = static_cast<std::uint32_t>(eq);
      ++f.count;
    }
    previous_ident = ident;
  }
  return true;
#else
  (void)s;
  return false;
#endif
}

// find_event_message() on a plain line: the candidates are the message start and each ": "
// before the first field that follows the candidate.
std::size_t find_plain_event_message(std::string_view rest, const PlainFields& f, std::string_view& message) {
  std::size_t candidate = 0;
  while (candidate < rest.size() && rest[candidate] == ' ') ++candidate;
  std::size_t field = 0;
  for (;;) {
    if (event_message_at(rest.substr(candidate), message)) return candidate;
    while (field < f.count && f.space[field] < candidate) ++field;
    const std::size_t fields_begin = field < f.count ? f.space[field] : rest.size();
    std::size_t j = candidate;
    for (;;) {
      const void* colon = j < fields_begin ? std::memchr(rest.data() + j, ':', fields_begin - j) : nullptr;
      if (colon == nullptr) return std::string_view::npos;  // fields begin, or the line ends
      j = static_cast<std::size_t>(static_cast<const char*>(colon) - rest.data());
      if (j + 1 < rest.size() && rest[j + 1] == ' ') break;
      ++j;
    }
    candidate = j + 2;
  }
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

// The slot of `f` a field named `name` fills, or nullptr; `identifier` says whether its Display
// value is an identifier, which ends at the first space. Found by the name's length first: asked
// of every field of every line read, and most names fill none. `details` and `report` fill one
// only when their value is a JSON object.
std::optional<std::string_view>* slot_of(EventFields& f, std::string_view name, bool is_json_object,
                                         bool& identifier) {
  const auto is = [&](std::string_view known) { return name == known; };
  identifier = false;
  switch (name.size()) {
    case 4:
      if (is("gate")) return identifier = true, &f.gate;
      return is("host") ? &f.host : nullptr;
    case 5:
      return is("event") ? (identifier = true, &f.event) : nullptr;
    case 6:
      return is_json_object && is("report") ? &f.report_json : nullptr;
    case 7:
      if (is("version")) return identifier = true, &f.version;
      return is_json_object && is("details") ? &f.details_json : nullptr;
    case 8:
      if (is("hostname")) return &f.hostname;
      return is("event_id") ? (identifier = true, &f.event_id) : nullptr;
    case 10:
      if (is("control_id")) return &f.control_id;
      return is("git_commit") ? (identifier = true, &f.git_commit) : nullptr;
    default:
      return nullptr;
  }
}

// An identifier's Display value, or a build-info token: up to the first space.
std::string_view first_token(std::string_view value) { return value.substr(0, value.find(' ')); }

// The first occurrence of a field wins: later ones are inside free text.
void assign(std::optional<std::string_view>* slot, std::string_view value) {
  if (slot != nullptr && !*slot) *slot = value;
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
      bool identifier = false;
      std::optional<std::string_view>* slot = slot_of(f, name, false, identifier);
      if (identifier) value = first_token(value);
      assign(slot, value);
      pos = next;  // already the next field (or the end)
      continue;
    }
    bool identifier = false;
    assign(slot_of(f, name, is_json_object, identifier), value);
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
      value = first_token(s.substr(value_start));
    }
    assign(name == "version" ? &f.version : &f.git_commit, value);
  }
}

// scan_fields() and scan_build_info() on a plain line, from its fields: those of the message's
// fields whose space is at or after `from`; build info from all of them (no braces: every field
// is outside spans).
void scan_plain_fields(std::string_view rest, const PlainFields& f, std::size_t from, EventFields& fields) {
  for (std::size_t k = 0; k < f.count; ++k) {
    if (f.space[k] < from) continue;
    const std::string_view name = rest.substr(f.space[k] + 1, f.eq[k] - f.space[k] - 1);
    bool identifier = false;
    std::optional<std::string_view>* slot = slot_of(fields, name, false, identifier);
    if (slot == nullptr || *slot) continue;
    const std::size_t value_start = f.eq[k] + 1;
    const std::size_t value_end = k + 1 < f.count ? f.space[k + 1] : rest.size();
    std::string_view value = rest.substr(value_start, value_end - value_start);
    if (identifier) value = first_token(value);
    *slot = value;
  }
}

void scan_plain_build_info(std::string_view rest, const PlainFields& f, EventFields& fields) {
  for (std::size_t k = 0; k < f.count; ++k) {
    const std::string_view name = rest.substr(f.space[k] + 1, f.eq[k] - f.space[k] - 1);
    if (name != "version" && name != "git_commit") continue;
    assign(name == "version" ? &fields.version : &fields.git_commit, first_token(rest.substr(f.eq[k] + 1)));
  }
}

}  // namespace

bool is_text_record_start(std::string_view line) { return find_level(line) != std::string_view::npos; }

std::size_t text_record_body(std::string_view line) { return find_level(line); }

bool text_starts_record(std::string_view line, Arena& arena) {
  // The level token sits near the start, so a long coloured line is first stripped only in part:
  // up to the first escape left in that part (where a sequence was cut, or a lone one), the part
  // reads as the whole line begins. A level found there is the level found in the whole line; if
  // none is found, a longer part and then the whole line decide. tracing's coloured timestamp and
  // level take ~52 bytes; a syslog prefix before them more.
  line = trim_front(line);
  const void* first_escape = std::memchr(line.data(), '\x1b', line.size());
  if (first_escape == nullptr) return !line.empty() && line.front() != '{' && is_text_record_start(line);
  const auto escape_at = static_cast<std::size_t>(static_cast<const char*>(first_escape) - line.data());
  for (const std::size_t part_size : {std::size_t{80}, std::size_t{192}}) {
    if (line.size() <= part_size || escape_at >= part_size) break;
    std::string_view part = strip_ansi(line.substr(0, part_size), arena);
    if (const void* esc = std::memchr(part.data(), '\x1b', part.size()); esc != nullptr) {
      part = part.substr(0, static_cast<std::size_t>(static_cast<const char*>(esc) - part.data()));
    }
    if (!part.empty() && part.front() != '{' && is_text_record_start(part)) return true;
  }
  line = strip_ansi(line, arena);
  return !line.empty() && line.front() != '{' && is_text_record_start(line);
}

namespace {

ShapeStatus read_text(std::string_view line, EventFields& fields, Arena& arena, bool plain_path, std::size_t body) {
  const std::size_t level_end = body != std::string_view::npos ? body : find_level(line);
  if (level_end == std::string_view::npos) return ShapeStatus::not_this;
  const std::string_view rest = line.substr(level_end);
  std::string_view message;
  if (PlainFields plain; plain_path && find_plain_fields(rest, plain)) {
    const std::size_t at = find_plain_event_message(rest, plain, message);
    if (at == std::string_view::npos) {
      scan_plain_build_info(rest, plain, fields);
    } else {
      fields.message = message;
      scan_plain_fields(rest, plain, at + message.size(), fields);
    }
    return ShapeStatus::fields;
  }
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

}  // namespace

ShapeStatus read_text_line(std::string_view line, EventFields& fields, Arena& arena, std::size_t body) {
  return read_text(line, fields, arena, true, body);
}

ShapeStatus read_text_line_by_walk(std::string_view line, EventFields& fields, Arena& arena) {
  return read_text(line, fields, arena, false, std::string_view::npos);
}

std::optional<ShapeStatus> read_text_line_if_plain(std::string_view line, EventFields& fields, Arena& arena) {
  const std::size_t level_end = find_level(line);
  if (PlainFields plain; level_end == std::string_view::npos || !find_plain_fields(line.substr(level_end), plain)) {
    return std::nullopt;
  }
  return read_text(line, fields, arena, true, level_end);
}

}  // namespace nle::parsers
