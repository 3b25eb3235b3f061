#include "exporter/registry.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "exporter/exemplar.h"
#include "exporter/exposition.h"

namespace nle {
namespace {

constexpr std::string_view kUnknown = "unknown";
// The CP's GateBlock discriminators, in the order it evaluates them (quarantine first).
constexpr std::array<std::string_view, 6> kKnownGates = {
    "quarantine", "channel-edges", "wave-promotion", "host-edge", "disruption-budget", "compliance-wave",
};
constexpr std::size_t kUncapped = std::numeric_limits<std::size_t>::max();
// The exemplar label of each CP family: reports carry an event id, gate block lines at most a host.
constexpr std::string_view kEventIdLabel = "event_id";
constexpr std::string_view kHostLabel = "host";
// The most labels a family counted by label values has (compliance failures: control_id, host).
constexpr std::size_t kMaxCountedLabels = 2;

double system_clock_seconds() {
  using std::chrono::duration;
  using std::chrono::system_clock;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

// An empty label value means "no such label" to Prometheus, so a missing value is spelled out.
std::string_view or_unknown(std::string_view value) { return value.empty() ? kUnknown : value; }

// A series key holds its label values in label-name order, each as a 4-byte little-endian length
// then the bytes, so no two label sets share a key whatever bytes they contain. `value` is valid
// UTF-8 already (bounded_label_value's result, or one of our own names), so it is not checked
// again on the way into the key.
void append_key_part(std::string& key, std::string_view value) {
  assert(is_valid_utf8(value));
  const auto length = static_cast<std::uint32_t>(value.size());
  const std::array<char, 4> prefix = {static_cast<char>(length & 0xFFU), static_cast<char>((length >> 8) & 0xFFU),
                                      static_cast<char>((length >> 16) & 0xFFU),
                                      static_cast<char>((length >> 24) & 0xFFU)};
  key.append(prefix.data(), prefix.size());
  key.append(value);
}

// The word readers below run a few times per event on values of a few dozen bytes; a call costs
// as much as their work, and GCC at -O2 declines to inline the ones used in several places.
#define NLE_ALWAYS_INLINE [[gnu::always_inline]] inline

// Unaligned loads: load_le32 reads a key's length prefix, little-endian whatever the host;
// load_word reads 8 bytes in the host's order, which is all hashing and equality need.
NLE_ALWAYS_INLINE std::uint32_t load_le32(const char* at) {
  const auto byte = [at](int i) { return std::uint32_t{static_cast<unsigned char>(at[i])}; };
  return byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24;
}
NLE_ALWAYS_INLINE std::uint64_t load_word(const char* at) {
  std::uint64_t word;
  std::memcpy(&word, at, sizeof word);
  return word;
}

// The last 1-7 bytes of a run as one word, from at most two loads (overlapping) instead of a
// byte loop. Where each byte lands depends on `left` alone and every byte lands somewhere, so two
// runs of the same length are equal exactly when their words are; each byte keeps its top bit in
// the top bit of a word byte.
NLE_ALWAYS_INLINE std::uint64_t tail_word(const char* at, std::size_t left) {
  if (left >= 4) return load_le32(at) | std::uint64_t{load_le32(at + left - 4)} << 32;
  return std::uint64_t{static_cast<unsigned char>(at[0])} |
         std::uint64_t{static_cast<unsigned char>(at[left / 2])} << 8 |
         std::uint64_t{static_cast<unsigned char>(at[left - 1])} << 16;
}

// Calls fn(word) for every 8 bytes of `bytes`, then once for the rest (tail_word), if any.
template <typename Fn>
NLE_ALWAYS_INLINE void for_each_word(std::string_view bytes, Fn&& fn) {
  const char* at = bytes.data();
  std::size_t left = bytes.size();
  for (; left >= 8; at += 8, left -= 8) fn(load_word(at));
  if (left > 0) fn(tail_word(at, left));
}

constexpr std::uint64_t kHighBits = 0x8080808080808080ULL;

// Whether every byte is below 0x80, which is valid UTF-8 as it is: the common case of a label
// value or event id, decided in a few instructions where is_valid_utf8 pays a call and a byte loop.
NLE_ALWAYS_INLINE bool is_ascii(std::string_view bytes) {
  std::uint64_t seen = 0;
  for_each_word(bytes, [&seen](std::uint64_t word) { seen |= word; });
  return (seen & kHighBits) == 0;
}

// memcmp's answer to "equal?" for short runs, without its call.
NLE_ALWAYS_INLINE bool same_bytes(const char* a, const char* b, std::size_t size) {
  for (; size >= 8; a += 8, b += 8, size -= 8) {
    if (load_word(a) != load_word(b)) return false;
  }
  return size == 0 || tail_word(a, size) == tail_word(b, size);
}

// A label value within the cap as it is (the common case, one compare), else its bounded form
// built in `scratch`. `truncated` says which. Always valid UTF-8, since keys are made of these:
// two invalid byte strings that render alike must land in one series, or the output would hold
// the same series twice.
std::string_view bounded_label_value(std::string_view value, std::size_t max_bytes, std::string& scratch,
                                     bool& truncated) {
  truncated = false;
  if (value.size() <= max_bytes && is_valid_utf8(value)) return value;
  if (value.size() <= max_bytes) {
    // Invalid bytes grow into U+FFFD (up to three bytes each): the sanitized form decides.
    scratch.clear();
    append_sanitized_utf8(scratch, value);
    if (scratch.size() <= max_bytes) return scratch;
  }
  truncated = true;
  scratch = truncate_label_value(value, max_bytes);
  return scratch;
}

// The next label value of a key, consumed from its front; `key` must hold at least 4 bytes.
std::string_view next_key_part(std::string_view& key) {
  const std::size_t length = std::min<std::size_t>(load_le32(key.data()), key.size() - 4);
  const std::string_view value(key.data() + 4, length);
  key.remove_prefix(4 + length);
  return value;
}

// Whether `key` holds exactly `values`, in order, compared where they lie: a lookup of a series
// that exists builds no key.
template <std::size_t kLabels>
bool key_holds(std::string_view key, const std::array<std::string_view, kLabels>& values) {
  for (std::string_view value : values) {
    if (key.size() < 4 || load_le32(key.data()) != value.size() || key.size() - 4 < value.size()) return false;
    if (!same_bytes(key.data() + 4, value.data(), value.size())) return false;
    key.remove_prefix(4 + value.size());
  }
  return key.empty();
}

// `count` is how many values the key holds (its family's label count), so the vector is
// allocated once.
std::vector<std::string> decode_key(std::string_view key, std::size_t count) {
  std::vector<std::string> values;
  values.reserve(count);
  while (key.size() >= 4) values.emplace_back(next_key_part(key));
  return values;
}

// Whether the label values in key `a` sort before those in `b`, as std::vector<std::string>
// compares them (value by value, bytes as unsigned), without decoding into strings.
bool key_less(std::string_view a, std::string_view b) {
  for (;;) {
    if (b.size() < 4) return false;
    if (a.size() < 4) return true;
    const int order = next_key_part(a).compare(next_key_part(b));
    if (order != 0) return order < 0;
  }
}

std::string key_of(std::initializer_list<std::string_view> values) {
  std::string key;
  for (std::string_view value : values) append_key_part(key, value);
  return key;
}

// The exemplar of a CP series, kept in the series itself: the label value (up to kInlineBytes in
// place, which holds every UUID, so that recording one touches no other memory; longer ones, up to
// the 128-code-point limit, in a heap buffer kept for reuse) and the log time. The label name is
// the family's. Size 0 means none.
class ExemplarSlot {
 public:
  bool present() const { return size_ != 0; }
  std::string_view value() const {
    return size_ == kOnHeap ? std::string_view(*heap_) : std::string_view(inline_.data(), size_);
  }
  std::optional<std::int64_t> time() const { return has_time_ ? std::optional<std::int64_t>(micros_) : std::nullopt; }

  void clear() { size_ = 0; }
  // `value` is not empty.
  void set(std::string_view value, std::optional<std::int64_t> time) {
    if (value.size() <= kInlineBytes) {
      std::memcpy(inline_.data(), value.data(), value.size());
      size_ = static_cast<std::uint8_t>(value.size());
    } else {
      set_on_heap(value);
    }
    has_time_ = time.has_value();
    micros_ = time.value_or(0);
  }
  void copy_from(const ExemplarSlot& other) {
    if (&other == this) return;
    if (other.present()) {
      set(other.value(), other.time());
    } else {
      clear();
    }
  }
  std::optional<Exemplar> exemplar(std::string_view label_name) const {
    if (!present()) return std::nullopt;
    return Exemplar{std::string(label_name), std::string(value()), time()};
  }

 private:
  static constexpr std::size_t kInlineBytes = 38;
  // Out of line, so that set() with an id that fits saves no registers for the heap's sake.
  [[gnu::noinline]] void set_on_heap(std::string_view value) {
    if (!heap_) heap_ = std::make_unique<std::string>();
    heap_->assign(value);
    size_ = kOnHeap;
  }

  static constexpr std::uint8_t kOnHeap = 0xFF;
  std::int64_t micros_ = 0;
  std::unique_ptr<std::string> heap_;
  std::array<char, kInlineBytes> inline_{};
  std::uint8_t size_ = 0;
  bool has_time_ = false;
};

struct CounterSeries {
  std::uint64_t value = 0;
  double created = 0;
  ExemplarSlot exemplar{};  // the CP's families only: the latest event counted, when it could be named
};

// Asks the CPU to start loading the cache line at `at`. GCC 12 drops __builtin_prefetch in some
// of the places it is needed here (its result is unused, so the whole computation of the address
// goes with it); an asm statement that is volatile stays.
inline void prefetch_line(const void* at) {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(at)));
#else
  __builtin_prefetch(at);
#endif
}

// The hash of a series key, fed its label values one by one: record() hashes the values where
// they lie and builds the key only for a new series, and a key hashes the same once decoded.
// Each value's length goes in before its bytes, as in the key, so values that concatenate alike
// hash apart. Multiply-and-fold (the 128-bit product's halves xored, as wyhash) spreads every
// input bit into the low bits that pick a slot. The state starts from a secret drawn once per
// process: label values come from the log, and with a known start anyone who writes the log could
// compute values that all hash alike (each lookup would then compare keys along one long chain).
// No hash is ever saved, so it need not be the same from one run to the next.
class KeyHasher {
 public:
  NLE_ALWAYS_INLINE void add(std::string_view value) {
    mix(value.size());
    for_each_word(value, [this](std::uint64_t word) {
      mix(word);
      seen_ |= word;
    });
  }
  std::uint64_t hash() const { return fold(state_ ^ kFinal, kMultiplier); }
  // Whether every byte added was ASCII: the words hashed tell it for free, which saves record()
  // a second pass over each label value.
  bool all_ascii() const { return (seen_ & kHighBits) == 0; }

