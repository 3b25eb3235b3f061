// Flags only: turn the command line into a validated config and hand it to a subcommand.
// Every usage error (CLI11's included) exits 2 before any work starts.

#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "cmd/allocator.h"
#include "cmd/commands.h"
#include "exporter/registry.h"
#include "exporter/step_sampler.h"

namespace {

using nle::ExpositionFormat;
using nle::InputFormat;

// "250ms", "2s", "1m", "1h" -> milliseconds, at most a day; a bare number is seconds, as in
// Prometheus flags.
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (...) {
    return std::nullopt;
  }
  const std::string unit = text.substr(used);
  double ms = 0;
  if (unit == "ms") ms = value;
  else if (unit == "s" || unit.empty()) ms = value * 1000;
  else if (unit == "m") ms = value * 60000;
  else if (unit == "h") ms = value * 3600000;
  else return std::nullopt;
  if (!(ms >= 1) || ms > 86400000) return std::nullopt;
  return std::chrono::milliseconds(static_cast<long long>(ms));
}

struct IngestFlags {
  std::string input_format = "auto";
  std::size_t max_line_bytes = 1 << 20;
  std::size_t max_series = 10000;
  std::size_t max_label_bytes = 256;
  std::string cp_version;
  std::string cp_git_commit;
};

void add_ingest_flags(CLI::App& command, IngestFlags& flags) {
  command.add_option("--input-format", flags.input_format, "Log shape: auto (detected per line), json, text, journald")
      ->check(CLI::IsMember({"auto", "json", "text", "journald"}))
      ->capture_default_str();
  command.add_option("--max-line-bytes", flags.max_line_bytes, "Longer lines are skipped and counted (accepts KiB/MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(std::size_t{64}, std::size_t{1} << 30))
      ->capture_default_str();
  command.add_option("--max-series", flags.max_series, "Label sets per family; events beyond are counted as dropped")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000000}))
      ->capture_default_str();
  command.add_option("--max-label-bytes", flags.max_label_bytes,
                     "Longer label values count under a truncated, marked value (accepts KiB/MiB)")
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(nle::kMinMaxLabelBytes, std::size_t{1} << 20))
      ->capture_default_str();
  command.add_option("--cp-version", flags.cp_version, "Control plane version label (default: from its log)");
  command.add_option("--cp-git-commit", flags.cp_git_commit, "Control plane git_commit label (default: from its log)");
}

