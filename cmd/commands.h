// The subcommands, each a function of a validated config. main.cpp turns flags into these
// configs; nothing here parses flags. Exit codes: 0 success, 1 an input could not be read or a
// runtime failure, 2 a usage error.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "exporter/exposition.h"
#include "parsers/line_parser.h"

namespace nle {

inline constexpr int kExitOk = 0;
inline constexpr int kExitInputError = 1;
inline constexpr int kExitUsage = 2;

struct IngestConfig {
  InputFormat input_format = InputFormat::auto_detect;
  std::size_t max_line_bytes = 1 << 20;
  std::size_t max_series = 10000;
  std::size_t max_label_bytes = 256;  // --max-label-bytes
  std::optional<std::string> cp_version;
  std::optional<std::string> cp_git_commit;
};

enum class ReplayProgress : unsigned char {
  automatic,  // shown when stderr is a terminal
  always,     // --progress: shown on a pipe or file too, one line per update
  never,      // --quiet: neither progress nor the summary line
};

struct ReplayConfig {
  IngestConfig ingest;
  std::vector<std::string> inputs;  // paths; "-" is stdin
  ExpositionFormat output_format = ExpositionFormat::prometheus;
  unsigned threads = 0;  // 0: one per core
  ReplayProgress progress = ReplayProgress::automatic;
  // --step: OpenMetrics with the CP's counters sampled at every multiple of `step` of log time
  // (the time each line says it was logged), for backfilling; 0: the counters at the end.
  std::chrono::milliseconds step{0};
  // --label: NAME=VALUE pairs every --step series carries (each checked by check_extra_label()).
  std::vector<std::pair<std::string, std::string>> step_labels;
};

// Reads every input to its end, prints the exposition on stdout and a summary on stderr.
int run_replay(const ReplayConfig& config);

enum class LogFormat : unsigned char { logfmt, json };
enum class LogLevel : unsigned char { debug, info, warn, error };

struct FollowConfig {
  IngestConfig ingest;
  std::vector<std::string> inputs;  // paths or globs; empty or "-": stdin
  std::vector<std::string> listen_addresses = {"127.0.0.1:9761"};  // every one is served
  std::string telemetry_path = "/metrics";
  std::string web_config_file;   // exporter-toolkit web config: TLS, basic auth; empty: none
  bool systemd_socket = false;   // serve systemd's sockets instead of listen_addresses
  std::size_t max_requests = 40;  // concurrent scrapes before 503; 0: no limit
  bool disable_exporter_metrics = false;  // leave process_* and nixfleet_log_exporter_* off the page
  bool from_beginning = false;
  std::chrono::milliseconds poll_interval{1000};
  bool force_polling = false;
  bool linger = false;
  LogLevel log_level = LogLevel::info;
  LogFormat log_format = LogFormat::logfmt;
  std::string state_file;  // empty: no state kept
  std::chrono::milliseconds state_interval{1000};
  bool state_reset = false;
  std::vector<std::string> journal_units;  // the native journald source, instead of files
  std::string journal_directory;
};

// Follows the inputs and serves the metrics until SIGTERM/SIGINT (or end of stdin).
int run_follow(const FollowConfig& config);

// Prints the journald cursor a state file records (for `journalctl --after-cursor=`).
int run_cursor(const std::string& state_file);

// What --version prints, in prometheus/common's version.Print layout (with `compiler` where Go
// programs say `go version`), without the final newline.
std::string version_text();

}  // namespace nle