 private:
  __extension__ using Product = unsigned __int128;
  static constexpr std::uint64_t kFinal = 0xa0761d6478bd642fULL;  // wyhash's secrets
  static constexpr std::uint64_t kMultiplier = 0xe7037ed1a0b428dbULL;
  static const std::uint64_t kStart;
  static std::uint64_t fold(std::uint64_t a, std::uint64_t b) {
    const Product product = Product{a} * b;
    return static_cast<std::uint64_t>(product) ^ static_cast<std::uint64_t>(product >> 64);
  }
  void mix(std::uint64_t word) { state_ = fold(state_ ^ word, kMultiplier); }
  std::uint64_t state_ = kStart;
  std::uint64_t seen_ = 0;
};

const std::uint64_t KeyHasher::kStart = [] {
  std::random_device device;
  return (std::uint64_t{device()} << 32 | device()) ^ 0x8bb84b93962eacc9ULL;
}();

#undef NLE_ALWAYS_INLINE

// A series key with its hash, computed once per lookup and kept in the index, so that a probe
// compares hashes and reads a key's bytes only where they match.
struct HashedKey {
  explicit HashedKey(std::string_view key) : bytes(key), hash(hash_of(key)) {}
  // `hash` is KeyHasher's over the values `key` holds (record() hashed them before building it).
  HashedKey(std::string_view key, std::uint64_t key_hash) : bytes(key), hash(key_hash) {}
  std::string_view bytes;
  std::uint64_t hash;

