#include "parsers/candidate_screen.h"

#include <re2/re2.h>
#include <simdjson.h>

#include <array>
#include <span>
#include <cstring>
#include <string>

#include "parsers/shapes.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace nle {
namespace {

// What tracing-subscriber writes first on every JSON line, nested or flattened.
struct Head {
  bool ok = false;
  std::string_view message;
  std::size_t end = 0;  // just past the message's closing quote
  // Where the message's value starts, and the braces open there: the bytes before it are read
  // here, exactly, so the byte pass may begin at the message.
  std::size_t message_start = 0;
  long open_braces = 0;
};

bool is_timestamp_byte(char c) {
  return (c >= '0' && c <= '9') || c == '-' || c == ':' || c == '.' || c == 'T' || c == 'Z' || c == '+';
}

Head read_head(std::string_view l) {
  constexpr std::string_view kTimestamp = "{\"timestamp\":\"";
  constexpr std::string_view kLevel = "\",\"level\":\"";
  constexpr std::string_view kNested = "\",\"fields\":{\"message\":\"";
  constexpr std::string_view kFlat = "\",\"message\":\"";
  Head head;
  if (!l.starts_with(kTimestamp)) return head;
  std::size_t i = kTimestamp.size();
  while (i < l.size() && is_timestamp_byte(l[i])) ++i;
  if (l.substr(i, kLevel.size()) != kLevel) return head;
  i += kLevel.size();
  const std::size_t level = i;
  while (i < l.size() && l[i] >= 'A' && l[i] <= 'Z') ++i;
  if (i == level) return head;
  if (l.substr(i, kNested.size()) == kNested) {
    i += kNested.size();
    head.open_braces = 2;
  } else if (l.substr(i, kFlat.size()) == kFlat) {
    i += kFlat.size();
    head.open_braces = 1;
  } else {
    return head;
  }
  head.message_start = i;
  const void* quote = std::memchr(l.data() + i, '"', l.size() - i);
  if (quote == nullptr) return head;
  const std::size_t close = static_cast<std::size_t>(static_cast<const char*>(quote) - l.data());
  head.message = l.substr(i, close - i);
  // An escape could spell anything once decoded (and hide the closing quote): the parser decides.
  if (std::memchr(head.message.data(), '\\', head.message.size()) != nullptr) return head;
  head.end = close + 1;
  head.ok = true;
  return head;
}

// Strict JSON, as tracing writes it, from a line's message to its span tail (or its end): the
// message, the members left of the object it is in, then, for nested `fields`, the members of
// the line's object. Only scalar values, strings with the simple escapes and no control bytes,
// no blanks; anything else (valid or not) is "not proven". A line proven this way and valid
// UTF-8 is read by simdjson without error, so turning it away loses no invalid_json or
// invalid_utf8 skip; what is not proven goes to the parser, which decides. Keys the parser acts
// on whatever the message (`version`, a second `fields`, journald's `MESSAGE` and `__CURSOR`)
// are not proven either; an escape cannot spell them (only `\u` could, and it is refused).
class StrictMembers {
 public:
  explicit StrictMembers(std::string_view s) : s_(s) {}

  // From `at` (the message's opening quote), with `depth` objects open (1 flattened, 2 nested):
  // true if the members run to `end`, which is either the line's end (every object then closed
  // by it) or the span tail's start (only the line's own object still open).
  bool run(std::size_t at, long depth, std::size_t end, bool tail) {
    i_ = at;
    if (!string()) return false;
    for (;;) {
      if (i_ == end) return tail && depth == 1;
      const char c = s_[i_];
      if (c == ',') {
        ++i_;
        const std::size_t key = i_ + 1;
        if (!string() || parser_key(s_.substr(key, i_ - 1 - key)) || !expect(':') || !value()) return false;
      } else if (c == '}') {
        ++i_;
        if (--depth == 0) return !tail && i_ == end;
      } else {
        return false;
      }
    }
  }
  // A byte of 0x80 or more may have been seen: UTF-8 must be checked.
  bool non_ascii() const { return non_ascii_; }

