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
template <std::size_t N>
bool message_at(std::string_view s, const char (&spelled)[N]) {
  constexpr std::size_t kSize = N - 1;
  const std::string_view message(spelled, kSize);
  if (s.empty() || s.front() != message.front()) return false;  // most candidates, cheaply
  if (s.size() < kSize || std::memcmp(s.data(), spelled, kSize) != 0) return false;  // inlined: a known size
  if (s.size() == message.size()) return true;
  if (s[message.size()] != ' ') return false;
  std::size_t i = message.size() + 1;
  const std::size_t name_start = i;
  while (i < s.size() && is_ident_byte(s[i])) ++i;
  return i > name_start && i < s.size() && s[i] == '=';
}

// Is one of the event messages at the front of `s` (message_at())? Sets `message` to it.
bool event_message_at(std::string_view s, std::string_view& message) {
  static_assert(kReportReceived == "report received" && kGateHeld == "dispatch: held by fleet-level gate");
  if (message_at(s, "report received")) {
    message = kReportReceived;
    return true;
  }
  if (message_at(s, "dispatch: held by fleet-level gate")) {
    message = kGateHeld;
    return true;
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

// Byte classes of a whole plain line, a bit per byte, from one pass: where the plain path finds
// the fields ('=' and identifier bytes). Longer lines take the walk (a 4-64 KiB value is rare,
// and the walk is linear too).
struct LineMasks {
  static constexpr std::size_t kMaxBytes = 4096;
  static constexpr std::size_t kWords = kMaxBytes / 64;
  std::size_t size = 0;
  std::uint64_t ident[kWords];
  std::uint64_t eq[kWords];
};

#if defined(__x86_64__)
// Masks of 32 bytes: identifier bytes (kIdentBytes), '=', and the bytes that make a line not
// plain ('"', '{', NUL, ESC). AVX2 only: without it, the walk reads every line (the same fields,
// found slower).
struct Masks32 {
  std::uint32_t ident, eq, special;
};
// Byte classes by table: a byte's class bits are lo[byte & 15] & hi[byte >> 4], so one pair of
// shuffles classifies 32 bytes. Bits 0-4: identifier bytes ('.', digits, A-O a-o, P-Z _, p-z);
// bit 6: NUL or ESC (and VT, DLE, which the same nibbles spell: a line holding one
// is merely read the slow way); bit 7: '"'. Bytes of 0x80 and above are in no class.
constexpr std::array<char, 16> kLowNibbleClasses = [] {
  std::array<char, 16> t{};
  for (int l = 0; l < 16; ++l) {
    int bits = 0;
    if (l == 0xE) bits |= 1;                  // '.'
    if (l <= 9) bits |= 2;                    // '0'-'9'
    if (l >= 1) bits |= 4;                    // 'A'-'O', 'a'-'o'
    if (l <= 0xA || l == 0xF) bits |= 8;      // 'P'-'Z', '_'
    if (l <= 0xA) bits |= 16;                 // 'p'-'z'
    if (l == 0 || l == 0xB) bits |= 64;       // NUL, ESC
    if (l == 2) bits |= 128;                  // '"'
    t[static_cast<std::size_t>(l)] = static_cast<char>(bits);
  }
  return t;
}();
constexpr std::array<char, 16> kHighNibbleClasses = {
    64, 64, static_cast<char>(1 | 128), 2, 4, 8, 4, 16, 0, 0, 0, 0, 0, 0, 0, 0};

// The vectors masks32() needs, made once per line: the compiler would make them again each round.
struct ClassVectors {
  __m256i nibble, low, high, ident, special, equals, brace;
};
__attribute__((target("avx2"))) inline __m256i table(const std::array<char, 16>& t) {
  return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.data())));
}
__attribute__((target("avx2"))) inline ClassVectors class_vectors() {
  return {_mm256_set1_epi8(0x0f), table(kLowNibbleClasses), table(kHighNibbleClasses), _mm256_set1_epi8(0x1f),
          _mm256_set1_epi8(static_cast<char>(0xc0)), _mm256_set1_epi8('='), _mm256_set1_epi8('{')};
}
__attribute__((target("avx2"))) inline Masks32 masks32(const char* p, const ClassVectors& v) {
  const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i classes = _mm256_and_si256(_mm256_shuffle_epi8(v.low, _mm256_and_si256(x, v.nibble)),
                                           _mm256_shuffle_epi8(v.high, _mm256_and_si256(_mm256_srli_epi16(x, 4), v.nibble)));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i not_ident = _mm256_cmpeq_epi8(_mm256_and_si256(classes, v.ident), zero);
  const __m256i not_special = _mm256_cmpeq_epi8(_mm256_and_si256(classes, v.special), zero);
  const __m256i brace = _mm256_cmpeq_epi8(x, v.brace);
  return {~static_cast<std::uint32_t>(_mm256_movemask_epi8(not_ident)),
          static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, v.equals))),
          ~static_cast<std::uint32_t>(_mm256_movemask_epi8(not_special)) |
              static_cast<std::uint32_t>(_mm256_movemask_epi8(brace))};
}