 private:
  static std::uint64_t hash_of(std::string_view key) {
    KeyHasher hasher;
    while (key.size() >= 4) hasher.add(next_key_part(key));
    return hasher.hash();
  }
};

// A series and its key in one allocation, the key's bytes right after the node: a lookup that
// hits reads the node's cache lines and no separate key buffer. Never moves once made, so
// pointers to it and to its series stay valid while its family grows.
class SeriesNode {
 public:
  struct Deleter {
    void operator()(SeriesNode* node) const noexcept {
      node->~SeriesNode();
      ::operator delete(node);
    }
  };
  using Owner = std::unique_ptr<SeriesNode, Deleter>;

  static Owner make(std::string_view key, double created) {
    void* memory = ::operator new(sizeof(SeriesNode) + key.size());
    Owner node(new (memory) SeriesNode(key.size(), created));
    if (!key.empty()) std::memcpy(static_cast<char*>(memory) + sizeof(SeriesNode), key.data(), key.size());
    return node;
  }

  std::string_view key() const { return {reinterpret_cast<const char*>(this) + sizeof(SeriesNode), key_size_}; }
  CounterSeries& series() { return series_; }
  const CounterSeries& series() const { return series_; }

 private:
  SeriesNode(std::size_t key_size, double created) : series_{0, created, {}}, key_size_(key_size) {}
  CounterSeries series_;
  std::size_t key_size_;
};

// Whether a family with no series is still shown (as HELP and TYPE alone).
enum class WhenEmpty : unsigned char { shown, hidden };

// One counter family: its series by key, and the cap on how many label sets it may hold.
class CounterFamily {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names, std::size_t max_series,
                std::string_view exemplar_label = {}, WhenEmpty when_empty = WhenEmpty::shown)
      : name_(std::move(name)),
        public_name_(name_ + "_total"),
        help_(std::move(help)),
        label_names_(std::move(label_names)),
        max_series_(max_series),
        exemplar_label_(exemplar_label),
        when_empty_(when_empty) {}

  CounterSeries* find(const HashedKey& key) {
    return probe(key.hash, [&key](std::string_view held) { return held == key.bytes; });
  }
  // The series of these label values (bounded, in label-name order), `hash` being KeyHasher's
  // over them.
  template <std::size_t kLabels>
  CounterSeries* find(std::uint64_t hash, const std::array<std::string_view, kLabels>& values) {
    return probe(hash, [&values](std::string_view held) { return key_holds(held, values); });
  }
  // Starts loading the index slot a lookup of `hash` reads first, so that a find() a little later
  // does not wait on memory for it. Changes nothing.
  void prefetch_slot(std::uint64_t hash) const {
    if (slots_.empty()) return;
    prefetch_line(&slots_[hash & (slots_.size() - 1)]);
  }
  // Starts loading the series node a lookup of `hash` would find in its first slot, once that slot
  // is at hand (after prefetch_slot): its two first cache lines, the counter with its exemplar
  // and the key after them.
  void prefetch_node(std::uint64_t hash) const {
    if (slots_.empty()) return;
    const Slot& slot = slots_[hash & (slots_.size() - 1)];
    if (slot.node == nullptr || slot.hash != hash) return;
    const char* node = reinterpret_cast<const char*>(slot.node);
    prefetch_line(node);
    prefetch_line(node + 64);
  }

  // A series that must exist whatever the cap (the known gates, every event kind, ...).
  CounterSeries& preset(const HashedKey& key, double created) {
    if (CounterSeries* series = find(key)) return *series;
    return insert(key, created);
  }
  // nullptr when the label set is new and the family already holds its cap of series.
  // `key` is not in the family yet.
  CounterSeries* add(const HashedKey& key, double created) {
    if (nodes_.size() >= max_series_) return nullptr;
    return &insert(key, created);
  }

  // The name users see on the sample lines, and the `family` label of series_dropped.
  std::string_view public_name() const { return public_name_; }
  const std::string& name() const { return name_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // The label naming an event in this family's exemplars; empty: the family has none.
  std::string_view exemplar_label() const { return exemplar_label_; }
  bool shown() const { return when_empty_ == WhenEmpty::shown || !nodes_.empty(); }

  // Calls fn(key, series) for every series, in the order they were added.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (const SeriesNode::Owner& node : nodes_) fn(node->key(), node->series());
  }

  // Calls fn(key, series) for every series, sorted by label values.
  template <typename Fn>
  void for_each_sorted(Fn&& fn) const {
    if (pending_.empty()) {
      for (const SeriesNode* node : sorted_) fn(node->key(), node->series());
      return;
    }
    std::vector<const SeriesNode*> pending = pending_;  // at most a few percent of the series
    std::sort(pending.begin(), pending.end(), node_less);
    auto a = sorted_.begin();
    auto b = pending.begin();
    while (a != sorted_.end() || b != pending.end()) {
      const bool take_b = a == sorted_.end() || (b != pending.end() && node_less(*b, *a));
      const SeriesNode* node = take_b ? *b++ : *a++;
      fn(node->key(), node->series());
    }
  }