 private:
  static bool parser_key(std::string_view key) {
    return key == "version" || key == "fields" || key == "MESSAGE" || key == "__CURSOR";
  }
  bool expect(char c) {
    if (i_ >= s_.size() || s_[i_] != c) return false;
    ++i_;
    return true;
  }
  // The next '"', '\\' or control byte at or after i_, or the end; 16 bytes at a time where
  // they are there (the bytes of a block past it count for non_ascii_: at worst a needless check).
  std::size_t next_special() {
    std::size_t j = i_;
#if defined(__x86_64__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i space = _mm_set1_epi8(0x20);
    for (; j + 16 <= s_.size(); j += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s_.data() + j));
      const auto high = static_cast<unsigned>(_mm_movemask_epi8(x));
      non_ascii_ |= high != 0;
      // Signed compare: bytes of 0x80 and more are negative, so take them out again.
      const auto control = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmplt_epi8(x, space))) & ~high;
      const auto mask = control | static_cast<unsigned>(_mm_movemask_epi8(
                                      _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash))));
      if (mask != 0) return j + static_cast<std::size_t>(__builtin_ctz(mask));
    }
#endif
    for (; j < s_.size(); ++j) {
      const auto c = static_cast<unsigned char>(s_[j]);
      non_ascii_ |= c >= 0x80;
      if (c == '"' || c == '\\' || c < 0x20) break;
    }
    return j;
  }
  bool string() {
    if (!expect('"')) return false;
    while (i_ < s_.size()) {
      i_ = next_special();
      if (i_ >= s_.size()) return false;
      const char c = s_[i_++];
      if (c == '"') return true;
      if (c != '\\') return false;  // a control byte
      if (i_ >= s_.size()) return false;
      const char e = s_[i_++];
      if (e == '\0' || std::strchr("\"\\/bfnrt", e) == nullptr) return false;  // `\u` too: not proven
    }
    return false;
  }
  bool digits() {
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }
  bool number() {
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (i_ >= s_.size() || s_[i_] < '1' || s_[i_] > '9' || !digits()) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.' && (++i_, !digits())) return false;
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (!digits()) return false;
    }
    return true;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  bool value() {
    if (i_ >= s_.size()) return false;
    switch (s_[i_]) {
      case '"': return string();
      case 't': return word("true");
      case 'f': return word("false");
      case 'n': return word("null");
      default: return number();
    }
  }

  std::string_view s_;
  std::size_t i_ = 0;
  bool non_ascii_ = false;
};

