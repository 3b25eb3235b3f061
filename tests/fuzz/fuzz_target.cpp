// The libFuzzer entry point of one target: built once per target with NLE_FUZZ_TARGET naming it
// (tests/fuzz/CMakeLists.txt), so each binary fuzzes exactly one property of checks.cpp.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tests/fuzz/checks.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const nle::fuzz::Target* const target = [] {
    const nle::fuzz::Target* found = nle::fuzz::find_target(NLE_FUZZ_TARGET);
    if (found == nullptr) {
      std::fprintf(stderr, "no fuzz target named %s\n", NLE_FUZZ_TARGET);
      std::abort();
    }
    return found;
  }();
  try {
    target->check(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const nle::fuzz::CheckFailure& failure) {
    std::fprintf(stderr, "fuzz_%s: property broken: %s\n", NLE_FUZZ_TARGET, failure.what());
    std::abort();
  }
  return 0;
}