  Family to_family() const {
    Family family{name_, help_, MetricType::counter, label_names_, {}};
    family.series.reserve(nodes_.size());
    for_each_sorted([&](std::string_view key, const CounterSeries& series) {
      family.series.push_back(Series{decode_key(key, label_names_.size()), static_cast<double>(series.value),
                                     series.created, series.exemplar.exemplar(exemplar_label_)});
    });
    return family;
  }

 private:
  // An index entry; an empty one has no node. The hash is kept so that neither a probe past other
  // keys nor a growth of the table reads any node.
  struct Slot {
    std::uint64_t hash = 0;
    SeriesNode* node = nullptr;
  };
  static constexpr std::size_t kMinSlots = 8;

  // A type, not a function: std::sort and std::inplace_merge inline a comparator object's call,
  // where through a function pointer every comparison was an indirect call.
  struct NodeLess {
    bool operator()(const SeriesNode* a, const SeriesNode* b) const { return key_less(a->key(), b->key()); }
  };
  static constexpr NodeLess node_less{};

  template <typename Matches>
  CounterSeries* probe(std::uint64_t hash, Matches&& matches) {
    if (slots_.empty()) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t at = hash & mask;; at = (at + 1) & mask) {
      const Slot& slot = slots_[at];
      if (slot.node == nullptr) return nullptr;
      if (slot.hash == hash && matches(slot.node->key())) return &slot.node->series();
    }
  }

  CounterSeries& insert(const HashedKey& key, double created) {
    // At most half full, so that a probe ends at an empty slot after a step or two on average.
    if ((nodes_.size() + 1) * 2 > slots_.size()) grow();
    nodes_.push_back(SeriesNode::make(key.bytes, created));
    SeriesNode* node = nodes_.back().get();
    place(Slot{key.hash, node});
    note_added(node);
    return node->series();
  }

  void place(const Slot& entry) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t at = entry.hash & mask;
    while (slots_[at].node != nullptr) at = (at + 1) & mask;
    slots_[at] = entry;
  }

  void grow() {
    std::vector<Slot> old(std::max(kMinSlots, slots_.size() * 2));
    old.swap(slots_);
    for (const Slot& entry : old) {
      if (entry.node != nullptr) place(entry);
    }
  }

  // Keeps the sorted order up to date incrementally, so a snapshot never sorts the whole family:
  // new series wait in `pending_` and are sorted and merged in once they are 1/8 of the family
  // (amortized O(1) merge work per new series); a snapshot merges the few pending ones on the fly.
  void note_added(const SeriesNode* node) {
    pending_.push_back(node);
    if (pending_.size() < std::max<std::size_t>(32, sorted_.size() / 8)) return;
    std::sort(pending_.begin(), pending_.end(), node_less);
    const auto middle = static_cast<std::ptrdiff_t>(sorted_.size());
    sorted_.insert(sorted_.end(), pending_.begin(), pending_.end());
    std::inplace_merge(sorted_.begin(), sorted_.begin() + middle, sorted_.end(), node_less);
    pending_.clear();
  }

  std::string name_;
  std::string public_name_;
  std::string help_;
  std::vector<std::string> label_names_;  // sorted; keys hold the values in this order
  std::size_t max_series_;
  std::string_view exemplar_label_;
  WhenEmpty when_empty_;
  // Owns the series, in the order they were added; each on its own allocation, so pointers to
  // series stay valid as the family grows (the Impl caches some).
  std::vector<SeriesNode::Owner> nodes_;
  // Open addressing over nodes_, probed linearly; its size is a power of two (or 0 before the
  // first series). Series are never removed, so there are no tombstones.
  std::vector<Slot> slots_;
  // Every node is in exactly one of these. Label values are decoded from the key at snapshot
  // time: a copy into the snapshot's strings costs the same as a decode, so keeping decoded
  // copies would only add memory.
  std::vector<const SeriesNode*> sorted_;   // sorted by label values
  std::vector<const SeriesNode*> pending_;  // added since the last merge, in insertion order
};

Family gauge_family(std::string name, std::string help, std::vector<std::string> label_names,
                    std::vector<std::string> label_values, double value) {
  Family family{std::move(name), std::move(help), MetricType::gauge, std::move(label_names), {}};
  family.series.push_back(Series{std::move(label_values), value, 0, std::nullopt});
  return family;
}

}  // namespace