// tracing-subscriber's span metadata at the end of a JSON line: `"span"` (the current span) and
// `"spans"` (the whole stack), each span an object of scalar fields ending in "name", then
// possibly the thread keys, then the line's closing brace. The parser skips all of it, whatever
// it holds. Strings without `\u` escapes or control bytes, so the pattern cannot be fooled about
// where a string ends.
const RE2& span_tail_pattern() {
  static const RE2 pattern = [] {
    const std::string str = R"re("(?:[^"\\\x00-\x1f]|\\[^u\x00-\x1f])*")re";
    const std::string value = "(?:" + str + R"re(|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null))re";
    const std::string object = "\\{(?:" + str + ":" + value + "(?:," + str + ":" + value + ")*)?\\}";
    const std::string tail = ",\"span\":" + object + ",\"spans\":\\[(?:" + object + "(?:," + object +
                             ")*)?\\](?:,\"thread(?:Name|Id)\":" + value + ")*\\}";
    RE2::Options options;
    options.set_log_errors(false);
    options.set_encoding(RE2::Options::EncodingLatin1);  // bytes, not code points: UTF-8 is checked apart
    return RE2(tail, options);
  }();
  return pattern;
}

// The tokens that send a line to the parser when they occur outside the span tail. Each starts
// with one of the byte pairs the SIMD pass looks for.
constexpr std::string_view kAlwaysTokens[] = {
    "\"version\"",   // a build-info field (LOG-FORMAT section 4)
    "\"MESSAGE\"",   // journald keys: the parser would read the line as a journald record
    "\"__CURSOR\"",
    "\"fields\"",    // a (second) nested fields object, which would replace the flattened fields
    "\\u",           // an escape that may spell any key or value once decoded
};
// In a `report received` line: the counting event values (and their Rust variant names), found
// anywhere, whatever key holds them (`event`, a nested `report`, ...).
constexpr std::string_view kReportTokens[] = {"ompliance", "untime"};

bool is_forbidden_at(const char* d, std::size_t n, std::size_t p, bool report) {
  const auto at = [&](std::string_view token) {
    return n - p >= token.size() && std::memcmp(d + p, token.data(), token.size()) == 0;
  };
  for (std::string_view token : kAlwaysTokens) {
    if (at(token)) return true;
  }
  if (report) {
    for (std::string_view token : kReportTokens) {
      if (at(token)) return true;
    }
  }
  return false;
}

// One byte's part of the facts; `next` is the byte after it (0 past the end).
inline bool scalar_byte(const char* d, std::size_t n, std::size_t p, std::size_t from, std::size_t limit, bool report,
                        ScreenFacts& f) {
  const auto c = static_cast<unsigned char>(d[p]);
  f.braces += (c == '{') - (c == '}');
  f.brackets += (c == '[') - (c == ']');
  f.control |= c < 0x20;
  f.non_ascii |= c >= 0x80;
  if (p >= from && p < limit && (c == '"' || c == '\\' || c == 'o' || c == 'u') && is_forbidden_at(d, n, p, report)) {
    f.forbidden = true;
    return false;
  }
  return true;
}

ScreenFacts facts_scalar(const char* d, std::size_t n, std::size_t from, std::size_t limit, bool report) {
  ScreenFacts f;
  for (std::size_t p = 0; p < n; ++p) {
    if (!scalar_byte(d, n, p, from, limit, report, f)) break;
  }
  return f;
}

#if defined(__x86_64__)
// SSE2 (part of x86-64 itself): 16 bytes at a time; each token is tested by its first two bytes
// (the candidates are verified with memcmp); brackets are counted per byte lane and summed with
// psadbw before a lane can overflow (no popcnt: it is not part of baseline x86-64).
// `f` holds the facts of d[0, p) already (the AVX2 pass leaves its last bytes to this one).
ScreenFacts facts_sse2(const char* d, std::size_t n, std::size_t from, std::size_t limit, bool report,
                       ScreenFacts f = {}, std::size_t p = 0) {
  const auto eq = [](__m128i v, char c) { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); };
  const __m128i zero = _mm_setzero_si128();
  __m128i open_braces = zero, close_braces = zero, open_brackets = zero, close_brackets = zero;
  const auto sum = [&](__m128i lanes) {
    const __m128i s = _mm_sad_epu8(lanes, zero);
    return static_cast<long>(_mm_cvtsi128_si64(s) + _mm_cvtsi128_si64(_mm_unpackhi_epi64(s, s)));
  };
  const auto flush = [&] {
    f.braces += sum(open_braces) - sum(close_braces);
    f.brackets += sum(open_brackets) - sum(close_brackets);
    open_braces = close_braces = open_brackets = close_brackets = zero;
  };
  unsigned rounds = 0;
  for (; p + 17 <= n; p += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + p));
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + p + 1));
    open_braces = _mm_sub_epi8(open_braces, eq(x, '{'));  // a match is -1
    close_braces = _mm_sub_epi8(close_braces, eq(x, '}'));
    open_brackets = _mm_sub_epi8(open_brackets, eq(x, '['));
    close_brackets = _mm_sub_epi8(close_brackets, eq(x, ']'));
    if (++rounds == 255) {
      flush();
      rounds = 0;
    }
    const unsigned high = static_cast<unsigned>(_mm_movemask_epi8(x));
    f.non_ascii |= high != 0;
    // Signed compare: bytes of 0x80 and more are negative, so take them out again.
    f.control |= (static_cast<unsigned>(_mm_movemask_epi8(_mm_cmplt_epi8(x, _mm_set1_epi8(0x20)))) & ~high) != 0;
    if (p >= limit || p + 16 <= from) continue;
    __m128i hits = _mm_and_si128(eq(x, '"'), _mm_or_si128(_mm_or_si128(eq(next, 'v'), eq(next, 'M')),
                                                          _mm_or_si128(eq(next, '_'), eq(next, 'f'))));
    hits = _mm_or_si128(hits, _mm_and_si128(eq(x, '\\'), eq(next, 'u')));
    if (report) {
      hits = _mm_or_si128(hits, _mm_or_si128(_mm_and_si128(eq(x, 'o'), eq(next, 'm')), _mm_and_si128(eq(x, 'u'), eq(next, 'n'))));
    }
    for (unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(hits)); mask != 0; mask &= mask - 1) {
      const std::size_t at = p + static_cast<std::size_t>(__builtin_ctz(mask));
      if (at >= from && at < limit && is_forbidden_at(d, n, at, report)) {
        f.forbidden = true;
        return f;
      }
    }
  }
  flush();
  for (; p < n; ++p) {
    if (!scalar_byte(d, n, p, from, limit, report, f)) break;
  }
  return f;
}
#endif

#if defined(__x86_64__)
// The SSE2 pass, 32 bytes at a time, for CPUs that have AVX2 (checked at run time: Debian's
// baseline x86-64 does not promise it). g++ and clang spell "compile for AVX2" differently.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2")
#endif
inline __m256i eq256(__m256i v, char c) { return _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c)); }

