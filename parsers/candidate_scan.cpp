#include "parsers/candidate_scan.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <span>
#include <vector>

#include "parsers/line_parser.h"
#include "parsers/relevance.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace nle {
namespace {

// A SIMD prefilter: two bytes of an anchor, `i` and `j` bytes after a possible start. The pairs
// were picked as the rarest in generated and real CP logs of every shape (see bench/README.md);
// any pair is correct, since every hit is verified against the full needles.
struct Anchor {
  std::string_view text;
  unsigned char i;
  unsigned char j;
};
// The encoded journald needles, compact or spaced, share "118," ("v": in "received", "level",
// "version"), so one anchor stands for six needles; "8," is rare outside byte arrays. The counting
// event values share "ompliance" or "untime", so two anchors stand for four needles.
constexpr Anchor kAnchors[] = {
    {"report received", 2, 9}, {"ompliance", 2, 7}, {"untime", 0, 4},           {"held by fleet-level gate", 0, 20},
    {"version", 0, 3},         {"118,", 2, 3},      {"\"MESSAGE\":null", 1, 10},
};
constexpr std::size_t kAnchorCount = sizeof kAnchors / sizeof kAnchors[0];

constexpr std::size_t max_j() {
  std::size_t m = 0;
  for (const Anchor& a : kAnchors) m = a.j > m ? a.j : m;
  return m;
}
// A full SIMD chunk reads up to this many bytes past its 64.
constexpr std::size_t kLookahead = max_j();

// The anchors' byte pairs without repeats (the two encoded anchors share theirs): what the SIMD
// kernels test at every position.
struct Pair {
  char bi, bj;
  unsigned char i, j;
  constexpr bool operator==(const Pair&) const = default;
};
constexpr std::size_t count_pairs() {
  std::size_t n = 0;
  for (std::size_t a = 0; a < kAnchorCount; ++a) {
    const Pair p{kAnchors[a].text[kAnchors[a].i], kAnchors[a].text[kAnchors[a].j], kAnchors[a].i, kAnchors[a].j};
    bool seen = false;
    for (std::size_t b = 0; b < a; ++b) {
      seen = seen || p == Pair{kAnchors[b].text[kAnchors[b].i], kAnchors[b].text[kAnchors[b].j], kAnchors[b].i, kAnchors[b].j};
    }
    n += seen ? 0 : 1;
  }
  return n;
}
constexpr std::size_t kPairCount = count_pairs();
constexpr std::array<Pair, kPairCount> make_pairs() {
  std::array<Pair, kPairCount> pairs{};
  std::size_t n = 0;
  for (std::size_t a = 0; a < kAnchorCount; ++a) {
    const Pair p{kAnchors[a].text[kAnchors[a].i], kAnchors[a].text[kAnchors[a].j], kAnchors[a].i, kAnchors[a].j};
    bool seen = false;
    for (std::size_t b = 0; b < n; ++b) seen = seen || pairs[b] == p;
    if (!seen) pairs[n++] = p;
  }
  return pairs;
}
constexpr std::array<Pair, kPairCount> kPairs = make_pairs();

// `version`, the anchor most hits on a busy CP are (agent_version, tower-http's request spans).
constexpr std::size_t kVersionAnchor = [] {
  std::size_t a = 0;
  while (kAnchors[a].text != "version") ++a;
  return a;
}();
constexpr bool only_anchor_starting_with(std::size_t anchor) {
  for (std::size_t a = 0; a < kAnchorCount; ++a) {
    if (a != anchor && kAnchors[a].text[0] == kAnchors[anchor].text[0]) return false;
  }
  return true;
}
static_assert(only_anchor_starting_with(kVersionAnchor), "verify()'s fast path for 'v' tests one anchor");

// Which needles an anchor hit may be part of, and where the anchor sits in each.
struct Tables {
  // Where a needle counts (needle_occurrence_counts(), inlined here: most hits on a busy CP are
  // `version`s that do not count).
  enum class Where : std::uint8_t { anywhere, version_field, not_json_report_message, other };
  struct Covered {
    std::string_view needle;
    std::size_t offset;
    Where where;
    bool is_anchor;        // the needle is its anchor: nothing more to compare
    bool makes_relevant;   // needle_makes_relevant(needle)
    bool makes_json_object_relevant;  // needle_makes_json_object_relevant(needle)
  };
  std::vector<Covered> covered[kAnchorCount];
  // Which anchors start with each byte, as bits: a hit is compared with those only.
  std::uint8_t anchors_starting_with[256] = {};
  bool covers_all = true;
};
static_assert(kAnchorCount <= 8, "anchors_starting_with holds a bit per anchor");

const Tables& tables() {
  static const Tables t = [] {
    Tables built;
    for (std::size_t a = 0; a < kAnchorCount; ++a) {
      built.anchors_starting_with[static_cast<unsigned char>(kAnchors[a].text[0])] |= static_cast<std::uint8_t>(1u << a);
    }
    for (std::string_view needle : relevance_needles()) {
      bool found = false;
      for (std::size_t a = 0; a < kAnchorCount && !found; ++a) {
        const std::size_t at = needle.find(kAnchors[a].text);
        if (at == std::string_view::npos) continue;
        // The two a busy CP's lines hold most are tested inline; the rest ask line_parser.h.
        const Tables::Where where = needle == "version"                     ? Tables::Where::version_field
                                    : needle == parsers::kReportReceived     ? Tables::Where::not_json_report_message
                                    : needle_counts_only_somewhere(needle) ? Tables::Where::other
                                                                             : Tables::Where::anywhere;
        built.covered[a].push_back({needle, at, where, needle == kAnchors[a].text, needle_makes_relevant(needle),
                                      needle_makes_json_object_relevant(needle)});
        found = true;
      }
      if (!found) built.covers_all = false;
    }
    // verify()'s fast path takes `version` as the only needle its anchor covers; if a needle
    // holding it were added, every line is a candidate (correct, slow) until that path is mended.
    const auto& version = built.covered[kVersionAnchor];
    if (version.size() != 1 || version[0].needle != "version") built.covers_all = false;
    return built;
  }();
  return t;
}

// memcmp() for the few bytes of an anchor or needle, without a call: 8 bytes at a time, the last
// 8 (or 4) overlapping.
inline bool same_bytes(const char* p, std::string_view s) {
  const auto load8 = [](const char* q) {
    std::uint64_t v;
    std::memcpy(&v, q, 8);
    return v;
  };
  const auto load4 = [](const char* q) {
    std::uint32_t v;
    std::memcpy(&v, q, 4);
    return v;
  };
  const std::size_t n = s.size();
  if (n >= 8) {
    for (std::size_t k = 0; k + 8 <= n; k += 8) {
      if (load8(p + k) != load8(s.data() + k)) return false;
    }
    return load8(p + n - 8) == load8(s.data() + n - 8);
  }
  if (n >= 4) return load4(p) == load4(s.data()) && load4(p + n - 4) == load4(s.data() + n - 4);
  for (std::size_t k = 0; k < n; ++k) {
    if (p[k] != s[k]) return false;
  }
  return true;
}

constexpr std::size_t kNoAnchor = kAnchorCount;

// The anchors of the counting event values: a line found by one is most likely a line that counts.
constexpr bool is_counting_value_anchor(std::size_t a) {
  return kAnchors[a].text == "ompliance" || kAnchors[a].text == "untime";
}

// A needle verified at a hit: the anchor that led to it (kNoAnchor if none), and whether the
// needle makes its line relevant by itself.
struct Verified {
  std::size_t anchor;
  const Tables::Covered* needle;
};

// Is a relevance needle at `at`, given that some anchor's byte pair matched there?
Verified verify(const Tables& t, const char* d, std::size_t size, std::size_t at) {
  const char* const end = d + size;
  if (d[at] == 'v') {
    // The general loop below, for the one anchor starting with 'v', which covers one needle: itself.
    const Tables::Covered& version = t.covered[kVersionAnchor].front();
    if (size - at >= 7 && same_bytes(d + at, "version") && parsers::is_build_info_version_at(d, end, d + at)) {
      return {kVersionAnchor, &version};
    }
    return {kNoAnchor, nullptr};
  }
  for (unsigned bits = t.anchors_starting_with[static_cast<unsigned char>(d[at])]; bits != 0; bits &= bits - 1) {
    const std::size_t a = static_cast<std::size_t>(__builtin_ctz(bits));
    const std::string_view anchor = kAnchors[a].text;
    // The pair first: most hits of a pair are not its anchor.
    if (size - at < anchor.size() || d[at + kAnchors[a].i] != anchor[kAnchors[a].i] ||
        d[at + kAnchors[a].j] != anchor[kAnchors[a].j] || !same_bytes(d + at, anchor)) {
      continue;
    }
    for (const Tables::Covered& c : t.covered[a]) {
      if (at < c.offset) continue;
      const std::size_t start = at - c.offset;
      if (!c.is_anchor && (size - start < c.needle.size() || !same_bytes(d + start, c.needle))) continue;
      switch (c.where) {
        case Tables::Where::anywhere:
          return {a, &c};
        case Tables::Where::version_field:
          if (parsers::is_build_info_version_at(d, end, d + start)) return {a, &c};
          break;
        case Tables::Where::not_json_report_message:
          if (!parsers::is_json_report_message(d, end, d + start)) return {a, &c};
          break;
        case Tables::Where::other:
          if (needle_occurrence_counts(std::string_view(d, size), start, c.needle)) return {a, &c};
          break;
      }
    }
  }
  return {kNoAnchor, nullptr};
}

// Masks for the (up to 64) positions of [base, size), byte by byte: the tail of a block, and
// every chunk where no SIMD kernel exists.
void scalar_chunk(const char* d, std::size_t base, std::size_t size, std::uint64_t& newlines, std::uint64_t& hits) {
  const std::size_t n = size - base < 64 ? size - base : 64;
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t p = base + k;
    if (d[p] == '\n') {
      // No anchor starts with a newline; line_holds_needle() pads its copy with them.
      newlines |= 1ull << k;
      continue;
    }
    for (const Anchor& a : kAnchors) {
      if (p + a.j < size && d[p + a.i] == a.text[a.i] && d[p + a.j] == a.text[a.j]) {
        hits |= 1ull << k;
        break;
      }
    }
  }
}