// Fills `m` for a plain `s`: false at the first '"', '{', NUL or ESC (or VT, DLE: see the
// tables), or when `s` is longer than LineMasks holds, or without AVX2. Never reads outside `s`:
// the last partial 32 bytes are loaded ending at its end (or, in a line shorter than that, from a
// padded copy) and their masks shifted into place.
__attribute__((target("avx2"))) bool line_masks_avx2(std::string_view s, LineMasks& m) {
  ClassVectors v = class_vectors();
  // Opaque to the optimiser, so they stay in registers: GCC 12 otherwise builds each constant
  // again in every round of the loop (three instructions apiece).
  __asm__("" : "+x"(v.nibble), "+x"(v.low), "+x"(v.high), "+x"(v.ident), "+x"(v.special), "+x"(v.equals), "+x"(v.brace));
  const std::size_t n = s.size();
  m.size = n;
  // The last 1-32 bytes, from `at`: loaded ending at the line's end (or padded, in a line shorter
  // than 32 bytes) and shifted into place.
  const auto last = [&](std::size_t at) __attribute__((target("avx2"))) {
    const std::size_t left = n - at;
    if (n < 32) {
      alignas(32) char padded[32];
      std::memset(padded, '\x01', sizeof padded);  // in no class (a NUL would be one)
      std::memcpy(padded, s.data(), n);
      return masks32(padded, v);
    }
    const Masks32 c = masks32(s.data() + n - 32, v);
    const unsigned before = static_cast<unsigned>(32 - left);  // bytes of the load before `at`
    return Masks32{c.ident >> before, c.eq >> before, c.special >> before};
  };
  for (std::size_t w = 0; w * 64 < n; ++w) {
    const std::size_t base = w * 64;
    Masks32 low, high{};
    if (n - base >= 64) {
      low = masks32(s.data() + base, v);
      high = masks32(s.data() + base + 32, v);
    } else if (n - base > 32) {
      low = masks32(s.data() + base, v);
      high = last(base + 32);
    } else {
      low = last(base);
    }
    if ((low.special | high.special) != 0) return false;
    m.ident[w] = low.ident | std::uint64_t{high.ident} << 32;
    m.eq[w] = low.eq | std::uint64_t{high.eq} << 32;
  }
  return true;
}

bool line_masks(std::string_view s, LineMasks& m) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2 && s.size() <= LineMasks::kMaxBytes && line_masks_avx2(s, m);
}
#else
bool line_masks(std::string_view, LineMasks&) { return false; }
#endif