ScreenFacts facts_avx2(const char* d, std::size_t n, std::size_t from, std::size_t limit, bool report) {
  ScreenFacts f;
  std::size_t p = 0;
  const auto eq = eq256;
  const __m256i zero = _mm256_setzero_si256();
  __m256i open_braces = zero, close_braces = zero, open_brackets = zero, close_brackets = zero;
  const auto sum = [&](__m256i lanes) {
    const __m256i s = _mm256_sad_epu8(lanes, zero);
    return static_cast<long>(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) + _mm256_extract_epi64(s, 2) +
                             _mm256_extract_epi64(s, 3));
  };
  const auto flush = [&] {
    f.braces += sum(open_braces) - sum(close_braces);
    f.brackets += sum(open_brackets) - sum(close_brackets);
    open_braces = close_braces = open_brackets = close_brackets = zero;
  };
  unsigned rounds = 0;
  const __m256i space = _mm256_set1_epi8(0x20);
  for (; p + 33 <= n; p += 32) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + p));
    const __m256i next = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d + p + 1));
    open_braces = _mm256_sub_epi8(open_braces, eq(x, '{'));  // a match is -1
    close_braces = _mm256_sub_epi8(close_braces, eq(x, '}'));
    open_brackets = _mm256_sub_epi8(open_brackets, eq(x, '['));
    close_brackets = _mm256_sub_epi8(close_brackets, eq(x, ']'));
    if (++rounds == 255) {
      flush();
      rounds = 0;
    }
    const auto high = static_cast<unsigned>(_mm256_movemask_epi8(x));
    f.non_ascii |= high != 0;
    // Signed compare: bytes of 0x80 and more are negative, so take them out again.
    f.control |= (static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpgt_epi8(space, x))) & ~high) != 0;
    if (p >= limit || p + 32 <= from) continue;
    __m256i hits = _mm256_and_si256(eq(x, '"'), _mm256_or_si256(_mm256_or_si256(eq(next, 'v'), eq(next, 'M')),
                                                                _mm256_or_si256(eq(next, '_'), eq(next, 'f'))));
    hits = _mm256_or_si256(hits, _mm256_and_si256(eq(x, '\\'), eq(next, 'u')));
    if (report) {
      hits = _mm256_or_si256(hits, _mm256_or_si256(_mm256_and_si256(eq(x, 'o'), eq(next, 'm')),
                                                   _mm256_and_si256(eq(x, 'u'), eq(next, 'n'))));
    }
    for (auto mask = static_cast<unsigned>(_mm256_movemask_epi8(hits)); mask != 0; mask &= mask - 1) {
      const std::size_t at = p + static_cast<std::size_t>(__builtin_ctz(mask));
      if (at >= from && at < limit && is_forbidden_at(d, n, at, report)) {
        f.forbidden = true;
        return f;
      }
    }
  }
  flush();
  return facts_sse2(d, n, from, limit, report, f, p);
}
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

constexpr std::string_view kFactsKernels[] = {
#if defined(__x86_64__)
    "avx2", "sse2",
#endif
    "scalar"};

std::span<const std::string_view> facts_kernels() {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return std::span<const std::string_view>(kFactsKernels).subspan(avx2 ? 0 : 1);
#else
  return kFactsKernels;
#endif
}

ScreenFacts facts_with(std::string_view kernel, std::string_view line, std::size_t from, std::size_t limit,
                       bool report) {
#if defined(__x86_64__)
  if (kernel == "avx2") return facts_avx2(line.data(), line.size(), from, limit, report);
  if (kernel == "sse2") return facts_sse2(line.data(), line.size(), from, limit, report);
#endif
  return facts_scalar(line.data(), line.size(), from, limit, report);
}

// The fastest kernel this CPU runs.
ScreenFacts facts(std::string_view line, std::size_t from, std::size_t limit, bool report) {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (avx2) return facts_avx2(line.data(), line.size(), from, limit, report);
  return facts_sse2(line.data(), line.size(), from, limit, report);
#else
  return facts_scalar(line.data(), line.size(), from, limit, report);
#endif
}