namespace portable {
#define NLE_SCAN_CHUNK(p, newlines, hits) scalar_chunk(d, base, size, newlines, hits)
#include "parsers/candidate_scan_kernel.inc"
#undef NLE_SCAN_CHUNK
}  // namespace portable

#if defined(__x86_64__)

namespace sse2 {
// SSE2 is part of x86-64 itself: always there.
template <std::size_t A>
inline __m128i pair_at(const char* p) {
  constexpr Pair pair = kPairs[A];
  const __m128i x = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + pair.i)), _mm_set1_epi8(pair.bi));
  const __m128i y = _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + pair.j)), _mm_set1_epi8(pair.bj));
  return _mm_and_si128(x, y);
}
template <std::size_t... A>
inline __m128i any_pair(const char* p, std::index_sequence<A...>) {
  return (_mm_setzero_si128() | ... | pair_at<A>(p));
}
inline void chunk(const char* p, std::uint64_t& newlines, std::uint64_t& hits) {
  const __m128i nl = _mm_set1_epi8('\n');
  for (int h = 0; h < 64; h += 16) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + h));
    const __m128i any = any_pair(p + h, std::make_index_sequence<kPairCount>());
    newlines |= static_cast<std::uint64_t>(static_cast<std::uint16_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, nl)))) << h;
    hits |= static_cast<std::uint64_t>(static_cast<std::uint16_t>(_mm_movemask_epi8(any))) << h;
  }
}
#define NLE_SCAN_CHUNK(p, newlines, hits) chunk(p, newlines, hits)
#include "parsers/candidate_scan_kernel.inc"
#undef NLE_SCAN_CHUNK
}  // namespace sse2