// Families whose labels come from the exporter's own fixed vocabulary (kinds, reasons, family
// names) cannot grow without bound, so only the others get options.max_series_per_family.
// Cache-line aligned, as CandidateScreen::Impl: each of replay's threads counts into its own.
struct alignas(128) Registry::Impl {
  explicit Impl(RegistryOptions registry_options)
      : options(std::move(registry_options)),
        max_label_bytes(std::max(options.max_label_bytes, kMinMaxLabelBytes)),
        created_at(now()),
        compliance_failures("nixfleet_compliance_failure_events",
                            "ComplianceFailure reports received, per control and host.", {"control_id", "host"},
                            options.max_series_per_family, kEventIdLabel),
        runtime_gate_errors("nixfleet_runtime_gate_error_events", "RuntimeGateError reports received.", {},
                            kUncapped, kEventIdLabel),
        gate_blocks("nixfleet_gate_block", "Dispatches held by a fleet-level gate, per gate kind.", {"gate"},
                    options.max_series_per_family, kHostLabel),
        lines_read("nixfleet_log_exporter_lines_read", "Lines read from the input, whether or not they held an event.",
                   {}, kUncapped),
        bytes_read("nixfleet_log_exporter_bytes_read", "Bytes read from the input, line terminators included.", {},
                   kUncapped),
        events("nixfleet_log_exporter_events",
               "CP events recognised, per kind; includes events whose series was dropped by the series cap.",
               {"kind"}, kUncapped),
        lines_skipped("nixfleet_log_exporter_lines_skipped",
                      "Lines not read as events because they were malformed, per reason.", {"reason"}, kUncapped),
        series_dropped("nixfleet_log_exporter_series_dropped",
                       "Events not counted because their new label set would exceed the per-family series cap, "
                       "per family.",
                       {"family"}, kUncapped),
        truncations("nixfleet_log_exporter_truncations",
                    "Times a followed file was truncated (it shrank, or was written again from its start) and "
                    "read again from its start.",
                    {}, kUncapped),
        rotations("nixfleet_log_exporter_rotations",
                  "Times a followed file was replaced by a new one (log rotation) and the new one opened.", {},
                  kUncapped),
        read_errors("nixfleet_log_exporter_read_errors",
                    "Errors reading the input, per reason; reading goes on after each.", {"reason"},
                    options.max_series_per_family),
        http_requests("nixfleet_log_exporter_http_requests", "HTTP requests served, per status code.", {"code"},
                      options.max_series_per_family),
        label_values_truncated("nixfleet_log_exporter_label_values_truncated",
                               "Label values longer than --max-label-bytes, counted under a truncated, marked value, "
                               "per label name.",
                               {"label"}, kUncapped),
        // Hidden until it counts, so that the pages of every log without such an event stay as
        // they were before exemplars.
        exemplars_dropped("nixfleet_log_exporter_exemplars_dropped",
                          "Events counted without an exemplar because its label set would exceed OpenMetrics' "
                          "128 code points, per family.",
                          {"family"}, kUncapped, {}, WhenEmpty::hidden),
        exporter_build_info{sanitize_utf8(or_unknown(options.exporter_branch)),
                            sanitize_utf8(or_unknown(options.exporter_compiler)),
                            sanitize_utf8(or_unknown(options.exporter_platform)),
                            sanitize_utf8(or_unknown(options.exporter_revision)),
                            sanitize_utf8(or_unknown(options.exporter_version))} {
    for (std::string_view gate : kKnownGates) gate_blocks.preset(HashedKey(key_of({gate})), created_at);
    runtime_gate_error_series = &runtime_gate_errors.preset(HashedKey(key_of({})), created_at);
    lines_read_series = &lines_read.preset(HashedKey(key_of({})), created_at);
    bytes_read_series = &bytes_read.preset(HashedKey(key_of({})), created_at);
    truncations_series = &truncations.preset(HashedKey(key_of({})), created_at);
    rotations_series = &rotations.preset(HashedKey(key_of({})), created_at);
    for (std::size_t kind = 0; kind < kEventKindCount; ++kind) {
      events_by_kind[kind] =
          &events.preset(HashedKey(key_of({event_kind_name(static_cast<EventKind>(kind))})), created_at);
    }
    for (std::size_t reason = 0; reason < kSkipReasonCount; ++reason) {
      skipped_by_reason[reason] =
          &lines_skipped.preset(HashedKey(key_of({skip_reason_name(static_cast<SkipReason>(reason))})), created_at);
    }
  }

  double now() const { return options.clock ? options.clock() : system_clock_seconds(); }

  // Every counter family, in one fixed order, so merge() can pair them up.
  template <typename Self>
  static auto counter_families_of(Self& self) {
    return std::array{&self.compliance_failures, &self.runtime_gate_errors, &self.gate_blocks,
                      &self.lines_read,          &self.bytes_read,          &self.events,
                      &self.lines_skipped,       &self.series_dropped,      &self.truncations,
                      &self.rotations,           &self.read_errors,         &self.http_requests,
                      &self.label_values_truncated, &self.exemplars_dropped};
  }
  auto counter_families() { return counter_families_of(*this); }
  auto counter_families() const { return counter_families_of(*this); }

  // Adds `n` to the series `key` names, creating it if the cap allows; else counts the drop.
  // Returns the series counted, nullptr when dropped.
  CounterSeries* count_key(CounterFamily& family, std::string_view key, std::uint64_t n) {
    const HashedKey hashed(key);
    if (CounterSeries* series = family.find(hashed)) {
      series->value += n;
      return series;
    }
    return count_new(family, hashed, n);
  }

  // count_key() for a key not in `family` yet.
  CounterSeries* count_new(CounterFamily& family, const HashedKey& key, std::uint64_t n) {
    if (CounterSeries* added = family.add(key, now())) {
      added->value += n;
      return added;
    }
    count_drop(family, n);
    return nullptr;
  }

  // Counts `n` under the label values (in the family's label-name order), each bounded by
  // max_label_bytes; every value truncated adds `n` to label_values_truncated{label}. The same as
  // count_key() with their key, which is built only when the series is new.
  // The label count is a template argument so that the loops below unroll and copy no
  // run-time-sized array (count_labels({a, b}, n) deduces it).
  template <std::size_t kLabels>
  CounterSeries* count_labels(CounterFamily& family, const std::string_view (&label_values)[kLabels],
                              std::uint64_t n) {
    static_assert(kLabels <= kMaxCountedLabels);
    assert(family.label_names().size() == kLabels);
    std::array<std::string_view, kLabels> values = std::to_array(label_values);
    // Short ASCII values (nearly all) are bounded as they are, and hashed as they are checked.
    KeyHasher hasher;
    bool within_cap = true;
    for (std::string_view value : values) {
      within_cap = within_cap && value.size() <= max_label_bytes;
      hasher.add(value);
    }
    if (!within_cap || !hasher.all_ascii()) {
      hasher = KeyHasher();
      for (std::size_t label = 0; label < values.size(); ++label) {
        bool truncated = false;
        values[label] = bounded_label_value(values[label], max_label_bytes, label_scratch[label], truncated);
        if (truncated) count_truncation(family.label_names()[label], n);
        hasher.add(values[label]);
      }
    }
    const std::uint64_t hash = hasher.hash();
    if (CounterSeries* series = family.find(hash, values)) {
      series->value += n;
      return series;
    }
    series_key.clear();
    for (std::string_view value : values) append_key_part(series_key, value);
    return count_new(family, HashedKey(series_key, hash), n);
  }