// Span tails already proven (or refuted) by the RE2 pattern: tower-http writes the same few
// tails again and again. Direct-mapped by a hash of the whole tail; a hit is compared in full. A
// tail is admitted on its second sighting only, so tails that never repeat (a span holding a
// request id) do not push out the ones that do.
class TailCache {
 public:
  struct Verdict {
    bool known = false;
    bool ok = false;
  };
  Verdict find(std::string_view tail, std::uint64_t hash) const {
    const Slot& s = slots_[(hash >> 32) % kSlots];
    if (s.hash != hash || s.tail != tail) return {};
    return {true, s.ok};
  }
  void put(std::string_view tail, std::uint64_t hash, bool ok) {
    std::uint64_t& seen = seen_[(hash >> 32) % kSeen];
    if (seen != hash) {
      seen = hash;
      return;
    }
    Slot& s = slots_[(hash >> 32) % kSlots];
    s.hash = hash;
    s.tail.assign(tail);
    s.ok = ok;
  }
  // Of the length and up to 96 bytes from each end: the span fields (method, uri) sit at the
  // start, the stack's last span at the end. Slots compare in full, so a collision only evicts.
  static std::uint64_t hash(std::string_view tail) {
    std::uint64_t h = tail.size() * 0x9e3779b97f4a7c15ull;
    const auto mix = [&](std::size_t at) {
      std::uint64_t word;
      std::memcpy(&word, tail.data() + at, 8);
      h = (h ^ word) * 0x100000001b3ull;
      h ^= h >> 29;
    };
    if (tail.size() < 8) {
      for (char c : tail) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
      return h | 1;
    }
    for (std::size_t i = 0; i + 8 <= tail.size() && i < 96; i += 8) mix(i);
    for (std::size_t back = 8; back <= tail.size() && back <= 96; back += 8) mix(tail.size() - back);
    return h | 1;  // 0 marks an empty slot
  }

 private:
  static constexpr std::size_t kSlots = 64;
  static constexpr std::size_t kSeen = 256;
  struct Slot {
    std::uint64_t hash = 0;
    bool ok = false;
    std::string tail;
  };
  std::array<Slot, kSlots> slots_{};
  std::array<std::uint64_t, kSeen> seen_{};
};

constexpr std::string_view kGateHeldTail = "held by fleet-level gate";

// A field named `version`, as the text reader finds one.
constexpr std::string_view kSpacedVersion = " version=";

// Can a text record's body count? It can if it spells an event message anywhere, or has a
// ` version=` outside span braces (the text reader's build-info scan counts braces the same way:
// quotes aside, a `}` never takes the depth below 0). The three strings share a 'v', rare in
// text lines, so one memchr walk over the 'v's finds them all.
// `report_at`: where `report received` first is, when that is what it found (else npos).
bool text_body_may_count(std::string_view body, std::size_t& report_at) {
  report_at = std::string_view::npos;
  constexpr std::size_t kReportV = 12;  // "report received"[12] == 'v'
  constexpr std::size_t kGateV = 26;    // "dispatch: held by fleet-level gate"[26] == 'v'
  const auto spells = [&](std::size_t v, std::string_view word, std::size_t offset) {
    return v >= offset && body.size() - (v - offset) >= word.size() && body.substr(v - offset, word.size()) == word;
  };
  std::size_t counted = 0;
  int depth = 0;
  for (std::size_t from = 0; from < body.size();) {
    const void* hit = std::memchr(body.data() + from, 'v', body.size() - from);
    if (hit == nullptr) return false;
    const std::size_t v = static_cast<std::size_t>(static_cast<const char*>(hit) - body.data());
    from = v + 1;
    // The first 'v' that spells the message is that of its first occurrence.
    if (spells(v, parsers::kReportReceived, kReportV)) {
      report_at = v - kReportV;
      return true;
    }
    if (spells(v, parsers::kGateHeld, kGateV)) return true;
    if (!spells(v, kSpacedVersion, 1)) continue;
    for (; counted < v - 1; ++counted) {
      if (body[counted] == '{') ++depth;
      else if (body[counted] == '}' && depth > 0) --depth;
    }
    if (depth == 0) return true;
  }
  return false;
}

// What a text report's body spells that could make it count: a counting event value
// (`ompliance`, `untime`), the gate-held message or a `\` (an escape could spell either); and
// whether it spells ` version=` (which counts only where it stands, for the caller to place).
struct TextReportTokens {
  bool counting = false;
  bool version = false;
};

constexpr std::string_view kCompliance = "ompliance", kRuntime = "untime";
// Loads reach 23 bytes past a round's last start (the gate message's last byte).
constexpr std::size_t kTokenReach = kGateHeldTail.size() - 1;

// The token at `at` of `d` (a view of `size` bytes), verified into `found`; true once it counts.
bool note_token(const char* d, std::size_t size, std::size_t at, TextReportTokens& found) {
  const std::string_view rest(d + at, size - at);
  switch (d[at]) {
    case '\\': found.counting = true; break;
    case 'o': found.counting = rest.starts_with(kCompliance); break;
    case 'u': found.counting = rest.starts_with(kRuntime); break;
    case 'h': found.counting = rest.starts_with(kGateHeldTail); break;
    case ' ': found.version = found.version || rest.starts_with(kSpacedVersion); break;
    default: break;
  }
  return found.counting;
}

