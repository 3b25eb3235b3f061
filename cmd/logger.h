// The exporter's own messages on stderr, as logfmt or JSON lines, filtered by level.
// Thread-safe: one line is written whole under a mutex.
#pragma once

#include <initializer_list>
#include <mutex>
#include <string_view>
#include <utility>

#include "cmd/commands.h"

namespace nle {

class Logger {
 public:
  using Fields = std::initializer_list<std::pair<std::string_view, std::string_view>>;

  Logger(LogLevel level, LogFormat format) : level_(level), format_(format) {}

  void log(LogLevel level, std::string_view message, Fields fields = {});
  void debug(std::string_view message, Fields fields = {}) { log(LogLevel::debug, message, fields); }
  void info(std::string_view message, Fields fields = {}) { log(LogLevel::info, message, fields); }
  void warn(std::string_view message, Fields fields = {}) { log(LogLevel::warn, message, fields); }
  void error(std::string_view message, Fields fields = {}) { log(LogLevel::error, message, fields); }

 private:
  LogLevel level_;
  LogFormat format_;
  std::mutex mutex_;
};

}  // namespace nle
