#include "state/state_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <simdjson.h>
#include <system_error>
#include <utility>

#include "exporter/exposition.h"

namespace nle {
namespace {

namespace dom = simdjson::dom;

// ---------------------------------------------------------------------------------------------
// Writing

// JSON string contents for valid UTF-8: the two characters JSON requires escaped, and every
// control character (so a newline in a label value cannot break the one-series-per-line layout).
// Non-ASCII is written as is: the file is UTF-8 and reads better that way.
void append_json_string(std::string& out, std::string_view text) {
  if (!is_valid_utf8(text)) {
    append_json_string(out, sanitize_utf8(text));
    return;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (byte < 0x20 || byte == 0x7F) {
          out += "\\u00";
          out += kHex[byte >> 4];
          out += kHex[byte & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void append_hex(std::string& out, std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += kHex[byte >> 4];
    out += kHex[byte & 0xF];
  }
}

// `"name": "text"` for valid UTF-8, else `"name_hex": "..."`: paths and cursors are bytes.
void append_bytes_member(std::string& out, std::string_view name, std::string_view bytes) {
  out += '"';
  out += name;
  if (is_valid_utf8(bytes)) {
    out += "\": ";
    append_json_string(out, bytes);
  } else {
    out += "_hex\": \"";
    append_hex(out, bytes);
    out += '"';
  }
}

void append_uint(std::string& out, std::uint64_t value) {
  char buffer[24];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

// Counters count, so they are written as integers; 2^64 - 1 reads back as the double 2^64, which
// is what a value that large was.
void append_count(std::string& out, double value) {
  constexpr double kTwoTo64 = 18446744073709551616.0;
  std::uint64_t count = 0;
  if (value >= kTwoTo64) {
    count = std::numeric_limits<std::uint64_t>::max();
  } else if (value > 0) {
    count = static_cast<std::uint64_t>(value);
  }
  append_uint(out, count);
}

// The shortest text that reads back as the same double. From 2^53 up, scientific: shortest
// round-trip may otherwise pick plain digits ("18446744073709552000") that a JSON reader takes for
// an integer too large for 64 bits.
void append_double(std::string& out, double value) {
  if (!std::isfinite(value)) value = 0;
  char buffer[64];
  constexpr double kTwoTo53 = 9007199254740992.0;
  const auto result = std::fabs(value) >= kTwoTo53
                          ? std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific)
                          : std::to_chars(buffer, buffer + sizeof buffer, value);
  out.append(buffer, result.ptr);
}

void append_two_digits(std::string& out, unsigned value) {
  out += static_cast<char>('0' + value / 10 % 10);
  out += static_cast<char>('0' + value % 10);
}

// 1970-01-01T00:00:00Z .. 9999-12-31T23:59:59Z: four-digit years keep the text fixed-width and
// the reader strict.
constexpr std::int64_t kLatestWrittenAt = 253402300799;

void append_iso_time(std::string& out, std::int64_t unix_seconds) {
  using namespace std::chrono;
  const sys_seconds at{seconds{std::clamp<std::int64_t>(unix_seconds, 0, kLatestWrittenAt)}};
  const sys_days day = floor<days>(at);
  const year_month_day date{day};
  const hh_mm_ss time{at - day};
  const auto year = static_cast<unsigned>(static_cast<int>(date.year()));
  append_two_digits(out, year / 100);
  append_two_digits(out, year % 100);
  out += '-';
  append_two_digits(out, static_cast<unsigned>(date.month()));
  out += '-';
  append_two_digits(out, static_cast<unsigned>(date.day()));
  out += 'T';
  append_two_digits(out, static_cast<unsigned>(time.hours().count()));
  out += ':';
  append_two_digits(out, static_cast<unsigned>(time.minutes().count()));
  out += ':';
  append_two_digits(out, static_cast<unsigned>(time.seconds().count()));
  out += 'Z';
}

// The order counters are written in: what makes the output deterministic.
bool counter_before(const CounterState* a, const CounterState* b) {
  if (a->family != b->family) return a->family < b->family;
  if (a->label_names != b->label_names) return a->label_names < b->label_names;
  return a->label_values < b->label_values;
}

void append_counter(std::string& out, const CounterState& counter) {
  out += "{\"family\": ";
  append_json_string(out, counter.family);
  out += ", \"labels\": {";
  const std::size_t pairs = std::min(counter.label_names.size(), counter.label_values.size());
  for (std::size_t i = 0; i < pairs; ++i) {
    if (i != 0) out += ", ";
    append_json_string(out, counter.label_names[i]);
    out += ": ";
    append_json_string(out, counter.label_values[i]);
  }
  out += "}, \"value\": ";
  append_count(out, counter.value);
  out += ", \"created\": ";
  append_double(out, counter.created);
  if (counter.exemplar) {
    out += ", \"exemplar\": {\"labels\": {";
    append_json_string(out, counter.exemplar->label_name);
    out += ": ";
    append_json_string(out, counter.exemplar->label_value);
    out += "}, \"timestamp_micros\": ";
    if (counter.exemplar->timestamp_micros) {
      char buffer[24];
      const auto result = std::to_chars(buffer, buffer + sizeof buffer, *counter.exemplar->timestamp_micros);
      out.append(buffer, result.ptr);
    } else {
      out += "null";
    }
    out += '}';
  }
  out += '}';
}

void append_file(std::string& out, const FilePosition& file) {
  out += '{';
  append_bytes_member(out, "path", file.path);
  out += ", \"device\": ";
  append_uint(out, file.device);
  out += ", \"inode\": ";
  append_uint(out, file.inode);
  out += ", \"offset\": ";
  append_uint(out, file.offset);
  out += ", \"fingerprint\": \"";
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(file.fingerprint >> shift) & 0xF];
  out += "\", \"fingerprint_bytes\": ";
  append_uint(out, file.fingerprint_bytes);
  out += '}';
}

// ---------------------------------------------------------------------------------------------
// Reading. Each getter names the member it looked at in `error` ("files[2].inode: ...").

std::string_view type_name(dom::element_type type) {
  switch (type) {
    case dom::element_type::ARRAY:
      return "an array";
    case dom::element_type::OBJECT:
      return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
      return "an integer";
    case dom::element_type::DOUBLE:
      return "a number with a fraction or exponent";
    case dom::element_type::STRING:
      return "a string";
    case dom::element_type::BOOL:
      return "a boolean";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "something else";
}

class Reader {
 public:
  explicit Reader(std::string& error) : error_(error) {}

  bool fail(std::string_view where, std::string_view what) {
    error_.assign(where);
    error_ += ": ";
    error_ += what;
    return false;
  }
  bool fail_whole(std::string what) {
    error_ = std::move(what);
    return false;
  }
  bool wrong_type(std::string_view where, std::string_view expected, dom::element element) {
    return fail(where, std::string("expected ") + std::string(expected) + ", got " +
                           std::string(type_name(element.type())));
  }

  bool member(dom::object object, std::string_view where, std::string_view key, dom::element& out) {
    if (object.at_key(key).get(out) == simdjson::SUCCESS) return true;
    return fail(where, "missing");
  }

  bool as_object(dom::element element, std::string_view where, dom::object& out) {
    if (element.get_object().get(out) == simdjson::SUCCESS) return true;
    return wrong_type(where, "an object", element);
  }
  bool as_array(dom::element element, std::string_view where, dom::array& out) {
    if (element.get_array().get(out) == simdjson::SUCCESS) return true;
    return wrong_type(where, "an array", element);
  }
  bool as_string(dom::element element, std::string_view where, std::string& out) {
    std::string_view text;
    if (element.get_string().get(text) != simdjson::SUCCESS) return wrong_type(where, "a string", element);
    out.assign(text);
    return true;
  }
  // Integers only: 3.0 or 3e0 is not what we write, so it is not what we read.
  bool as_uint(dom::element element, std::string_view where, std::uint64_t& out) {
    const dom::element_type type = element.type();
    if ((type == dom::element_type::INT64 || type == dom::element_type::UINT64) &&
        element.get_uint64().get(out) == simdjson::SUCCESS) {
      return true;
    }
    return wrong_type(where, "a non-negative integer", element);
  }
  bool as_int(dom::element element, std::string_view where, std::int64_t& out) {
    const dom::element_type type = element.type();
    if ((type == dom::element_type::INT64 || type == dom::element_type::UINT64) &&
        element.get_int64().get(out) == simdjson::SUCCESS) {
      return true;
    }
    return wrong_type(where, "an integer", element);
  }
  bool as_double(dom::element element, std::string_view where, double& out) {
    if (element.get_double().get(out) == simdjson::SUCCESS) return true;
    return wrong_type(where, "a number", element);
  }

  bool string_member(dom::object object, std::string_view where, std::string_view key, std::string& out) {
    dom::element element;
    const std::string at = path(where, key);
    return member(object, at, key, element) && as_string(element, at, out);
  }
  bool uint_member(dom::object object, std::string_view where, std::string_view key, std::uint64_t& out) {
    dom::element element;
    const std::string at = path(where, key);
    return member(object, at, key, element) && as_uint(element, at, out);
  }

  // A byte string written by append_bytes_member: exactly one of `key` and `key_hex`.
  bool bytes_member(dom::object object, std::string_view where, std::string_view key, std::string& out) {
    const std::string hex_key = std::string(key) + "_hex";
    dom::element text;
    dom::element hex;
    const bool has_text = object.at_key(key).get(text) == simdjson::SUCCESS;
    const bool has_hex = object.at_key(hex_key).get(hex) == simdjson::SUCCESS;
    if (has_text && has_hex) return fail(path(where, key), "both \"" + std::string(key) + "\" and \"" + hex_key + "\"");
    if (has_text) return as_string(text, path(where, key), out);
    if (!has_hex) return fail(path(where, key), "missing");
    std::string digits;
    const std::string at = path(where, hex_key);
    if (!as_string(hex, at, digits)) return false;
    if (digits.size() % 2 != 0) return fail(at, "odd number of hex digits");
    out.clear();
    for (std::size_t i = 0; i < digits.size(); i += 2) {
      unsigned byte = 0;
      const auto result = std::from_chars(digits.data() + i, digits.data() + i + 2, byte, 16);
      if (result.ec != std::errc() || result.ptr != digits.data() + i + 2) return fail(at, "not hex digits");
      out += static_cast<char>(byte);
    }
    return true;
  }

  static std::string path(std::string_view where, std::string_view key) {
    std::string at(where);
    if (!at.empty()) at += '.';
    at += key;
    return at;
  }
  static std::string index(std::string_view where, std::size_t i) {
    return std::string(where) + '[' + std::to_string(i) + ']';
  }

 private:
  std::string& error_;
};

bool parse_iso_time(std::string_view text, std::int64_t& out) {
  // YYYY-MM-DDTHH:MM:SSZ, exactly as append_iso_time writes it.
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:ddZ";
  if (text.size() != kShape.size()) return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kShape[i] == 'd' ? !digit : text[i] != kShape[i]) return false;
  }
  const auto number = [&](std::size_t at, std::size_t length) {
    int value = 0;
    for (std::size_t i = at; i < at + length; ++i) value = value * 10 + (text[i] - '0');
    return value;
  };
  using namespace std::chrono;
  const year_month_day date{year{number(0, 4)}, month{static_cast<unsigned>(number(5, 2))},
                            day{static_cast<unsigned>(number(8, 2))}};
  const int hour = number(11, 2);
  const int minute = number(14, 2);
  const int second = number(17, 2);
  if (!date.ok() || hour > 23 || minute > 59 || second > 59) return false;
  out = sys_days{date}.time_since_epoch() / seconds{1} + hour * 3600 + minute * 60 + second;
  return true;
}

bool read_file_position(Reader& reader, dom::element element, const std::string& where, FilePosition& file) {
  dom::object object;
  std::uint64_t fingerprint_bytes = 0;
  std::string fingerprint;
  if (!reader.as_object(element, where, object) || !reader.bytes_member(object, where, "path", file.path) ||
      !reader.uint_member(object, where, "device", file.device) ||
      !reader.uint_member(object, where, "inode", file.inode) ||
      !reader.uint_member(object, where, "offset", file.offset) ||
      !reader.string_member(object, where, "fingerprint", fingerprint) ||
      !reader.uint_member(object, where, "fingerprint_bytes", fingerprint_bytes)) {
    return false;
  }
  const auto end = fingerprint.data() + fingerprint.size();
  const auto result = std::from_chars(fingerprint.data(), end, file.fingerprint, 16);
  if (fingerprint.empty() || fingerprint.size() > 16 || result.ec != std::errc() || result.ptr != end) {
    return reader.fail(Reader::path(where, "fingerprint"), "expected up to 16 hex digits");
  }
  if (fingerprint_bytes > std::numeric_limits<std::uint32_t>::max()) {
    return reader.fail(Reader::path(where, "fingerprint_bytes"), "too large");
  }
  file.fingerprint_bytes = static_cast<std::uint32_t>(fingerprint_bytes);
  return true;
}

// {"labels": {"event_id": "..."}, "timestamp_micros": 1795162652411481 or null}: one label.
bool read_exemplar(Reader& reader, dom::element element, const std::string& where, Exemplar& exemplar) {
  dom::object object;
  dom::element labels_element;
  dom::object labels;
  dom::element time;
  const std::string labels_at = Reader::path(where, "labels");
  const std::string time_at = Reader::path(where, "timestamp_micros");
  if (!reader.as_object(element, where, object) || !reader.member(object, labels_at, "labels", labels_element) ||
      !reader.as_object(labels_element, labels_at, labels)) {
    return false;
  }
  if (labels.size() != 1) return reader.fail(labels_at, "expected exactly one label");
  for (const dom::key_value_pair label : labels) {
    exemplar.label_name.assign(label.key);
    if (!reader.as_string(label.value, Reader::path(labels_at, label.key), exemplar.label_value)) return false;
  }
  if (!reader.member(object, time_at, "timestamp_micros", time)) return false;
  if (time.is_null()) return true;
  return reader.as_int(time, time_at, exemplar.timestamp_micros.emplace());
}

bool read_counter(Reader& reader, dom::element element, const std::string& where, CounterState& counter) {
  dom::object object;
  dom::element labels_element;
  dom::object labels;
  dom::element number;
  std::uint64_t value = 0;
  const std::string labels_at = Reader::path(where, "labels");
  const std::string value_at = Reader::path(where, "value");
  const std::string created_at = Reader::path(where, "created");
  if (!reader.as_object(element, where, object) || !reader.string_member(object, where, "family", counter.family) ||
      !reader.member(object, labels_at, "labels", labels_element) ||
      !reader.as_object(labels_element, labels_at, labels)) {
    return false;
  }
  for (const dom::key_value_pair label : labels) {
    const std::string label_at = Reader::path(labels_at, label.key);
    if (std::find(counter.label_names.begin(), counter.label_names.end(), label.key) != counter.label_names.end()) {
      return reader.fail(label_at, "duplicate label name");
    }
    counter.label_names.emplace_back(label.key);
    if (!reader.as_string(label.value, label_at, counter.label_values.emplace_back())) return false;
  }
  if (!reader.member(object, value_at, "value", number) || !reader.as_uint(number, value_at, value)) return false;
  counter.value = static_cast<double>(value);
  if (!reader.member(object, created_at, "created", number) || !reader.as_double(number, created_at, counter.created)) {
    return false;
  }
  dom::element exemplar;
  if (object.at_key("exemplar").get(exemplar) != simdjson::SUCCESS) return true;  // optional
  return read_exemplar(reader, exemplar, Reader::path(where, "exemplar"), counter.exemplar.emplace());
}

bool read_state(Reader& reader, dom::element root, ExporterState& state) {
  dom::object object;
  if (!reader.as_object(root, "state file", object)) return false;

  // Format and version first: nothing else is looked at in a file we do not know how to read.
  dom::element format_element;
  std::string_view format;
  if (object.at_key("format").get(format_element) != simdjson::SUCCESS ||
      format_element.get_string().get(format) != simdjson::SUCCESS || format != kStateFormat) {
    return reader.fail_whole("not a nixfleet-log-exporter state file (no \"format\": \"" +
                             std::string(kStateFormat) + "\")");
  }
  std::uint64_t version = 0;
  if (!reader.uint_member(object, "", "version", version)) return false;
  if (version < kOldestStateVersion || version > kStateVersion) {
    return reader.fail_whole("unsupported state file version " + std::to_string(version) + " (this exporter reads " +
                             std::to_string(kOldestStateVersion) + " to " + std::to_string(kStateVersion) + ")");
  }

  std::string written_at;
  if (!reader.string_member(object, "", "written_at", written_at)) return false;
  if (!parse_iso_time(written_at, state.written_at)) {
    return reader.fail("written_at", "expected a UTC time like 2024-05-01T12:00:00Z");
  }
  if (!reader.string_member(object, "", "exporter_version", state.exporter_version) ||
      !reader.bytes_member(object, "", "journal_cursor", state.journal_cursor) ||
      !reader.bytes_member(object, "", "stdin_journal_cursor", state.stdin_journal_cursor)) {
    return false;
  }

  dom::element build_info;
  if (!reader.member(object, "build_info", "build_info", build_info)) return false;
  if (!build_info.is_null()) {
    dom::object fields;
    BuildInfoState& info = state.build_info.emplace();
    if (!reader.as_object(build_info, "build_info", fields) ||
        !reader.string_member(fields, "build_info", "version", info.version) ||
        !reader.string_member(fields, "build_info", "git_commit", info.git_commit) ||
        !reader.uint_member(fields, "build_info", "order", info.order)) {
      return false;
    }
  }

  dom::element list;
  dom::array items;
  if (!reader.member(object, "files", "files", list) || !reader.as_array(list, "files", items)) return false;
  for (const dom::element item : items) {
    const std::string where = Reader::index("files", state.files.size());
    if (!read_file_position(reader, item, where, state.files.emplace_back())) return false;
  }
  if (!reader.member(object, "counters", "counters", list) || !reader.as_array(list, "counters", items)) return false;
  for (const dom::element item : items) {
    const std::string where = Reader::index("counters", state.counters.size());
    if (!read_counter(reader, item, where, state.counters.emplace_back())) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Files

std::string errno_text(int error) { return std::generic_category().message(error); }

class OwnedFd {
 public:
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  int get() const { return fd_; }
  // Closes now, for the caller to see the error (a write-back error can surface at close).
  int close() { return ::close(std::exchange(fd_, -1)); }
  // Hands the descriptor over; this object no longer closes it.
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The directory whose entry rename() changes, to fsync after it.
std::string directory_of(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::write(fd, bytes.data(), bytes.size());
    if (written < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

bool write_state_file_impl(const std::string& path, std::string_view contents, std::string& error,
                           StateDurability durability) {
  if (path.empty() || path.back() == '/') {
    error = "state file path \"" + path + "\" does not name a file";
    return false;
  }
  // A fixed temp name rather than a unique one: a process killed between create and rename
  // leaves at most one stale PATH.tmp, which the next write reuses, instead of one per crash.
  const std::string temp = path + ".tmp";
  const auto fail = [&](const std::string& what, int saved_errno) {
    error = what + ": " + errno_text(saved_errno);
    ::unlink(temp.c_str());
    return false;
  };
  OwnedFd file(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (file.get() < 0) {
    // Not fail(): nothing was created, and an existing PATH.tmp we could not open is not ours to remove.
    error = "cannot create " + temp + " to write the state file " + path + ": " + errno_text(errno);
    return false;
  }
  // errno is taken before the message is built: building it allocates.
  if (!write_all(file.get(), contents)) {
    const int saved = errno;
    return fail("cannot write " + temp + " (state file " + path + ")", saved);
  }
  const bool flush = durability == StateDurability::power_loss;
  if (flush && ::fsync(file.get()) != 0) {
    const int saved = errno;
    return fail("cannot fsync " + temp + " (state file " + path + ")", saved);
  }
  // EINTR from close: Linux has closed the descriptor already, and fsync has reported the data.
  if (file.close() != 0 && errno != EINTR) {
    const int saved = errno;
    return fail("cannot close " + temp + " (state file " + path + ")", saved);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int saved = errno;
    return fail("cannot rename " + temp + " to " + path, saved);
  }
  if (!flush) return true;

  // Without this the rename itself may not survive a power cut: the old file would come back.
  const std::string directory = directory_of(path);
  OwnedFd dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) {
    error = "wrote " + path + " but cannot open its directory " + directory + " to fsync it: " + errno_text(errno);
    return false;
  }
  // EINVAL: a file system that cannot sync directories (some FUSE ones); nothing more to do there.
  if (::fsync(dir.get()) != 0 && errno != EINVAL) {
    error = "wrote " + path + " but cannot fsync its directory " + directory + ": " + errno_text(errno);
    return false;
  }
  return true;
}

StateRead read_state_file_impl(const std::string& path, std::string& contents, std::string& error) {
  OwnedFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) {
    if (errno == ENOENT) return StateRead::missing;
    error = "cannot open state file " + path + ": " + errno_text(errno);
    return StateRead::error;
  }
  struct stat status {};
  if (::fstat(file.get(), &status) != 0) {
    error = "cannot stat state file " + path + ": " + errno_text(errno);
    return StateRead::error;
  }
  // A fifo would block and a device could be endless; a state file is only ever a regular file.
  if (!S_ISREG(status.st_mode)) {
    error = "state file " + path + " is not a regular file";
    return StateRead::error;
  }
  contents.clear();
  contents.reserve(static_cast<std::size_t>(status.st_size));
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::read(file.get(), buffer, sizeof buffer);
    if (got == 0) break;
    if (got < 0) {
      if (errno == EINTR) continue;
      error = "cannot read state file " + path + ": " + errno_text(errno);
      return StateRead::error;
    }
    contents.append(buffer, static_cast<std::size_t>(got));
  }
  return StateRead::ok;
}

// The pid a lock holder wrote into its lock file, or 0 when it names none (the holder has not
// written it yet, or the file is not ours).
long holder_pid(int fd) {
  char buffer[32];
  ssize_t got;
  do {
    got = ::pread(fd, buffer, sizeof buffer - 1, 0);
  } while (got < 0 && errno == EINTR);
  if (got <= 0) return 0;
  long pid = 0;
  const auto result = std::from_chars(buffer, buffer + got, pid);
  if (result.ec != std::errc() || pid <= 0 || (result.ptr != buffer + got && *result.ptr != '\n')) return 0;
  return pid;
}

// The locked descriptor, or -1 with `error` set.
int lock_state_file_impl(const std::string& state_path, std::string& error) {
  if (state_path.empty() || state_path.back() == '/') {
    error = "state file path \"" + state_path + "\" does not name a file";
    return -1;
  }
  const std::string lock_path = state_lock_path(state_path);
  // O_RDWR: the pid is written into it. O_NOFOLLOW, as for PATH.tmp: we write where we were told.
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 && errno == EACCES) {
    // A lock file another user created (an earlier run as root, say): flock works on a
    // read-only descriptor, only the pid goes unwritten.
    fd = ::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  }
  OwnedFd file(fd);
  if (file.get() < 0) {
    const int saved = errno;
    error = "cannot open the lock file " + lock_path + " for the state file " + state_path + ": " + errno_text(saved);
    return -1;
  }
  int locked;
  do {
    locked = ::flock(file.get(), LOCK_EX | LOCK_NB);
  } while (locked != 0 && errno == EINTR);
  if (locked != 0) {
    const int saved = errno;
    if (saved != EWOULDBLOCK) {
      error = "cannot lock " + lock_path + " for the state file " + state_path + ": " + errno_text(saved);
      return -1;
    }
    const long pid = holder_pid(file.get());
    error = "the state file " + state_path + " is in use by another nixfleet-log-exporter (" +
            (pid > 0 ? "pid " + std::to_string(pid) + ", " : std::string()) + "lock " + lock_path +
            " held); run one exporter per state file";
    return -1;
  }
  // Only for the message above: a lock file we cannot write the pid into is still a held lock.
  const std::string pid_line = std::to_string(::getpid()) + "\n";
  if (::ftruncate(file.get(), 0) == 0) {
    [[maybe_unused]] const ssize_t written = ::pwrite(file.get(), pid_line.data(), pid_line.size(), 0);
  }
  return file.release();
}

}  // namespace

StateFileLock::StateFileLock(StateFileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

StateFileLock& StateFileLock::operator=(StateFileLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

StateFileLock::~StateFileLock() { release(); }

void StateFileLock::release() {
  if (fd_ < 0) return;
  // Emptied while still locked, so that an exporter refused later does not name a pid that has
  // gone (and may have been reused). A crash leaves its pid behind until the next holder
  // overwrites it, just after taking the lock.
  [[maybe_unused]] const int truncated = ::ftruncate(fd_, 0);
  // Closing the last descriptor of the open file drops the flock.
  ::close(std::exchange(fd_, -1));
}

std::string state_lock_path(const std::string& state_path) { return state_path + ".lock"; }

std::optional<StateFileLock> lock_state_file(const std::string& state_path, std::string& error) {
  try {
    const int fd = lock_state_file_impl(state_path, error);
    if (fd < 0) return std::nullopt;
    return StateFileLock(fd);
  } catch (const std::exception& e) {
    error = "cannot lock state file " + state_path + ": " + e.what();
    return std::nullopt;
  }
}

std::string serialize_state(const ExporterState& state) {
  std::vector<const CounterState*> counters;
  counters.reserve(state.counters.size());
  for (const CounterState& counter : state.counters) counters.push_back(&counter);
  // Stable: equal keys (a caller's duplicates) keep the caller's order, so output stays a
  // function of the input.
  std::stable_sort(counters.begin(), counters.end(), counter_before);

  std::string out;
  out.reserve(512 + 160 * (state.counters.size() + state.files.size()));
  out += "{\n  \"format\": ";
  append_json_string(out, kStateFormat);
  out += ",\n  \"version\": ";
  append_uint(out, kStateVersion);
  out += ",\n  \"written_at\": \"";
  append_iso_time(out, state.written_at);
  out += "\",\n  \"exporter_version\": ";
  append_json_string(out, state.exporter_version);
  out += ",\n  ";
  append_bytes_member(out, "journal_cursor", state.journal_cursor);
  out += ",\n  ";
  append_bytes_member(out, "stdin_journal_cursor", state.stdin_journal_cursor);
  out += ",\n  \"build_info\": ";
  if (state.build_info) {
    out += "{\"version\": ";
    append_json_string(out, state.build_info->version);
    out += ", \"git_commit\": ";
    append_json_string(out, state.build_info->git_commit);
    out += ", \"order\": ";
    append_uint(out, state.build_info->order);
    out += '}';
  } else {
    out += "null";
  }
  out += ",\n  \"files\": [";
  for (std::size_t i = 0; i < state.files.size(); ++i) {
    out += i == 0 ? "\n    " : ",\n    ";
    append_file(out, state.files[i]);
  }
  out += state.files.empty() ? "]" : "\n  ]";
  out += ",\n  \"counters\": [";
  for (std::size_t i = 0; i < counters.size(); ++i) {
    out += i == 0 ? "\n    " : ",\n    ";
    append_counter(out, *counters[i]);
  }
  out += counters.empty() ? "]" : "\n  ]";
  out += "\n}\n";
  return out;
}

std::optional<ExporterState> parse_state(std::string_view text, std::string& error) {
  try {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
      error = "the state file is empty";
      return std::nullopt;
    }
    dom::parser parser;
    dom::element root;
    if (const auto code = parser.parse(text.data(), text.size()).get(root); code != simdjson::SUCCESS) {
      error = std::string("not valid JSON (truncated or corrupt?): ") + simdjson::error_message(code);
      return std::nullopt;
    }
    ExporterState state;
    Reader reader(error);
    if (!read_state(reader, root, state)) return std::nullopt;
    return state;
  } catch (const std::exception& e) {  // out of memory: no exception leaves the module
    error = std::string("cannot read the state: ") + e.what();
    return std::nullopt;
  }
}

bool write_state_file(const std::string& path, std::string_view contents, std::string& error,
                      StateDurability durability) {
  try {
    return write_state_file_impl(path, contents, error, durability);
  } catch (const std::exception& e) {
    error = "cannot write state file " + path + ": " + e.what();
    return false;
  }
}

StateRead read_state_file(const std::string& path, std::string& contents, std::string& error) {
  try {
    return read_state_file_impl(path, contents, error);
  } catch (const std::exception& e) {
    error = "cannot read state file " + path + ": " + e.what();
    return StateRead::error;
  }
}

}  // namespace nle
