#include "exporter/health_metrics.h"

#include <algorithm>
#include <utility>

namespace nle {
namespace {

Family gauge(std::string name, std::string help, double value) {
  Family family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = MetricType::gauge;
  family.series.push_back(Series{{}, value, 0});
  return family;
}

Family unread_bytes_family(std::vector<FollowHealth::UnreadFile> files) {
  Family family;
  family.name = "nixfleet_log_exporter_file_unread_bytes";
  family.help = "Bytes of a followed file not read yet (its size less the read offset).";
  family.type = MetricType::gauge;
  family.label_names = {"file"};
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  double other = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (i < kMaxUnreadFileSeries) {
      family.series.push_back(Series{{files[i].path}, static_cast<double>(files[i].bytes), 0});
    } else {
      other += static_cast<double>(files[i].bytes);
    }
  }
  if (files.size() > kMaxUnreadFileSeries) {
    family.series.push_back(Series{{"other"}, other, 0});
    std::sort(family.series.begin(), family.series.end(),
              [](const Series& a, const Series& b) { return a.label_values < b.label_values; });
  }
  return family;
}

}  // namespace

std::vector<Family> health_families(const FollowHealth& health) {
  std::vector<Family> families;
  if (health.following_files) families.push_back(unread_bytes_family(health.unread_files));
  if (health.journal_lag_seconds) {
    families.push_back(gauge("nixfleet_log_exporter_journal_lag_seconds",
                             "How far the last journal entry read is behind now; 0 when every entry was read.",
                             std::max(0.0, *health.journal_lag_seconds)));
  }
  families.push_back(gauge("nixfleet_log_exporter_last_read_timestamp_seconds",
                           "Unix time of the last read that returned bytes; 0 before the first.",
                           health.last_read_time.value_or(0)));
  if (health.state) {
    families.push_back(gauge("nixfleet_log_exporter_state_last_save_timestamp_seconds",
                             "Unix time of the last successful state file write; 0 before the first.",
                             health.state->last_success_time.value_or(0)));
    Family failures;
    failures.name = "nixfleet_log_exporter_state_save_failures";
    failures.help = "State file writes that failed since this process started (disk full, read-only, I/O error).";
    failures.type = MetricType::counter;
    failures.series.push_back(Series{{}, static_cast<double>(health.state->failures), health.state->counting_since});
    families.push_back(std::move(failures));
  }
  std::sort(families.begin(), families.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
  return families;
}

}  // namespace nle
