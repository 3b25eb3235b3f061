#include "exporter/step_sampler.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <unordered_map>

#include "exporter/exposition.h"

namespace nle {

bool MemoryStepPointStore::append(std::span<const StepPoint> points) {
  points_.insert(points_.end(), points.begin(), points.end());
  return true;
}

bool MemoryStepPointStore::read(const std::function<void(std::span<const StepPoint>)>& visit) {
  visit(points_);
  return true;
}

std::string check_extra_label(std::string_view name, std::string_view value) {
  const auto letter = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (name.empty() || !letter(name.front()) ||
      !std::all_of(name.begin(), name.end(), [&](char c) { return letter(c) || digit(c); })) {
    return "\"" + std::string(name) + "\" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)";
  }
  if (name.starts_with("__")) return "label names starting with __ are reserved to Prometheus";
  if (value.empty()) return "label " + std::string(name) + " has an empty value, which Prometheus reads as no label";
  if (!is_valid_utf8(value)) return "the value of label " + std::string(name) + " is not valid UTF-8";
  return {};
}

std::string format_timestamp_seconds(std::int64_t micros) {
  if (micros < 0) return "-" + format_timestamp_seconds(-micros);
  std::string out = std::to_string(micros / 1'000'000);
  if (const std::int64_t fraction = micros % 1'000'000; fraction != 0) {
    char digits[8];
    std::snprintf(digits, sizeof digits, ".%06lld", static_cast<long long>(fraction));
    std::string_view text(digits);
    while (text.back() == '0') text.remove_suffix(1);
    out += text;
  }
  return out;
}

namespace {

constexpr std::size_t kWriteChunk = 64 << 10;
constexpr std::size_t kAppendChunk = 4096;

struct FamilyInfo {
  std::string name;
  std::string help;
  std::vector<std::string> label_names;
  std::vector<std::uint32_t> series;  // ids
};

struct SeriesInfo {
  std::uint32_t family = 0;
  std::vector<std::string> label_values;
  std::uint32_t first_step = 0;
  std::uint64_t points = 0;
  double value = 0;  // the latest sampled
};

void append_number(std::string& out, double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

}  // namespace

struct StepSampler::Impl {
  StepSamplerOptions options;
  StepPointStore& store;
  std::vector<FamilyInfo> families;
  std::unordered_map<std::string, std::uint32_t> family_ids;
  std::vector<SeriesInfo> series;
  std::unordered_map<std::string, std::uint32_t> series_ids;  // family id + label values
  std::vector<StepPoint> pending;
  std::string key;
  bool sampled = false;
  bool failed = false;
  std::int64_t first = 0;
  std::int64_t last = 0;
  std::string error;

  Impl(StepSamplerOptions o, StepPointStore& s) : options(o), store(s) {}

  bool flush() {
    if (pending.empty() || failed) return !failed;
    if (!store.append(pending)) {
      failed = true;
      error = store.error();
    }
    pending.clear();
    return !failed;
  }

  std::uint32_t family_id(const Family& family) {
    auto [at, inserted] = family_ids.try_emplace(family.name, static_cast<std::uint32_t>(families.size()));
    if (inserted) families.push_back(FamilyInfo{family.name, family.help, family.label_names, {}});
    return at->second;
  }

  // Each part with its length in front, so no two label sets share a key.
  void make_key(std::uint32_t family, const Series& s) {
    key.assign(reinterpret_cast<const char*>(&family), sizeof family);
    for (const std::string& value : s.label_values) {
      const std::size_t size = value.size();
      key.append(reinterpret_cast<const char*>(&size), sizeof size);
      key += value;
    }
  }