  // `series` (of `family`) was just counted for one event: its exemplar names that event now, or
  // nothing, since an older one would name the wrong event. An event the family's label cannot
  // name within OpenMetrics' limit is counted in exemplars_dropped; one with no name at all (a
  // report without event_id, a gate block without host) is not: there is nothing to drop.
  void keep_exemplar(const CounterFamily& family, CounterSeries* series, std::string_view name,
                     std::optional<std::int64_t> time) {
    if (series == nullptr) return;  // over the series cap: counted in series_dropped
    // Short ASCII (every UUID and host name): within the limit byte for byte, and valid as it is.
    if (!name.empty() && family.exemplar_label().size() + name.size() <= kExemplarMaxCodePoints && is_ascii(name)) {
      series->exemplar.set(name, time);
      return;
    }
    keep_other_exemplar(family, *series, name, time);
  }

  // The hash count_labels() computes for a compliance failure whose label values are short ASCII
  // (nearly all): the one its lookup probes. Any other event gives a hash that merely fetches a
  // slot no lookup reads, which is harmless.
  std::uint64_t compliance_hash(const Event& event) const {
    KeyHasher hasher;
    hasher.add(or_unknown(event.control_id));
    hasher.add(or_unknown(event.host));
    return hasher.hash();
  }

  // keep_exemplar() for no name, or one that is long or not ASCII; out of line, so that the
  // common case above is inlined into record() without the registers this one needs.
  [[gnu::noinline]] void keep_other_exemplar(const CounterFamily& family, CounterSeries& series,
                                             std::string_view name, std::optional<std::int64_t> time) {
    if (name.empty()) {
      series.exemplar.clear();
      return;
    }
    // Checked before anything is copied, so that no buffer ever grows to a longer id.
    if (!exemplar_label_fits(family.exemplar_label(), name)) {
      series.exemplar.clear();
      drop_key.clear();
      append_key_part(drop_key, family.public_name());
      count_key(exemplars_dropped, drop_key, 1);
      return;
    }
    if (is_valid_utf8(name)) {
      series.exemplar.set(name, time);
    } else {
      exemplar_scratch.clear();
      append_sanitized_utf8(exemplar_scratch, name);
      series.exemplar.set(exemplar_scratch, time);
    }
  }

  // Whether a saved exemplar is one this family would have made.
  static bool restorable(const CounterFamily& family, const std::optional<Exemplar>& exemplar) {
    return exemplar && !family.exemplar_label().empty() && exemplar->label_name == family.exemplar_label() &&
           !exemplar->label_value.empty() && is_valid_utf8(exemplar->label_value) &&
           exemplar_label_fits(exemplar->label_name, exemplar->label_value);
  }

  void count_truncation(std::string_view label_name, std::uint64_t n) {
    drop_key.clear();
    append_key_part(drop_key, label_name);
    count_key(label_values_truncated, drop_key, n);
  }

  void count_drop(const CounterFamily& family, std::uint64_t n) {
    drop_key.clear();
    append_key_part(drop_key, family.public_name());
    count_key(series_dropped, drop_key, n);
  }

  // `from` read the input after `into`: a series it counted takes its exemplar (or its lack of one).
  void merge_family(CounterFamily& into, const CounterFamily& from) {
    // In the order `from` added its series, so that under the cap the label sets it saw first win.
    from.for_each([&](std::string_view key, const CounterSeries& from_series) {
      const HashedKey hashed(key);
      CounterSeries* series = into.find(hashed);
      if (series != nullptr) {
        series->value += from_series.value;
        series->created = std::min(series->created, from_series.created);
      } else if ((series = into.add(hashed, from_series.created)) != nullptr) {
        series->value = from_series.value;
      } else if (from_series.value != 0) {
        count_drop(into, from_series.value);
      }
      if (series != nullptr && from_series.value != 0 && series != &from_series) {
        series->exemplar.copy_from(from_series.exemplar);
      }
    });
  }

  // `count` is false for values already counted once (a merge, a restore).
  void take_logged_build_info(std::string_view version, std::string_view git_commit, std::uint64_t order,
                              bool count) {
    if (version.empty()) return;
    if (has_logged_build_info && order < logged_build_info_order) return;
    has_logged_build_info = true;
    logged_build_info_order = order;
    bool truncated = false;
    logged_version.assign(bounded_label_value(version, max_label_bytes, label_scratch[0], truncated));
    if (truncated && count) count_truncation("version", 1);
    logged_git_commit.assign(
        bounded_label_value(or_unknown(git_commit), max_label_bytes, label_scratch[0], truncated));
    if (truncated && count) count_truncation("git_commit", 1);
  }

  CounterFamily* counter_family_named(std::string_view name) {
    for (CounterFamily* family : counter_families()) {
      if (family->name() == name) return family;
    }
    return nullptr;
  }

