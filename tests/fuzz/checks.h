// The properties the fuzz targets check, as plain functions of one input: the libFuzzer targets
// (fuzz_target.cpp, clang only) call them, and tests/fuzz_regressions_test.cpp replays the inputs
// kept under testdata/fuzz-regressions/ through them in every build. A broken property throws
// CheckFailure (libFuzzer reports the uncaught exception as a crash); sanitizers catch the rest.
// Test code: knows the modules' public headers only.
#pragma once

#include <span>
#include <stdexcept>
#include <string_view>

namespace nle::fuzz {

struct CheckFailure : std::logic_error {
  using std::logic_error::logic_error;
};

// One fuzz target: its name (the binary is fuzz_<name>, its regressions are kept in
// testdata/fuzz-regressions/<name>/) and what it checks on one input.
struct Target {
  std::string_view name;
  void (*check)(std::string_view input);
};

// Every target, in the order tests/fuzz.sh runs them.
std::span<const Target> targets();
// The target named `name`, or nullptr.
const Target* find_target(std::string_view name);

}  // namespace nle::fuzz