  // One series at every step from its first to the last boundary; `points` are its changes.
  void render_series(std::string& out, const SeriesInfo& info, const std::vector<StepPoint>& points) {
    const FamilyInfo& family = families[info.family];
    // The family's labels and the extra ones, in name order as every exposition of ours has them.
    std::vector<std::pair<std::string_view, std::string_view>> labels;
    for (std::size_t i = 0; i < family.label_names.size(); ++i) {
      labels.emplace_back(family.label_names[i],
                          i < info.label_values.size() ? std::string_view(info.label_values[i]) : std::string_view());
    }
    for (const auto& [name, value] : options.extra_labels) labels.emplace_back(name, value);
    std::sort(labels.begin(), labels.end());
    std::string prefix = family.name + "_total";
    if (!labels.empty()) {
      prefix += '{';
      for (std::size_t i = 0; i < labels.size(); ++i) {
        if (i > 0) prefix += ',';
        prefix += labels[i].first;
        prefix += "=\"";
        prefix += escape_label_value(labels[i].second);
        prefix += '"';
      }
      prefix += '}';
    }
    prefix += ' ';
    const std::uint64_t last_step = static_cast<std::uint64_t>((last - first) / options.step_micros);
    std::size_t next = 0;
    double value = 0;
    for (std::uint64_t step = info.first_step; step <= last_step; ++step) {
      while (next < points.size() && points[next].step <= step) value = points[next++].value;
      out += prefix;
      append_number(out, value);
      out += ' ';
      out += format_timestamp_seconds(first + static_cast<std::int64_t>(step) * options.step_micros);
      out += '\n';
    }
  }
};

StepSampler::StepSampler(StepSamplerOptions options, StepPointStore& store)
    : impl_(std::make_unique<Impl>(options, store)) {}
StepSampler::~StepSampler() = default;

bool StepSampler::sample(std::int64_t boundary_micros, const Snapshot& counters) {
  Impl& impl = *impl_;
  if (impl.failed) return false;
  if (!impl.sampled) {
    impl.sampled = true;
    impl.first = boundary_micros;
  }
  const std::int64_t step_index = (boundary_micros - impl.first) / impl.options.step_micros;
  if (step_index > std::numeric_limits<std::uint32_t>::max()) {
    impl.failed = true;
    impl.error = "more than 2^32 steps: choose a longer step";
    return false;
  }
  impl.last = boundary_micros;
  const auto step = static_cast<std::uint32_t>(step_index);
  for (const Family& family : counters) {
    if (family.type != MetricType::counter) continue;
    const std::uint32_t family_id = impl.family_id(family);
    for (const Series& s : family.series) {
      impl.make_key(family_id, s);
      auto [at, inserted] = impl.series_ids.try_emplace(impl.key, static_cast<std::uint32_t>(impl.series.size()));
      if (inserted) {
        impl.series.push_back(SeriesInfo{family_id, s.label_values, step, 0, s.value});
        impl.families[family_id].series.push_back(at->second);
      } else if (impl.series[at->second].value == s.value) {
        continue;
      }
      SeriesInfo& info = impl.series[at->second];
      info.value = s.value;
      ++info.points;
      impl.pending.push_back(StepPoint{at->second, step, s.value});
    }
  }
  return impl.pending.size() < kAppendChunk || impl.flush();
}

bool StepSampler::render(const std::function<void(std::string_view)>& write) {
  Impl& impl = *impl_;
  if (!impl.flush()) return false;

  // Families by name, series by label values: the order every exposition of ours has.
  std::vector<std::uint32_t> family_order(impl.families.size());
  for (std::uint32_t i = 0; i < family_order.size(); ++i) family_order[i] = i;
  std::sort(family_order.begin(), family_order.end(),
            [&](std::uint32_t a, std::uint32_t b) { return impl.families[a].name < impl.families[b].name; });
  std::vector<std::uint32_t> series_order;
  series_order.reserve(impl.series.size());
  for (std::uint32_t f : family_order) {
    std::vector<std::uint32_t>& ids = impl.families[f].series;
    std::sort(ids.begin(), ids.end(), [&](std::uint32_t a, std::uint32_t b) {
      return impl.series[a].label_values < impl.series[b].label_values;
    });
    series_order.insert(series_order.end(), ids.begin(), ids.end());
  }

  // The points of series_order[batch_begin, batch_end), loaded by one pass over the store.
  std::size_t batch_begin = 0;
  std::size_t batch_end = 0;
  std::vector<std::int64_t> slot(impl.series.size(), -1);
  std::vector<std::vector<StepPoint>> loaded;
  const auto load_batch = [&](std::size_t begin) {
    for (std::size_t i = batch_begin; i < batch_end; ++i) slot[series_order[i]] = -1;
    loaded.clear();
    batch_begin = begin;
    batch_end = begin;
    std::uint64_t budget = 0;
    while (batch_end < series_order.size()) {
      const std::uint64_t points = impl.series[series_order[batch_end]].points;
      if (batch_end > batch_begin && budget + points > impl.options.render_budget_points) break;
      budget += points;
      slot[series_order[batch_end]] = static_cast<std::int64_t>(batch_end - batch_begin);
      loaded.emplace_back().reserve(points);
      ++batch_end;
    }
    return impl.store.read([&](std::span<const StepPoint> points) {
      for (const StepPoint& p : points) {
        if (p.series < slot.size() && slot[p.series] >= 0) loaded[static_cast<std::size_t>(slot[p.series])].push_back(p);
      }
    });
  };

  std::string out;
  out.reserve(kWriteChunk + 4096);
  std::size_t position = 0;  // in series_order
  for (std::uint32_t f : family_order) {
    const FamilyInfo& family = impl.families[f];
    if (!family.help.empty()) {
      out += "# HELP " + family.name + ' ' + escape_help(family.help, ExpositionFormat::openmetrics) + '\n';
    }
    out += "# TYPE " + family.name + " counter\n";
    for (std::size_t n = 0; n < family.series.size(); ++n, ++position) {
      if (position >= batch_end && !load_batch(position)) {
        impl.failed = true;
        impl.error = impl.store.error();
        return false;
      }
      const std::uint32_t id = series_order[position];
      impl.render_series(out, impl.series[id], loaded[static_cast<std::size_t>(slot[id])]);
      if (out.size() >= kWriteChunk) {
        write(out);
        out.clear();
      }
    }
  }
  out += "# EOF\n";
  write(out);
  return true;
}

std::int64_t StepSampler::first_boundary() const { return impl_->first; }
std::int64_t StepSampler::last_boundary() const { return impl_->last; }
std::uint64_t StepSampler::steps() const {
  return impl_->sampled ? static_cast<std::uint64_t>((impl_->last - impl_->first) / impl_->options.step_micros) + 1 : 0;
}
const std::string& StepSampler::error() const { return impl_->error; }

}  // namespace nle
