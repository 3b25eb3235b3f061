// Byte-level helpers for text lines: removing colour escapes and decoding Rust Debug strings.

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

}  // namespace

std::string_view strip_ansi(std::string_view line, Arena& arena) {
  // A coloured line has an escape every few bytes, so the runs between them are short: copied
  // 16 bytes at a time, not byte by byte nor through a memchr and memcpy call each.
  char* out = arena.reserve(line.size());
  const char* const end = line.data() + line.size();
  std::size_t n = 0;
  const char* p = line.data();
  while ((p = copy_to_escape(p, end, out, n)) < end) {
    // tracing's own colours first (ESC[2m, ESC[34m): the general rule below would drop them too.
    const auto digit = [](char c) { return c >= '0' && c <= '9'; };
    if (end - p >= 4 && p[1] == '[' && digit(p[2])) {
      if (p[3] == 'm') {
        p += 4;
        continue;
      }
      if (end - p >= 5 && digit(p[3]) && p[4] == 'm') {
        p += 5;
        continue;
      }
    }
    // CSI: ESC '[' parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, final 0x40-0x7E.
    const char* j = p + 1;
    if (j < end && *j == '[') {
      ++j;
      while (j < end && *j >= 0x30 && *j <= 0x3F) ++j;
      while (j < end && *j >= 0x20 && *j <= 0x2F) ++j;
      if (j < end && *j >= 0x40 && *j <= 0x7E) {
        p = j + 1;
        continue;
      }
    }
    out[n++] = '\x1b';  // not a complete CSI sequence: the escape byte is kept
    ++p;
  }
  return {out, n};
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
