#include "exporter/exemplar.h"

#include "exporter/exposition.h"

namespace nle {
namespace {

// Valid UTF-8 has one lead byte per code point; the others are continuation bytes 10xxxxxx.
std::size_t valid_utf8_code_points(std::string_view utf8) {
  std::size_t count = 0;
  for (char c : utf8) count += (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
  return count;
}

}  // namespace

std::size_t utf8_code_points(std::string_view utf8) {
  return is_valid_utf8(utf8) ? valid_utf8_code_points(utf8) : valid_utf8_code_points(sanitize_utf8(utf8));
}

bool exemplar_label_fits(std::string_view name, std::string_view value) {
  // A code point is at least one byte: short sets (every UUID) are decided without counting.
  if (name.size() + value.size() <= kExemplarMaxCodePoints) return true;
  return utf8_code_points(name) + utf8_code_points(value) <= kExemplarMaxCodePoints;
}

}  // namespace nle
