// Byte-level helpers for text lines: removing colour escapes and decoding Rust Debug strings.

#include <array>
#include <cstdint>
#include <cstring>

#include "parsers/shapes.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace nle::parsers {

std::size_t find_bytes(std::string_view haystack, std::string_view needle, std::size_t from) {
  const std::size_t n = haystack.size();
  const std::size_t m = needle.size();
  if (from > n || m > n - from) return std::string_view::npos;
  if (m < 2) return haystack.find(needle, from);
  const char* const h = haystack.data();
  const char first = needle.front();
  const char last = needle.back();
  std::size_t i = from;
#if defined(__x86_64__)
  // SSE2 is part of x86-64 itself. Position i is a candidate when h[i] == first and
  // h[i + m - 1] == last; both loads stay inside the haystack.
  const __m128i want_first = _mm_set1_epi8(first);
  const __m128i want_last = _mm_set1_epi8(last);
  for (; i + m - 1 + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i + m - 1));
    unsigned mask = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_and_si128(_mm_cmpeq_epi8(a, want_first), _mm_cmpeq_epi8(b, want_last))));
    for (; mask != 0; mask &= mask - 1) {
      const std::size_t at = i + static_cast<std::size_t>(__builtin_ctz(mask));
      if (std::memcmp(h + at + 1, needle.data() + 1, m - 2) == 0) return at;
    }
  }
#endif
  for (; i + m <= n; ++i) {
    if (h[i] == first && h[i + m - 1] == last && std::memcmp(h + i + 1, needle.data() + 1, m - 2) == 0) return i;
  }
  return std::string_view::npos;
}

namespace {

// Copies line[p, the next ESC or the end) to out + n; returns where the ESC is (or `end`). The
// SIMD loop stores 16 bytes at a time, past the ESC too: what lies beyond is overwritten by the
// bytes that follow, and out + n + 16 never passes out + line size, since n <= p - line start.
const char* copy_to_escape(const char* p, const char* end, char* out, std::size_t& n) {
#if defined(__x86_64__)
  const __m128i esc = _mm_set1_epi8('\x1b');
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + n), x);
    const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, esc)));
    if (mask != 0) {
      const auto k = static_cast<std::size_t>(__builtin_ctz(mask));
      n += k;
      return p + k;
    }
    p += 16;
    n += 16;
  }
#endif
  while (p < end && *p != '\x1b') out[n++] = *p++;
  return p;
}

// The escape at p (*p is ESC): skipped with its sequence, or kept as a byte when no complete CSI
// sequence follows. Returns where reading goes on.
const char* strip_escape(const char* p, const char* end, char* out, std::size_t& n) {
  // tracing's own colours first (ESC[2m, ESC[34m): the general rule below would drop them too.
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (end - p >= 4 && p[1] == '[' && digit(p[2])) {
    if (p[3] == 'm') return p + 4;
    if (end - p >= 5 && digit(p[3]) && p[4] == 'm') return p + 5;
  }
  // CSI: ESC '[' parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, final 0x40-0x7E.
  const char* j = p + 1;
  if (j < end && *j == '[') {
    ++j;
    while (j < end && *j >= 0x30 && *j <= 0x3F) ++j;
    while (j < end && *j >= 0x20 && *j <= 0x2F) ++j;
    if (j < end && *j >= 0x40 && *j <= 0x7E) return j + 1;
  }
  out[n++] = '\x1b';  // not a complete CSI sequence: the escape byte is kept
  return p + 1;
}

std::size_t strip_by_walk(const char* p, const char* end, char* out) {
  std::size_t n = 0;
  while ((p = copy_to_escape(p, end, out, n)) < end) p = strip_escape(p, end, out, n);
  return n;
}

#if defined(__x86_64__)
// For each 8-bit mask, the positions of its set bits, lowest first, one per byte: the shuffle
// that packs the bytes a mask keeps to the front of an 8-byte group.
constexpr std::array<std::uint64_t, 256> kPackShuffles = [] {
  std::array<std::uint64_t, 256> table{};
  for (unsigned mask = 0; mask < 256; ++mask) {
    unsigned slot = 0;
    for (unsigned bit = 0; bit < 8; ++bit) {
      if ((mask >> bit) & 1u) table[mask] |= std::uint64_t{bit} << (8 * slot++);
    }
  }
  return table;
}();