// The start positions [0, starts) of `d`, 16 a round: each token found by its first byte and
// one more at a fixed distance, then verified in place. Loads reach kTokenReach + 15 bytes past
// the last round's start.
void token_rounds_sse2(const char* d, std::size_t size, std::size_t starts, TextReportTokens& found) {
#if defined(__x86_64__)
  const auto eq = [](__m128i v, char c) { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); };
  for (std::size_t p = 0; p < starts; p += 16) {
    const auto at = [&](std::size_t k) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + p + k)); };
    const __m128i x = at(0), e5 = eq(at(kRuntime.size() - 1), 'e'), x8 = at(kCompliance.size() - 1);
    __m128i hits = _mm_or_si128(_mm_and_si128(eq(x, 'o'), eq(x8, 'e')), _mm_and_si128(eq(x, 'u'), e5));
    hits = _mm_or_si128(hits, _mm_and_si128(eq(x, 'h'), eq(at(kTokenReach), 'e')));
    hits = _mm_or_si128(hits, _mm_or_si128(eq(x, '\\'), _mm_and_si128(eq(x, ' '), eq(x8, '='))));
    for (auto mask = static_cast<unsigned>(_mm_movemask_epi8(hits)); mask != 0; mask &= mask - 1) {
      const std::size_t hit = p + static_cast<std::size_t>(__builtin_ctz(mask));
      if (hit < starts && note_token(d, size, hit, found)) return;
    }
  }
#else
  for (std::size_t p = 0; p < starts; ++p) {
    if (note_token(d, size, p, found)) return;
  }
#endif
}

#if defined(__x86_64__)
// The same, 32 start positions a round (CPUs with AVX2). Loads reach kTokenReach + 31 bytes.
__attribute__((target("avx2"))) void token_rounds_avx2(const char* d, std::size_t size, std::size_t starts,
                                                        TextReportTokens& found) {
  const __m256i o = _mm256_set1_epi8('o'), u = _mm256_set1_epi8('u'), h = _mm256_set1_epi8('h'),
                e = _mm256_set1_epi8('e'), backslash = _mm256_set1_epi8('\\'), blank = _mm256_set1_epi8(' '),
                equals = _mm256_set1_epi8('=');
  for (std::size_t p = 0; p < starts; p += 32) {
    const char* q = d + p;
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i x5 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kRuntime.size() - 1));
    const __m256i x8 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kCompliance.size() - 1));
    const __m256i x23 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kTokenReach));
    __m256i hits = _mm256_or_si256(_mm256_and_si256(_mm256_cmpeq_epi8(x, o), _mm256_cmpeq_epi8(x8, e)),
                                   _mm256_and_si256(_mm256_cmpeq_epi8(x, u), _mm256_cmpeq_epi8(x5, e)));
    hits = _mm256_or_si256(hits, _mm256_and_si256(_mm256_cmpeq_epi8(x, h), _mm256_cmpeq_epi8(x23, e)));
    hits = _mm256_or_si256(hits, _mm256_or_si256(_mm256_cmpeq_epi8(x, backslash),
                                                 _mm256_and_si256(_mm256_cmpeq_epi8(x, blank), _mm256_cmpeq_epi8(x8, equals))));
    for (auto mask = static_cast<unsigned>(_mm256_movemask_epi8(hits)); mask != 0; mask &= mask - 1) {
      const std::size_t hit = p + static_cast<std::size_t>(__builtin_ctz(mask));
      if (hit < starts && note_token(d, size, hit, found)) return;
    }
  }
}
#endif

// Every token at once, by rounds of start positions (above). Quiet reports are ~30% of a busy
// CP's lines, and a search per token went over each of them five times.
TextReportTokens text_report_tokens(std::string_view body) {
  TextReportTokens found;
  // Whole rounds in place while every load stays inside the body; the rest, by 16, from a
  // zero-padded copy, where no token can match across the end.
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2");
#else
  constexpr bool avx2 = false;
#endif
  const std::size_t width = avx2 ? 32 : 16;
  const std::size_t in_place = body.size() > kTokenReach + width ? (body.size() - kTokenReach - width) / width * width + width : 0;
#if defined(__x86_64__)
  if (avx2) token_rounds_avx2(body.data(), body.size(), in_place, found);
  else token_rounds_sse2(body.data(), body.size(), in_place, found);
#else
  token_rounds_sse2(body.data(), body.size(), in_place, found);
#endif
  if (found.counting || in_place == body.size()) return found;
  constexpr std::size_t kMaxLeft = 32 + kTokenReach + 32;  // left < width + kTokenReach + width
  std::array<char, (kMaxLeft + 15) / 16 * 16 + kTokenReach + 16> tail{};
  const std::size_t left = body.size() - in_place;
  std::memcpy(tail.data(), body.data() + in_place, left);
  token_rounds_sse2(tail.data(), left, left, found);
  return found;
}