// The fields of `rest` = s.substr(from) on a plain line, from the masks of s: every '=' whose
// name (the run of identifier bytes before it) starts with a letter or '_' after a space. A value
// runs to the next field's space. Offsets in `f` are of `rest`. False when there are too many.
// s[from - 1] ... s[from] is the space after the level token, so no name reaches back past it.
bool plain_fields_from_masks(std::string_view s, const LineMasks& m, std::size_t from, PlainFields& f) {
  f.count = 0;
  const char* const d = s.data();
  for (std::size_t w = from / 64; w * 64 < m.size; ++w) {
    std::uint64_t eqs = m.eq[w];
    if (w == from / 64) eqs &= ~0ull << (from % 64);
    for (; eqs != 0; eqs &= eqs - 1) {
      const unsigned bit = static_cast<unsigned>(__builtin_ctzll(eqs));
      const std::size_t eq = w * 64 + bit;
      // The name: the identifier bytes just before the '=', back to the first byte that is not one.
      const std::uint64_t not_ident_below = bit == 0 ? 0 : ~m.ident[w] & (~0ull >> (64 - bit));
      std::size_t name;
      if (not_ident_below != 0) {
        name = w * 64 + static_cast<std::size_t>(64 - __builtin_clzll(not_ident_below));
      } else if (w > 0 && ~m.ident[w - 1] != 0) {
        name = w * 64 - static_cast<std::size_t>(__builtin_clzll(~m.ident[w - 1]));
      } else {
        name = eq;
        while (name > 0 && is_ident_byte(d[name - 1])) --name;  // a name of more than 64 bytes
      }
      if (name == eq || name <= from || d[name - 1] != ' ') continue;
      const char c = d[name];
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')) continue;
      if (f.count == PlainFields::kMax) return false;
      f.space[f.count] = static_cast<std::uint32_t>(name - 1 - from);
      f.eq[f.count] = static_cast<std::uint32_t>(eq - from);
      ++f.count;
    }
  }
  return true;
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
  // The switch has matched the length: a compare of a known size, which the compiler inlines
  // (string_view's == calls memcmp, on every field of every line read).
  const auto is = [&]<std::size_t N>(const char (&known)[N]) { return std::memcmp(name.data(), known, N - 1) == 0; };
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

// The message and fields of a plain line's `rest` (after its level), from its fields.
void read_plain_fields(std::string_view rest, const PlainFields& plain, EventFields& fields) {
  std::string_view message;
  const std::size_t at = find_plain_event_message(rest, plain, message);
  if (at == std::string_view::npos) {
    scan_plain_build_info(rest, plain, fields);
  } else {
    fields.message = message;
    scan_plain_fields(rest, plain, at + message.size(), fields);
  }
}

// The fields of line.substr(level_end) when the line is plain (no '"', '{', NUL or ESC anywhere
// in it); false otherwise, or when there are too many, or without AVX2: the walk then reads it.
bool plain_fields(std::string_view line, std::size_t level_end, PlainFields& plain) {
  LineMasks masks;
  return line_masks(line, masks) && plain_fields_from_masks(line, masks, level_end, plain);
}

}  // namespace

bool is_text_record_start(std::string_view line) { return find_level(line) != std::string_view::npos; }

std::size_t text_record_body(std::string_view line) { return find_level(line); }

std::size_t plain_text_record_body(std::string_view line, std::string_view& text) {
  text = trim_front(line);
  if (text.empty() || text.front() == '{') return std::string_view::npos;
  return text_record_body(text);
}

bool text_starts_record(std::string_view line, Arena& arena) {
  // The level token sits near the start, so a long coloured line is first stripped only in part:
  // up to the first escape left in that part (where a sequence was cut, or a lone one), the part
  // reads as the whole line begins. A level found there is the level found in the whole line; if
  // none is found, a longer part and then the whole line decide. tracing's coloured timestamp and
  // level take ~52 bytes; a syslog prefix before them more.
  line = trim_front(line);
  const void* first_escape = std::memchr(line.data(), '\x1b', line.size());
  if (first_escape == nullptr) {
    std::string_view text;
    return plain_text_record_body(line, text) != std::string_view::npos;
  }
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
  if (PlainFields plain; plain_path && plain_fields(line, level_end, plain)) {
    read_plain_fields(rest, plain, fields);
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
  if (PlainFields plain; level_end == std::string_view::npos || !plain_fields(line, level_end, plain)) {
    return std::nullopt;
  }
  return read_text(line, fields, arena, true, level_end);
}

bool read_plain_text_record(std::string_view line, EventFields& fields) {
  if (line.empty() || trim_front(line).size() != line.size()) return false;  // read_cp_line() would trim it
  // The masks first: they turn away a line that is not plain before the level is looked for.
  LineMasks masks;
  if (!line_masks(line, masks)) return false;
  const std::size_t level_end = find_level(line);  // as text_record_body() finds it
  PlainFields plain;
  if (level_end == std::string_view::npos || !plain_fields_from_masks(line, masks, level_end, plain)) return false;
  read_plain_fields(line.substr(level_end), plain, fields);
  return true;
}

}  // namespace nle::parsers