  // The saved label values in `family`'s label-name order, as a series key; false when the saved
  // names are not exactly the family's (a family that gained or lost a label between versions).
  // Values are bounded as record() bounds them (a state file written with a larger cap).
  bool saved_key(const CounterFamily& family, const CounterState& saved, std::string& key) {
    const std::vector<std::string>& names = family.label_names();
    if (saved.label_names.size() != names.size() || saved.label_values.size() != names.size()) return false;
    key.clear();
    for (const std::string& name : names) {
      const auto at = std::find(saved.label_names.begin(), saved.label_names.end(), name);
      if (at == saved.label_names.end()) return false;
      // Equal sizes and every family name found once means a permutation, unless a saved name
      // repeats; a second occurrence would mean the saved set lacks some other name, caught here.
      if (std::find(std::next(at), saved.label_names.end(), name) != saved.label_names.end()) return false;
      const std::string& value = saved.label_values[static_cast<std::size_t>(at - saved.label_names.begin())];
      // record() never makes an empty label value (or_unknown), so a saved one is not ours.
      if (value.empty()) return false;
      bool truncated = false;
      append_key_part(key, bounded_label_value(value, max_label_bytes, label_scratch[0], truncated));
    }
    return true;
  }

  Family cp_build_info() const {
    // A flag given empty counts as not given: an empty label value reads as a missing label.
    const auto from_flag = [](const std::optional<std::string>& flag) {
      return flag.has_value() && !flag->empty() ? std::optional<std::string>(sanitize_utf8(*flag)) : std::nullopt;
    };
    std::string version = from_flag(options.cp_version)
                              .value_or(has_logged_build_info ? logged_version : std::string(kUnknown));
    std::string git_commit = from_flag(options.cp_git_commit)
                                 .value_or(has_logged_build_info ? logged_git_commit : std::string(kUnknown));
    return gauge_family("nixfleet_cp_build_info", "Control plane version, from flags or its log.",
                        {"git_commit", "version"}, {std::move(git_commit), std::move(version)}, 1);
  }

  RegistryOptions options;
  std::size_t max_label_bytes;
  double created_at;  // `_created` of the series that exist from the start

  CounterFamily compliance_failures;
  CounterFamily runtime_gate_errors;
  CounterFamily gate_blocks;
  CounterFamily lines_read;
  CounterFamily bytes_read;
  CounterFamily events;
  CounterFamily lines_skipped;
  CounterFamily series_dropped;
  CounterFamily truncations;
  CounterFamily rotations;
  CounterFamily read_errors;
  CounterFamily http_requests;
  CounterFamily label_values_truncated;
  CounterFamily exemplars_dropped;
  double files_watched = 0;

  std::vector<std::string> exporter_build_info;  // branch, compiler, platform, revision, version

  bool has_logged_build_info = false;
  std::uint64_t logged_build_info_order = 0;
  std::string logged_version;
  std::string logged_git_commit;

  // Series that always exist, reached without a lookup on the paths taken once per line.
  CounterSeries* runtime_gate_error_series = nullptr;
  CounterSeries* lines_read_series = nullptr;
  CounterSeries* bytes_read_series = nullptr;
  CounterSeries* truncations_series = nullptr;
  CounterSeries* rotations_series = nullptr;
  std::array<CounterSeries*, kEventKindCount> events_by_kind{};
  std::array<CounterSeries*, kSkipReasonCount> skipped_by_reason{};

  // Reused key buffers: once they have grown to the longest key, lookups allocate nothing.
  std::string series_key;
  std::string drop_key;
  // One per label of count_labels(), whose bounded values are all kept until the key is built.
  std::array<std::string, kMaxCountedLabels> label_scratch;
  std::string exemplar_scratch;
};