// A text body that spells `report received` but cannot count: the parser finds no counting
// event value (none is spelled, and no escape could spell one once decoded), no gate-held message
// and no ` version=` it would read (after the message every field is read; before it, only one
// outside span braces would be). Conservative: whatever it does not prove goes to the parser.
// `report_at`: the first `report received` of the body if the caller knows it, else npos.
bool text_report_is_quiet(std::string_view body, std::size_t report_at) {
  const std::size_t report =
      report_at != std::string_view::npos ? report_at : parsers::find_bytes(body, parsers::kReportReceived);
  if (report == std::string_view::npos) return false;
  const TextReportTokens tokens = text_report_tokens(body);
  if (tokens.counting) return false;
  if (!tokens.version) return true;
  if (parsers::find_bytes(body, kSpacedVersion, report) != std::string_view::npos) return false;
  std::size_t counted = 0;
  int depth = 0;
  for (std::size_t v = parsers::find_bytes(body, kSpacedVersion); v != std::string_view::npos && v < report;
       v = parsers::find_bytes(body, kSpacedVersion, v + 1)) {
    for (; counted < v; ++counted) {
      if (body[counted] == '{') ++depth;
      else if (body[counted] == '}' && depth > 0) --depth;
    }
    if (depth == 0) return false;
  }
  return true;
}

}  // namespace

std::span<const std::string_view> screen_facts_kernels() { return facts_kernels(); }

ScreenFacts screen_facts(std::string_view kernel, std::string_view line, std::size_t from, std::size_t limit,
                         bool report) {
  return facts_with(kernel, line, from, limit, report);
}

// Cache-line aligned (128: the adjacent-line prefetcher pairs lines): replay's threads each have a
// screen, allocated at the same time from one malloc arena (cmd/allocator.cpp), and the fields
// written for every line must not share a line with another thread's (false sharing cost 2-thread
// replay 18% of its CPU time when a new field moved them).
struct alignas(128) CandidateScreen::Impl {
  InputFormat format;
  TailCache tails;
  parsers::Arena arena;

  explicit Impl(InputFormat f) : format(f) {}

  // The text the parser reads of a line: trimmed, colours removed.
  std::string_view as_text(std::string_view line) {
    line = parsers::trim_front(line);
    if (std::memchr(line.data(), '\x1b', line.size()) != nullptr) line = parsers::strip_ansi(line, arena);
    return line;
  }

  // What screen_text() read of the last `next` that holds no NUL and no ESC: the text it reads
  // (trimmed) and where that text's record body begins (npos: none). When consecutive lines are
  // both candidates (about half the lines of a busy CP's text log), the same bytes come back as
  // `line` of the following call, which then needs neither search again.
  struct PlainLineReading {
    const char* data = nullptr;  // the line as given, to recognise it
    std::size_t size = 0;
    std::string_view text;
    std::size_t body = std::string_view::npos;
  };
  PlainLineReading next_reading;

  ScreenVerdict screen_text(std::string_view line, std::string_view next, bool line_was_next) {
    arena.reset();
    PlainLineReading known;
    if (line_was_next && next_reading.data == line.data() && next_reading.size == line.size()) known = next_reading;
    next_reading = {};
    std::string_view text;
    std::size_t body;
    if (known.data != nullptr) {
      text = known.text;
      body = known.body;
    } else {
      if (std::memchr(line.data(), '\0', line.size()) != nullptr) return ScreenVerdict::parse;
      text = as_text(line);
      if (text.empty() || text.front() == '{') return ScreenVerdict::parse;
      body = parsers::text_record_body(text);
    }
    if (std::memchr(next.data(), '\0', next.size()) != nullptr) return ScreenVerdict::parse;
    if (body == std::string_view::npos) return ScreenVerdict::parse;  // a continuation: the parser decides
    // What the text reader reads (read_text_line): the body after the level token.
    ScreenVerdict verdict = ScreenVerdict::text_no_event;
    bool may_count = false;
    if (std::size_t report_at; text_body_may_count(text.substr(body), report_at)) {
      may_count = !text_report_is_quiet(text.substr(body), report_at);
      verdict = ScreenVerdict::text_quiet_report;
    }
    // The next line must start a record, so that this one is read alone. Asked also of a line that
    // goes to the parser: its caller needs the same answer (CandidateScreen::next_starts_text_record()),
    // and what was read of `next` serves the following call.
    const bool next_starts = next_starts_text_record(next);
    return next_starts && !may_count ? verdict : ScreenVerdict::parse;
  }

