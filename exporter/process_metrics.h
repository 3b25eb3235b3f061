// The standard Prometheus process collector (process_cpu_seconds_total, memory, start time, file
// descriptors) for this process, read from Linux /proc. Knows nothing of the registry or HTTP;
// the parsing is pure and the /proc reading a thin shell around it.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "exporter/snapshot.h"

namespace nle {

// The figures /proc/<pid>/stat yields, in the units the metrics use.
struct ProcStat {
  double cpu_seconds = 0;            // utime + stime
  double virtual_memory_bytes = 0;   // vsize
  double resident_memory_bytes = 0;  // rss pages * page size
  double start_time_seconds = 0;     // Unix seconds: boot time + starttime ticks
};

// Parses one /proc/<pid>/stat line. The comm field (2) may hold spaces and ')', so the fields
// are counted from the last ')'. nullopt when the line is too short or a number is malformed,
// or when ticks_per_second or page_size is not positive.
std::optional<ProcStat> parse_proc_stat(std::string_view stat_line, long ticks_per_second, long page_size,
                                        double boot_time);

// The `btime` line of /proc/stat: when the machine booted, in Unix seconds.
std::optional<double> parse_boot_time(std::string_view proc_stat);

// Reads /proc/self/stat, /proc/stat and /proc/self/fd and returns, sorted by name, the families
// it could fill; one it cannot read is left out rather than reported wrong. Never throws.
// Every name starts with "process_", after every "nixfleet_..." name, so appending them to a
// registry snapshot keeps it sorted.
std::vector<Family> process_families();

}  // namespace nle