nle::IngestConfig ingest_config(const IngestFlags& flags) {
  nle::IngestConfig config;
  config.input_format = *nle::parse_input_format(flags.input_format);  // IsMember checked it
  config.max_line_bytes = flags.max_line_bytes;
  config.max_series = flags.max_series;
  config.max_label_bytes = flags.max_label_bytes;
  if (!flags.cp_version.empty()) config.cp_version = flags.cp_version;
  if (!flags.cp_git_commit.empty()) config.cp_git_commit = flags.cp_git_commit;
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  nle::bound_allocator_slack();
  CLI::App app{"Turns the nixfleet control plane's log into Prometheus metrics.", "nixfleet-log-exporter"};
  app.set_version_flag("--version", nle::version_text());
  app.require_subcommand(1);

  IngestFlags replay_ingest;
  std::vector<std::string> replay_inputs;
  std::string output_format = "prometheus";
  unsigned threads = 0;
  CLI::App* replay = app.add_subcommand("replay", "Read log files to their end, print the metrics and exit");
  replay->add_option("inputs", replay_inputs, "Log files (gzip is detected); - reads stdin")->required();
  replay->add_option("--output-format", output_format, "prometheus (text 0.0.4) or openmetrics (1.0)")
      ->check(CLI::IsMember({"prometheus", "openmetrics"}))
      ->capture_default_str();
  CLI::Option* threads_option = replay->add_option("--threads", threads, "Threads for large plain files (0: one per core)")
      ->check(CLI::Range(0u, 256u))
      ->capture_default_str();
  std::string step;
  CLI::Option* step_option =
      replay->add_option("--step", step,
                         "Print OpenMetrics for backfilling: the CP's counters at every multiple of this much log time "
                         "(e.g. 1m), timestamped")
          ->check([](const std::string& text) { return parse_duration(text) ? std::string() : std::string("not a duration"); })
          ->excludes(replay->get_option("--output-format"))
          ->excludes(threads_option);
  std::vector<std::string> step_labels;
  replay->add_option("--label", step_labels,
                     "NAME=VALUE: a label every --step series carries, such as the job and instance Prometheus gives "
                     "the scraped ones (repeatable)")
      ->allow_extra_args(false)  // one label per flag: what follows is an input
      ->check([](const std::string& spec) {
        const std::size_t eq = spec.find('=');
        if (eq == std::string::npos) return std::string("not NAME=VALUE");
        return nle::check_extra_label(std::string_view(spec).substr(0, eq), std::string_view(spec).substr(eq + 1));
      })
      ->needs(step_option);
  bool progress = false;
  bool quiet = false;
  CLI::Option* progress_flag =
      replay->add_flag("--progress", progress, "Show progress on stderr even when it is not a terminal");
  replay->add_flag("--quiet", quiet, "Show neither progress nor the summary line")->excludes(progress_flag);
  add_ingest_flags(*replay, replay_ingest);

  IngestFlags follow_ingest;
  nle::FollowConfig follow_config;
  std::string poll_interval = "1s";
  std::string log_level = "info";
  std::string log_format = "logfmt";
  CLI::App* follow = app.add_subcommand("follow", "Follow log files or stdin and serve /metrics");
  follow->add_option("inputs", follow_config.inputs, "Files or globs to follow; none or - reads stdin");
  follow->add_option("--web.listen-address", follow_config.listen_addresses,
                     "Address to serve metrics on (repeatable: every one is served)")
      ->allow_extra_args(false)  // one address per flag: what follows is an input
      ->default_str("127.0.0.1:9761");
  follow->add_option("--web.config.file", follow_config.web_config_file,
                     "exporter-toolkit web config (TLS, basic auth, headers, rate limit), read again per request");
  follow->add_flag("--web.systemd-socket", follow_config.systemd_socket,
                   "Serve the sockets systemd passes (socket activation) instead of --web.listen-address");
  follow->add_option("--web.max-requests", follow_config.max_requests,
                     "Scrapes answered at once before 503 (0: no limit)")
      ->capture_default_str();
  follow->add_flag("--web.disable-exporter-metrics", follow_config.disable_exporter_metrics,
                   "Leave process_* and nixfleet_log_exporter_* off the metrics page");
  follow->add_option("--web.telemetry-path", follow_config.telemetry_path, "Path under which metrics are served")
      ->check([](const std::string& path) {
        return !path.empty() && path.front() == '/' ? std::string() : std::string("must start with /");
      })
      ->capture_default_str();
  follow->add_flag("--from-beginning", follow_config.from_beginning,
                   "Read files that exist at start-up from their start (default: from their end)");
  follow->add_option("--poll-interval", poll_interval, "Stat polling interval when inotify is unavailable (e.g. 250ms, 1s)")
      ->check([](const std::string& text) { return parse_duration(text) ? std::string() : std::string("not a duration"); })
      ->capture_default_str();
  follow->add_flag("--force-polling", follow_config.force_polling, "Poll files with stat even where inotify works");
  follow->add_flag("--linger", follow_config.linger, "After stdin ends, keep serving the final counters until SIGTERM");
  follow->add_option("--log.level", log_level, "Own messages at or above: debug, info, warn, error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  follow->add_option("--log.format", log_format, "Own messages as logfmt or json on stderr")
      ->check(CLI::IsMember({"logfmt", "json"}))
      ->capture_default_str();
  std::string state_interval = "1s";
  follow->add_option("--state-file", follow_config.state_file,
                     "Keep counters and read positions here across restarts (written atomically)");
  follow->add_option("--state-interval", state_interval, "Save the state at most this often when something changed")
      ->check([](const std::string& text) { return parse_duration(text) ? std::string() : std::string("not a duration"); })
      ->capture_default_str();
  follow->add_flag("--state-reset", follow_config.state_reset,
                   "Ignore the saved state: start from zero counters and the usual start positions");
  // One value per flag: `--journal-unit cp cp.log` names a unit and a file (then refused together),
  // not two units.
  follow->add_option("--journal-unit", follow_config.journal_units,
                     "Read the systemd journal for this unit (repeatable) instead of files or stdin")
      ->allow_extra_args(false);
  follow->add_option("--journal-directory", follow_config.journal_directory,
                     "Read the journal files in this directory instead of the system journal")
      ->check(CLI::ExistingDirectory);
  add_ingest_flags(*follow, follow_ingest);

  std::string cursor_state_file;
  CLI::App* cursor = app.add_subcommand("cursor", "Print the journald cursor a state file records, for journalctl --after-cursor");
  cursor->add_option("--state-file", cursor_state_file, "The state file of a follow run")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? nle::kExitOk : nle::kExitUsage;
  }

  if (replay->parsed()) {
    nle::ReplayConfig config;
    config.ingest = ingest_config(replay_ingest);
    config.inputs = replay_inputs;
    config.output_format = output_format == "openmetrics" ? ExpositionFormat::openmetrics : ExpositionFormat::prometheus;
    config.threads = threads;
    config.progress = quiet ? nle::ReplayProgress::never
                      : progress ? nle::ReplayProgress::always
                                 : nle::ReplayProgress::automatic;
    if (!step.empty()) config.step = *parse_duration(step);
    for (const std::string& spec : step_labels) {
      const std::size_t eq = spec.find('=');
      config.step_labels.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    }
    return nle::run_replay(config);
  }
  if (cursor->parsed()) return nle::run_cursor(cursor_state_file);
  follow_config.ingest = ingest_config(follow_ingest);
  follow_config.state_interval = *parse_duration(state_interval);
  if (follow_config.state_reset && follow_config.state_file.empty()) {
    std::fprintf(stderr, "nixfleet-log-exporter: --state-reset needs --state-file\n");
    return nle::kExitUsage;
  }
  follow_config.poll_interval = *parse_duration(poll_interval);
  follow_config.log_level = log_level == "debug"  ? nle::LogLevel::debug
                            : log_level == "warn"  ? nle::LogLevel::warn
                            : log_level == "error" ? nle::LogLevel::error
                                                   : nle::LogLevel::info;
  follow_config.log_format = log_format == "json" ? nle::LogFormat::json : nle::LogFormat::logfmt;
  return nle::run_follow(follow_config);
}