// g++ and clang spell "compile these functions for AVX2" differently (clang builds the fuzz
// targets, tests/fuzz/).
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,popcnt"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,popcnt")
#endif
namespace avx2 {
// The byte vectors of every pair and the newline, in memory, read through a pointer the optimiser
// cannot see through: each compare then takes its vector from memory (one instruction) instead
// of GCC 12 building it again for every 64 bytes (three instructions apiece).
struct alignas(32) PairVectors {
  std::uint8_t newline[32];
  std::uint8_t bi[kPairCount][32];
  std::uint8_t bj[kPairCount][32];
};
constexpr PairVectors kPairVectors = [] {
  PairVectors v{};
  for (std::size_t k = 0; k < 32; ++k) {
    v.newline[k] = '\n';
    for (std::size_t a = 0; a < kPairCount; ++a) {
      v.bi[a][k] = static_cast<std::uint8_t>(kPairs[a].bi);
      v.bj[a][k] = static_cast<std::uint8_t>(kPairs[a].bj);
    }
  }
  return v;
}();
inline const PairVectors* opaque_pair_vectors() {
  const PairVectors* v = &kPairVectors;
  __asm__ volatile("" : "+r"(v));  // volatile: not hoisted out of the loop it stands in
  return v;
}
inline __m256i vector_of(const std::uint8_t (&bytes)[32]) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(bytes));
}
template <std::size_t A>
inline __m256i pair_at(const char* p, const PairVectors& v) {
  constexpr Pair pair = kPairs[A];
  const __m256i x = _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + pair.i)), vector_of(v.bi[A]));
  const __m256i y = _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + pair.j)), vector_of(v.bj[A]));
  return _mm256_and_si256(x, y);
}
template <std::size_t... A>
inline __m256i any_pair(const char* p, const PairVectors& v, std::index_sequence<A...>) {
  return (_mm256_setzero_si256() | ... | pair_at<A>(p, v));
}
inline void chunk(const char* p, std::uint64_t& newlines, std::uint64_t& hits) {
  for (int h = 0; h < 64; h += 32) {
    // Laundered for each 32 bytes, so that every vector is used once and read by its compare
    // straight from memory: held across rounds they do not all fit in registers, and GCC copies
    // them to the stack every round.
    const PairVectors& v = *opaque_pair_vectors();
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + h));
    const __m256i any = any_pair(p + h, v, std::make_index_sequence<kPairCount>());
    newlines |= static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(bytes, vector_of(v.newline)))))
                << h;
    hits |= static_cast<std::uint64_t>(static_cast<std::uint32_t>(_mm256_movemask_epi8(any))) << h;
  }
}
#define NLE_SCAN_CHUNK(p, newlines, hits) chunk(p, newlines, hits)
#include "parsers/candidate_scan_kernel.inc"
#undef NLE_SCAN_CHUNK
}  // namespace avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#endif