__attribute__((target("avx2"))) inline __m256i load(const char* at) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(at));
}
__attribute__((target("avx2"))) inline std::uint32_t bits(__m256i v) {
  return static_cast<std::uint32_t>(_mm256_movemask_epi8(v));
}

// Appends the bytes of `v` whose bit is set in `keep` to out + n; writes 8 bytes per group, so
// up to 8 past the new n.
__attribute__((target("avx2,popcnt"))) inline void pack_kept(__m256i v, std::uint32_t keep, char* out, std::size_t& n) {
  const auto half = [&](__m128i bytes, unsigned mask16) __attribute__((target("avx2,popcnt"))) {
    const unsigned low = mask16 & 0xFF;
    const unsigned high = mask16 >> 8;
    const __m128i shuffle = _mm_set_epi64x(static_cast<long long>(kPackShuffles[high] + 0x0808080808080808ull),
                                           static_cast<long long>(kPackShuffles[low]));
    const __m128i packed = _mm_shuffle_epi8(bytes, shuffle);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + n), packed);
    n += static_cast<std::size_t>(__builtin_popcount(low));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + n), _mm_unpackhi_epi64(packed, packed));
    n += static_cast<std::size_t>(__builtin_popcount(high));
  };
  half(_mm256_castsi256_si128(v), keep & 0xFFFF);
  half(_mm256_extracti128_si256(v, 1), keep >> 16);
}

// strip_by_walk() 32 bytes a round. tracing colours nearly every token (ESC[2m, ESC[0m, ESC[32m,
// ...: an escape every 8 bytes), so the walk paid ~30 instructions an escape. Here the short forms
// ESC '[' digit [digit] 'm' are found by comparing shifted vectors, and the round's other bytes
// are packed through a shuffle table; a round holding any other escape hands that escape to
// strip_escape(). The last bytes are copied to a zeroed buffer first, so that rounds never read
// past the line: a zero is never '[', a digit or 'm', so no sequence is found that the line does
// not hold whole. `out` needs line size + 8 bytes.
__attribute__((target("avx2,popcnt"))) std::size_t strip_avx2(const char* p, const char* end, char* out) {
  constexpr std::ptrdiff_t kLookahead = 4;  // a sequence starting in a round ends at most 4 bytes on
  __m256i esc = _mm256_set1_epi8('\x1b');
  __m256i bracket = _mm256_set1_epi8('[');
  __m256i m = _mm256_set1_epi8('m');
  __m256i zero = _mm256_set1_epi8('0');
  __m256i nine = _mm256_set1_epi8(9);
  // Held in registers: GCC 12 would otherwise build the five again in every round.
  __asm__("" : "+x"(esc), "+x"(bracket), "+x"(m), "+x"(zero), "+x"(nine));
  const auto digits = [&](__m256i v) __attribute__((target("avx2"))) {
    const __m256i x = _mm256_sub_epi8(v, zero);
    return bits(_mm256_cmpeq_epi8(_mm256_min_epu8(x, nine), x));
  };
  alignas(32) char tail[32 + kLookahead + 32];
  std::size_t n = 0;
  std::uint64_t carried = 0;  // the bytes of a sequence begun in the round before, from bit 0
  while (p < end) {
    const char* src = p;
    std::ptrdiff_t avail = end - p;
    if (avail < 32 + kLookahead) {
      std::memset(tail, 0, sizeof tail);
      std::memcpy(tail, p, static_cast<std::size_t>(avail));
      src = tail;
    }
    const __m256i b0 = load(src);
    const std::uint32_t escapes = bits(_mm256_cmpeq_epi8(b0, esc));
    std::uint64_t drop = carried;
    std::uint32_t other = 0;
    if (escapes != 0) {
      const std::uint32_t lead = escapes & bits(_mm256_cmpeq_epi8(load(src + 1), bracket)) & digits(load(src + 2));
      const __m256i b3 = load(src + 3);
      const std::uint64_t short4 = lead & bits(_mm256_cmpeq_epi8(b3, m));
      const std::uint64_t short5 = lead & digits(b3) & bits(_mm256_cmpeq_epi8(load(src + 4), m));
      const std::uint64_t starts = short4 | short5;
      const std::uint64_t two = starts | starts << 1;
      drop |= two | two << 2 | short5 << 4;
      other = escapes & ~static_cast<std::uint32_t>(starts);
    }
    // A sequence found in this round ends before the next escape, so before `other` too.
    std::ptrdiff_t take = other != 0 ? __builtin_ctz(other) : 32;
    if (take > avail) take = avail;
    const std::uint32_t in_round = take == 32 ? ~0u : (1u << take) - 1;
    pack_kept(b0, ~static_cast<std::uint32_t>(drop) & in_round, out, n);
    p += take;
    carried = take == 32 ? drop >> 32 : 0;
    if (other != 0 && take < avail) p = strip_escape(p, end, out, n);
  }
  return n;
}
#endif

}  // namespace

