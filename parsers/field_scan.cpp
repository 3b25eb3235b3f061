// Byte-level helpers for text lines: removing colour escapes and decoding Rust Debug strings.

#include <cstdint>
#include <cstring>

#include "parsers/shapes.h"

namespace nle::parsers {

std::string_view strip_ansi(std::string_view line, Arena& arena) {
  char* out = arena.reserve(line.size());
  std::size_t n = 0;
  std::size_t i = 0;
  while (i < line.size()) {
    const char c = line[i];
    if (c == '\x1b' && i + 1 < line.size() && line[i + 1] == '[') {
      // CSI: ESC '[' parameter bytes 0x30-0x3F, intermediate bytes 0x20-0x2F, final 0x40-0x7E.
      std::size_t j = i + 2;
      while (j < line.size() && line[j] >= 0x30 && line[j] <= 0x3F) ++j;
      while (j < line.size() && line[j] >= 0x20 && line[j] <= 0x2F) ++j;
      if (j < line.size() && line[j] >= 0x40 && line[j] <= 0x7E) {
        i = j + 1;
        continue;
      }
    }
    out[n++] = c;
    ++i;
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