Registry::Registry(RegistryOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Registry::~Registry() = default;
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;

void Registry::record(const Event& event) {
  Impl& impl = *impl_;
  const auto kind = static_cast<std::size_t>(event.kind);
  if (kind < kEventKindCount) ++impl.events_by_kind[kind]->value;
  switch (event.kind) {
    case EventKind::compliance_failure:
      impl.keep_exemplar(impl.compliance_failures,
                         impl.count_labels(impl.compliance_failures,
                                           {or_unknown(event.control_id), or_unknown(event.host)}, 1),
                         event.event_id, event.log_time_micros);
      break;
    case EventKind::runtime_gate_error:
      ++impl.runtime_gate_error_series->value;
      impl.keep_exemplar(impl.runtime_gate_errors, impl.runtime_gate_error_series, event.event_id,
                         event.log_time_micros);
      break;
    case EventKind::gate_block:
      impl.keep_exemplar(impl.gate_blocks, impl.count_labels(impl.gate_blocks, {or_unknown(event.gate)}, 1),
                         event.host, event.log_time_micros);
      break;
  }
}

void Registry::prefetch(const Event& event) const {
  if (event.kind == EventKind::compliance_failure) {
    impl_->compliance_failures.prefetch_slot(impl_->compliance_hash(event));
  }
}

void Registry::record(std::span<const Event> events) {
  Impl& impl = *impl_;
  // The slots were asked for by prefetch() as each event was found; their nodes are asked for all
  // at once here, so that the memory latencies of a batch overlap instead of adding up.
  for (const Event& event : events) {
    if (event.kind == EventKind::compliance_failure) impl.compliance_failures.prefetch_node(impl.compliance_hash(event));
  }
  for (const Event& event : events) record(event);
}

void Registry::record_build_info(const BuildInfoFields& fields, std::uint64_t order) {
  impl_->take_logged_build_info(fields.version, fields.git_commit, order, true);
}

void Registry::add_lines_read(std::uint64_t lines, std::uint64_t bytes) {
  impl_->lines_read_series->value += lines;
  impl_->bytes_read_series->value += bytes;
}

void Registry::add_skipped(SkipReason reason, std::uint64_t n) {
  const auto index = static_cast<std::size_t>(reason);
  if (index < kSkipReasonCount) impl_->skipped_by_reason[index]->value += n;
}

void Registry::add_self(SelfCounter counter, std::string_view label, std::uint64_t n) {
  Impl& impl = *impl_;
  switch (counter) {
    case SelfCounter::truncations:
      impl.truncations_series->value += n;
      break;
    case SelfCounter::rotations:
      impl.rotations_series->value += n;
      break;
    case SelfCounter::read_errors:
      impl.count_labels(impl.read_errors, {or_unknown(label)}, n);
      break;
    case SelfCounter::http_requests:
      impl.count_labels(impl.http_requests, {or_unknown(label)}, n);
      break;
  }
}

void Registry::set_self(SelfGauge gauge, double value) {
  switch (gauge) {
    case SelfGauge::files_watched:
      impl_->files_watched = value;
      break;
  }
}

void Registry::merge(const Registry& other) {
  Impl& into = *impl_;
  const Impl& from = *other.impl_;
  const auto into_families = into.counter_families();
  const auto from_families = from.counter_families();
  for (std::size_t i = 0; i < into_families.size(); ++i) into.merge_family(*into_families[i], *from_families[i]);
  // A merge is the later call, so it takes a tie. Gauges stay this registry's own.
  if (from.has_logged_build_info && &from != &into) {
    into.take_logged_build_info(from.logged_version, from.logged_git_commit, from.logged_build_info_order, false);
  }
}

std::vector<CounterState> Registry::export_counters() const {
  auto families = impl_->counter_families();
  std::sort(families.begin(), families.end(),
            [](const CounterFamily* a, const CounterFamily* b) { return a->name() < b->name(); });
  std::vector<CounterState> counters;
  for (const CounterFamily* family : families) {
    family->for_each_sorted([&](std::string_view key, const CounterSeries& series) {
      counters.push_back(CounterState{family->name(), family->label_names(),
                                      decode_key(key, family->label_names().size()),
                                      static_cast<double>(series.value), series.created,
                                      series.exemplar.exemplar(family->exemplar_label())});
    });
  }
  return counters;
}

std::optional<BuildInfoState> Registry::export_build_info() const {
  const Impl& impl = *impl_;
  if (!impl.has_logged_build_info) return std::nullopt;
  return BuildInfoState{impl.logged_version, impl.logged_git_commit, impl.logged_build_info_order};
}

std::size_t Registry::restore(const std::vector<CounterState>& counters,
                              const std::optional<BuildInfoState>& build_info) {
  Impl& impl = *impl_;
  // 2^64 as a double: the first value a uint64 cannot hold. A registry's export never exceeds it
  // (a uint64 near its top rounds up to exactly 2^64, which is clamped back below).
  constexpr double kTwoTo64 = 18446744073709551616.0;
  std::size_t not_restored = 0;
  // Drops are counted after every saved series is set: series_dropped is itself among them, and
  // setting it later would erase what the drops had added.
  std::vector<std::pair<const CounterFamily*, std::uint64_t>> drops;
  std::string key;
  for (const CounterState& saved : counters) {
    CounterFamily* family = impl.counter_family_named(saved.family);
    if (family == nullptr || !impl.saved_key(*family, saved, key) || !(saved.value >= 0) ||
        !std::isfinite(saved.value)) {
      ++not_restored;
      continue;
    }
    const std::uint64_t value = saved.value >= kTwoTo64 ? std::numeric_limits<std::uint64_t>::max()
                                                        : static_cast<std::uint64_t>(saved.value);
    const HashedKey hashed(key);
    CounterSeries* series = family->find(hashed);
    if (series == nullptr) series = family->add(hashed, saved.created);
    if (series == nullptr) {
      ++not_restored;
      if (value != 0) drops.emplace_back(family, value);
      continue;
    }
    series->value = value;
    series->created = saved.created;
    if (impl.restorable(*family, saved.exemplar)) {
      series->exemplar.set(saved.exemplar->label_value, saved.exemplar->timestamp_micros);
    } else {
      series->exemplar.clear();
    }
  }
  for (const auto& [family, value] : drops) impl.count_drop(*family, value);
  if (build_info) impl.take_logged_build_info(build_info->version, build_info->git_commit, build_info->order, false);
  return not_restored;
}

std::string truncate_label_value(std::string_view value, std::size_t max_bytes) {
  constexpr std::string_view kMarkerStart = "\xE2\x80\xA6[truncated:";  // U+2026 HORIZONTAL ELLIPSIS
  constexpr std::size_t kMarkerBytes = kMarkerStart.size() + 16 + 1;
  max_bytes = std::max(max_bytes, kMinMaxLabelBytes);
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64
  for (char c : value) hash = (hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  // Sanitizing at most max_bytes input bytes gives at least the prefix wanted, since U+FFFD is
  // never shorter than the bytes it replaces.
  std::string out;
  append_sanitized_utf8(out, value.substr(0, max_bytes));
  std::size_t keep = std::min(out.size(), max_bytes - kMarkerBytes);
  while (keep > 0 && keep < out.size() && (static_cast<unsigned char>(out[keep]) & 0xC0U) == 0x80U) --keep;
  out.resize(keep);
  out += kMarkerStart;
  constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(hash >> shift) & 0xFU];
  out += ']';
  return out;
}

Snapshot Registry::snapshot() const {
  const Impl& impl = *impl_;
  Snapshot snapshot;
  snapshot.reserve(impl.counter_families().size() + 3);
  for (const CounterFamily* family : impl.counter_families()) {
    if (family->shown()) snapshot.push_back(family->to_family());
  }
  snapshot.push_back(impl.cp_build_info());
  snapshot.push_back(gauge_family("nixfleet_log_exporter_files_watched", "Files being followed now.", {}, {},
                                  impl.files_watched));
  snapshot.push_back(gauge_family("nixfleet_log_exporter_build_info",
                                  "The exporter's build: version, revision, branch, compiler, platform; always 1.",
                                  {"branch", "compiler", "platform", "revision", "version"},
                                  impl.exporter_build_info, 1));
  std::sort(snapshot.begin(), snapshot.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
  return snapshot;
}

}  // namespace nle
