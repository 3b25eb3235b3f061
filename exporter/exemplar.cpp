#include "exporter/exemplar.h"

#include "exporter/exposition.h"

namespace nle {

bool exemplar_label_fits(std::string_view name, std::string_view value) {
  // A code point is at least one byte: short sets (every UUID) are decided without counting.
  if (name.size() + value.size() <= kExemplarMaxCodePoints) return true;
  return utf8_code_points(name) + utf8_code_points(value) <= kExemplarMaxCodePoints;
}

}  // namespace nle