std::string_view strip_ansi_by_walk(std::string_view line, Arena& arena) {
  char* out = arena.reserve(line.size());
  return {out, strip_by_walk(line.data(), line.data() + line.size(), out)};
}

std::string_view strip_ansi(std::string_view line, Arena& arena) {
#if defined(__x86_64__)
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
  if (avx2) {
    char* out = arena.reserve(line.size() + 8);
    return {out, strip_avx2(line.data(), line.data() + line.size(), out)};
  }
#endif
  return strip_ansi_by_walk(line, arena);
}

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::size_t put_utf8(char* out, std::uint32_t cp) {
  if (cp < 0x80) {
    out[0] = static_cast<char>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<char>(0xC0 | (cp >> 6));
    out[1] = static_cast<char>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<char>(0xE0 | (cp >> 12));
    out[1] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<char>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<char>(0xF0 | (cp >> 18));
  out[1] = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<char>(0x80 | (cp & 0x3F));
  return 4;
}

}  // namespace

std::optional<std::string_view> decode_rust_debug_string(std::string_view quoted, std::size_t& consumed,
                                                         Arena& arena) {
  if (quoted.empty() || quoted.front() != '"') return std::nullopt;
  // Decoding never grows: every escape is at least as long as the bytes it stands for.
  char* out = arena.reserve(quoted.size());
  std::size_t n = 0;
  std::size_t i = 1;
  while (i < quoted.size()) {
    const char c = quoted[i];
    if (c == '"') {
      consumed = i + 1;
      return std::string_view(out, n);
    }
    if (c != '\\') {
      out[n++] = c;
      ++i;
      continue;
    }
    if (i + 1 >= quoted.size()) return std::nullopt;
    const char e = quoted[i + 1];
    i += 2;
    switch (e) {
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case '0': out[n++] = '\0'; break;
      case '\\': out[n++] = '\\'; break;
      case '"': out[n++] = '"'; break;
      case '\'': out[n++] = '\''; break;
      case 'u': {
        // \u{1F600}: one to six hex digits in braces.
        if (i >= quoted.size() || quoted[i] != '{') return std::nullopt;
        std::uint32_t cp = 0;
        std::size_t j = i + 1;
        std::size_t digits = 0;
        while (j < quoted.size() && hex_value(quoted[j]) >= 0 && digits < 6) {
          cp = cp * 16 + static_cast<std::uint32_t>(hex_value(quoted[j]));
          ++j;
          ++digits;
        }
        if (digits == 0 || j >= quoted.size() || quoted[j] != '}' || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
          return std::nullopt;
        }
        n += put_utf8(out + n, cp);
        i = j + 1;
        break;
      }
      default:
        // Not an escape Rust's Debug writes: keep it as it stands.
        out[n++] = '\\';
        out[n++] = e;
        break;
    }
  }
  return std::nullopt;
}

}  // namespace nle::parsers