using ScanFn = Candidate (*)(const char*, std::size_t, std::size_t, std::size_t, bool);

struct Kernel {
  ScanFn scan;
  std::string_view name;
};

// Every kernel this CPU runs, the fastest first.
struct Kernels {
  Kernel list[3];
  std::size_t count = 0;
  std::string_view names[3];
};

const Kernels& kernels() {
  static const Kernels k = [] {
    Kernels built;
    auto add = [&](Kernel kernel) {
      built.names[built.count] = kernel.name;
      built.list[built.count++] = kernel;
    };
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt")) add({avx2::scan, "avx2"});
    add({sse2::scan, "sse2"});
#endif
    add({portable::scan, "scalar"});
    return built;
  }();
  return k;
}

Candidate find_with(const Kernel& kernel, std::string_view block, std::size_t from, std::size_t max_line_bytes) {
  if (!tables().covers_all) {
    // Unknown needles: every line is a candidate.
    Candidate c;
    c.line_begin = from;
    const void* nl = std::memchr(block.data() + from, '\n', block.size() - from);
    c.line_end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - block.data()) : block.size();
    c.found = from < block.size();
    if (!c.found) c.line_begin = c.line_end = block.size();
    return c;
  }
  return kernel.scan(block.data(), block.size(), from, max_line_bytes, false);
}

}  // namespace

Candidate find_candidate(std::string_view block, std::size_t from, std::size_t max_line_bytes) {
  return find_with(kernels().list[0], block, from, max_line_bytes);
}

Candidate find_candidate_with(std::string_view kernel, std::string_view block, std::size_t from,
                              std::size_t max_line_bytes) {
  const Kernels& k = kernels();
  for (std::size_t i = 0; i < k.count; ++i) {
    if (k.list[i].name == kernel) return find_with(k.list[i], block, from, max_line_bytes);
  }
  return find_candidate(block, from, max_line_bytes);
}

bool line_holds_needle(std::string_view line) {
  if (!tables().covers_all) return true;
  // The line, then newlines up to a whole number of chunks plus the kernel's lookahead: every
  // chunk that holds a byte of the line is then scanned with SIMD, and only newlines are left.
  thread_local std::vector<char> padded;
  const std::size_t size = (line.size() + 1 + 63) / 64 * 64 + kLookahead;
  if (padded.size() < size) padded.resize(size);
  if (!line.empty()) std::memcpy(padded.data(), line.data(), line.size());
  std::memset(padded.data() + line.size(), '\n', size - line.size());
  const Candidate c = kernels().list[0].scan(padded.data(), size, 0, SIZE_MAX, true);
  return c.found && c.line_begin == 0;
}

std::string_view candidate_scan_kernel() { return kernels().list[0].name; }

std::span<const std::string_view> candidate_scan_kernels() {
  return std::span<const std::string_view>(kernels().names, kernels().count);
}

bool candidate_scan_covers_all_needles() { return tables().covers_all; }

}  // namespace nle
