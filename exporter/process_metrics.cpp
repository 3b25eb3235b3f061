#include "exporter/process_metrics.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace nle {
namespace {

std::optional<unsigned long long> parse_unsigned(std::string_view text) {
  unsigned long long value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// The next space-separated field of `text`, consumed from its front; empty at the end.
std::string_view next_field(std::string_view& text) {
  const std::size_t start = text.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    text = {};
    return {};
  }
  text.remove_prefix(start);
  const std::size_t end = std::min(text.find(' '), text.size());
  const std::string_view field = text.substr(0, end);
  text.remove_prefix(end);
  return field;
}

// /proc files report a size of 0, so read until end of file rather than by st_size.
std::optional<std::string> read_proc_file(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string contents;
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    contents.append(buffer.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return contents;
}

std::optional<double> count_open_fds() {
  DIR* directory = ::opendir("/proc/self/fd");
  if (directory == nullptr) return std::nullopt;
  double count = 0;
  while (const dirent* entry = ::readdir(directory)) {
    const std::string_view name = entry->d_name;
    if (name != "." && name != "..") ++count;
  }
  ::closedir(directory);
  // The directory stream held one descriptor of its own while counting; it is closed now.
  return count > 0 ? count - 1 : 0;
}

// getrlimit gives the same soft limit as "Max open files" in /proc/self/limits, without parsing.
std::optional<double> max_fds() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return std::nullopt;
  if (limit.rlim_cur == RLIM_INFINITY) return std::nullopt;  // no finite figure to report
  return static_cast<double>(limit.rlim_cur);
}

Family gauge(std::string name, std::string help, double value) {
  return Family{std::move(name), std::move(help), MetricType::gauge, {}, {Series{{}, value, 0}}};
}

}  // namespace

std::optional<ProcStat> parse_proc_stat(std::string_view stat_line, long ticks_per_second, long page_size,
                                        double boot_time) {
  if (ticks_per_second <= 0 || page_size <= 0) return std::nullopt;
  const std::size_t comm_end = stat_line.rfind(')');
  if (comm_end == std::string_view::npos) return std::nullopt;
  std::string_view rest = stat_line.substr(comm_end + 1);
  while (!rest.empty() && (rest.back() == '\n' || rest.back() == ' ')) rest.remove_suffix(1);

  // Fields after comm, numbered as in proc(5): 3 state, ..., 14 utime, 15 stime, 22 starttime,
  // 23 vsize, 24 rss.
  constexpr int kFirstField = 3;
  constexpr int kLastNeeded = 24;
  std::array<std::string_view, kLastNeeded + 1> fields{};
  for (int number = kFirstField; number <= kLastNeeded; ++number) {
    fields[static_cast<std::size_t>(number)] = next_field(rest);
    if (fields[static_cast<std::size_t>(number)].empty()) return std::nullopt;
  }
  const auto utime = parse_unsigned(fields[14]);
  const auto stime = parse_unsigned(fields[15]);
  const auto start_ticks = parse_unsigned(fields[22]);
  const auto vsize = parse_unsigned(fields[23]);
  // rss is signed in the kernel's format, though never negative in practice.
  long long rss_pages = 0;
  const std::string_view rss = fields[24];
  const auto [rss_end, rss_error] = std::from_chars(rss.data(), rss.data() + rss.size(), rss_pages);
  if (!utime || !stime || !start_ticks || !vsize || rss_error != std::errc{} || rss_end != rss.data() + rss.size()) {
    return std::nullopt;
  }

  const auto ticks = static_cast<double>(ticks_per_second);
  ProcStat stat;
  stat.cpu_seconds = static_cast<double>(*utime + *stime) / ticks;
  stat.virtual_memory_bytes = static_cast<double>(*vsize);
  stat.resident_memory_bytes = static_cast<double>(rss_pages) * static_cast<double>(page_size);
  stat.start_time_seconds = boot_time + static_cast<double>(*start_ticks) / ticks;
  return stat;
}

std::optional<double> parse_boot_time(std::string_view proc_stat) {
  constexpr std::string_view kKey = "btime ";
  std::size_t line_start = 0;
  while (line_start < proc_stat.size()) {
    std::size_t line_end = proc_stat.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = proc_stat.size();
    const std::string_view line = proc_stat.substr(line_start, line_end - line_start);
    if (line.substr(0, kKey.size()) == kKey) {
      std::string_view value = line.substr(kKey.size());
      const auto seconds = parse_unsigned(next_field(value));
      if (!seconds) return std::nullopt;
      return static_cast<double>(*seconds);
    }
    line_start = line_end + 1;
  }
  return std::nullopt;
}

std::vector<Family> process_families() {
  std::vector<Family> families;
  const auto stat_line = read_proc_file("/proc/self/stat");
  const auto proc_stat = read_proc_file("/proc/stat");
  const std::optional<double> boot_time = proc_stat ? parse_boot_time(*proc_stat) : std::nullopt;
  const std::optional<ProcStat> stat =
      stat_line && boot_time
          ? parse_proc_stat(*stat_line, ::sysconf(_SC_CLK_TCK), ::sysconf(_SC_PAGESIZE), *boot_time)
          : std::nullopt;
  if (stat) {
    families.push_back(Family{"process_cpu_seconds",
                              "Total user and system CPU time spent in seconds.",
                              MetricType::counter,
                              {},
                              {Series{{}, stat->cpu_seconds, stat->start_time_seconds}}});
    families.push_back(gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                             stat->resident_memory_bytes));
    families.push_back(gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                             stat->start_time_seconds));
    families.push_back(
        gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", stat->virtual_memory_bytes));
  }
  if (const auto open = count_open_fds()) {
    families.push_back(gauge("process_open_fds", "Number of open file descriptors.", *open));
  }
  if (const auto max = max_fds()) {
    families.push_back(gauge("process_max_fds", "Maximum number of open file descriptors.", *max));
  }
  std::sort(families.begin(), families.end(), [](const Family& a, const Family& b) { return a.name < b.name; });
  return families;
}

}  // namespace nle