  // starts_text_record() of `next` (known to hold no NUL), keeping what it read of a plain one,
  // and the answer LineParser::starts_text_record(next) gives.
  bool next_starts_text_record(std::string_view next) {
    bool starts;
    if (std::memchr(next.data(), '\x1b', next.size()) != nullptr) {
      starts = starts_text_record(next);
    } else {
      std::string_view text;
      const std::size_t body = parsers::plain_text_record_body(next, text);
      next_reading = {next.data(), next.size(), text, body};
      starts = body != std::string_view::npos;
    }
    const std::string_view trimmed = parsers::trim_front(next);
    next_starts_parser_record = starts && !trimmed.empty() && trimmed.front() != '{';
    return starts;
  }
  // LineParser::starts_text_record() of the last `next`, when screen() found it out.
  std::optional<bool> next_starts_parser_record;

  // Does `line` start a text record, as the parser reads it?
  bool starts_text_record(std::string_view line) { return parsers::text_starts_record(line, arena); }

  // Is `tail` tracing's span metadata, in valid UTF-8, up to the line's closing brace?
  bool is_span_tail(std::string_view tail) {
    const std::uint64_t hash = TailCache::hash(tail);
    if (const TailCache::Verdict v = tails.find(tail, hash); v.known) return v.ok;
    const bool ok = RE2::FullMatch(tail, span_tail_pattern()) && simdjson::validate_utf8(tail.data(), tail.size());
    tails.put(tail, hash, ok);
    return ok;
  }

  ScreenVerdict screen(std::string_view line, const std::string_view* next, bool line_was_next) {
    next_starts_parser_record.reset();
    const bool json = format == InputFormat::auto_detect || format == InputFormat::json;
    const bool text = format == InputFormat::auto_detect || format == InputFormat::text;
    if (text && next != nullptr && !line.empty() && line.front() != '{') return screen_text(line, *next, line_was_next);
    next_reading = {};
    if (!json) return ScreenVerdict::parse;
    if (line.size() < 32 || line.back() != '}') return ScreenVerdict::parse;  // not JSON, or truncated
    const Head head = read_head(line);
    if (!head.ok || head.message == parsers::kGateHeld) return ScreenVerdict::parse;
    const bool report = head.message == parsers::kReportReceived;
    // From the message to the span tail's start (or the line's end), strict JSON members and no
    // key the parser acts on; in a report, no counting event value either (found by the byte pass,
    // wherever it is). Only then does RE2 look at the span tail: keys after its start are span
    // metadata if the tail is what tracing writes, and a proven tail is well formed, valid UTF-8
    // and closes the line's object. Any other tail is not proven.
    constexpr std::string_view kSpan = ",\"span\":{";
    const std::size_t span = parsers::find_bytes(line, kSpan, head.end);
    const bool tail = span != std::string_view::npos;
    const std::size_t end = tail ? span : line.size();
    const std::string_view body = line.substr(head.message_start, end - head.message_start);
    if (report && facts(body, head.end - head.message_start, body.size(), true).forbidden) return ScreenVerdict::parse;
    StrictMembers members(line);
    if (!members.run(head.message_start - 1, head.open_braces, end, tail)) return ScreenVerdict::parse;
    if (members.non_ascii() && !simdjson::validate_utf8(body.data(), body.size())) return ScreenVerdict::parse;
    if (tail && !is_span_tail(line.substr(span))) return ScreenVerdict::parse;
    return report ? ScreenVerdict::quiet_report : ScreenVerdict::not_an_event;
  }
};

std::optional<bool> CandidateScreen::next_starts_text_record() const { return impl_->next_starts_parser_record; }

CandidateScreen::CandidateScreen(InputFormat format) : impl_(std::make_unique<Impl>(format)) {}
CandidateScreen::~CandidateScreen() = default;
CandidateScreen::CandidateScreen(CandidateScreen&&) noexcept = default;
CandidateScreen& CandidateScreen::operator=(CandidateScreen&&) noexcept = default;

ScreenVerdict CandidateScreen::screen(std::string_view line, const std::string_view* next, bool line_was_next) {
  return impl_->screen(line, next, line_was_next);
}

}  // namespace nle
