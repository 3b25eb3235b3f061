// JSON lines with simdjson's On-Demand API: tracing's JSON (nested `fields` or flattened) and
// journald's `-o json` records. One forward pass over the top-level object reads everything; every
// string kept is copied to the arena because the parser's own buffer dies at its next iterate().
// The whole object is consumed, so a truncated or trailing-garbage line is an error, never half
// an event.

#include <simdjson.h>

#include <cstring>
#include <string>
#include <utility>

#include "parsers/shapes.h"

namespace nle::parsers {
namespace {

using simdjson::error_code;
namespace od = simdjson::ondemand;

ShapeStatus status_of(error_code error) {
  return error == simdjson::UTF8_ERROR ? ShapeStatus::invalid_utf8 : ShapeStatus::invalid_json;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// A `?`-formatted string field reaches JSON in Rust's Debug form, quotes and escapes included
// (`"hostname":"\"db\\\"1\""`); the text formatter prints the same value the same way and the
// text reader decodes it, so decoding it here too gives one label whatever the formatter.
std::string_view debug_unquoted(std::string_view s, Arena& arena) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    std::size_t consumed = 0;
    if (auto decoded = decode_rust_debug_string(s, consumed, arena); decoded && consumed == s.size()) return *decoded;
  }
  return arena.put(s);
}

// A scalar field value as text: strings decoded, numbers and booleans as written, null and
// containers absent.
error_code scalar_text(od::value& value, Arena& arena, std::optional<std::string_view>& out) {
  od::json_type type;
  if (error_code e = value.type().get(type)) return e;
  switch (type) {
    case od::json_type::string: {
      std::string_view s;
      if (error_code e = value.get_string().get(s)) return e;
      if (!out) out = debug_unquoted(s, arena);
      return simdjson::SUCCESS;
    }
    case od::json_type::number:
    case od::json_type::boolean: {
      std::string_view raw = trim(value.raw_json_token());
      if (!out) out = arena.put(raw);
      return simdjson::SUCCESS;
    }
    default:
      return simdjson::SUCCESS;  // skipped by the iterator when we move on
  }
}

error_code string_or_json(od::value& value, Arena& arena, std::optional<std::string_view>& json_text,
                          bool& is_object) {
  od::json_type type;
  if (error_code e = value.type().get(type)) return e;
  is_object = type == od::json_type::object;
  if (type == od::json_type::string) {
    std::string_view s;
    if (error_code e = value.get_string().get(s)) return e;
    if (!json_text && !s.empty() && s.front() == '{') json_text = arena.put(s);
  }
  return simdjson::SUCCESS;
}

// `details`: the wire shape's payload. Only control_id and hostname matter.
error_code read_details(od::object object, EventFields& f, Arena& arena) {
  for (auto field_result : object) {
    od::field field;
    if (error_code e = std::move(field_result).get(field)) return e;
    std::string_view key;
    if (error_code e = field.unescaped_key().get(key)) return e;
    if (key == "control_id") {
      if (error_code e = scalar_text(field.value(), arena, f.details_control_id)) return e;
    } else if (key == "hostname") {
      if (error_code e = scalar_text(field.value(), arena, f.details_hostname)) return e;
    }
  }
  return simdjson::SUCCESS;
}

error_code read_event_object(od::object object, EventFields& f, Arena& arena, bool nested);

// A whole report logged as one field: its event, host and control count where the line's own
// fields lack them.
error_code read_report(od::object object, EventFields& f, Arena& arena) {
  EventFields report;
  if (error_code e = read_event_object(object, report, arena, true)) return e;
  if (!f.report_event) f.report_event = report.event;
  if (!f.report_hostname) f.report_hostname = report.hostname ? report.hostname : report.details_hostname;
  if (!f.report_control_id) {
    f.report_control_id = report.control_id ? report.control_id : report.details_control_id;
  }
  if (!f.report_event_id) f.report_event_id = report.event_id;
  return simdjson::SUCCESS;
}

// One field of an event. Returns true when `key` was one of ours.
error_code read_event_field(std::string_view key, od::value value, EventFields& f, Arena& arena, bool nested) {
  if (key == "message") return scalar_text(value, arena, f.message);
  if (key == "event") return scalar_text(value, arena, f.event);
  if (key == "hostname") return scalar_text(value, arena, f.hostname);
  if (key == "control_id") return scalar_text(value, arena, f.control_id);
  if (key == "gate") return scalar_text(value, arena, f.gate);
  if (key == "version") return scalar_text(value, arena, f.version);
  if (key == "git_commit") return scalar_text(value, arena, f.git_commit);
  if (key == "event_id") return scalar_text(value, arena, f.event_id);
  if (key == "host") return scalar_text(value, arena, f.host);
  if (key == "details") {
    bool is_object = false;
    if (error_code e = string_or_json(value, arena, f.details_json, is_object)) return e;
    if (is_object) {
      od::object object;
      if (error_code e = value.get_object().get(object)) return e;
      return read_details(object, f, arena);
    }
    return simdjson::SUCCESS;
  }
  if (key == "report" && !nested) {
    bool is_object = false;
    if (error_code e = string_or_json(value, arena, f.report_json, is_object)) return e;
    if (is_object) {
      od::object object;
      if (error_code e = value.get_object().get(object)) return e;
      return read_report(object, f, arena);
    }
  }
  return simdjson::SUCCESS;
}

error_code read_event_object(od::object object, EventFields& f, Arena& arena, bool nested) {
  for (auto field_result : object) {
    od::field field;
    if (error_code e = std::move(field_result).get(field)) return e;
    std::string_view key;
    if (error_code e = field.unescaped_key().get(key)) return e;
    if (error_code e = read_event_field(key, field.value(), f, arena, nested)) return e;
  }
  return simdjson::SUCCESS;
}

bool is_json_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The bytes of `[104,105]` as written (raw_json: the array and the blanks after it). Exactly the
// arrays simdjson's get_uint64() reads element by element: unsigned integers without a leading
// zero, fraction or exponent, each at most 255; anything else is an error, as there.
error_code decode_byte_array(std::string_view raw, Arena& arena, std::string_view& out) {
  const std::size_t n = raw.size();
  std::size_t i = 0;
  if (n == 0 || raw[0] != '[') return simdjson::INCORRECT_TYPE;
  char* bytes = arena.reserve(n / 2 + 1);  // each element takes a digit and a separator
  std::size_t count = 0;
  ++i;
  while (i < n && is_json_blank(raw[i])) ++i;
  if (i < n && raw[i] == ']') {
    ++i;
  } else {
    for (;;) {
      if (i >= n || raw[i] < '0' || raw[i] > '9') return simdjson::INCORRECT_TYPE;
      unsigned value = 0;
      const std::size_t digits_start = i;
      while (i < n && raw[i] >= '0' && raw[i] <= '9') {
        value = value * 10 + static_cast<unsigned>(raw[i] - '0');
        if (value > 255) return simdjson::NUMBER_OUT_OF_RANGE;
        ++i;
      }
      if (raw[digits_start] == '0' && i - digits_start > 1) return simdjson::NUMBER_ERROR;  // leading zero
      bytes[count++] = static_cast<char>(value);
      while (i < n && is_json_blank(raw[i])) ++i;
      if (i < n && raw[i] == ',') {
        ++i;
        while (i < n && is_json_blank(raw[i])) ++i;
        continue;
      }
      if (i < n && raw[i] == ']') {
        ++i;
        break;
      }
      return simdjson::INCORRECT_TYPE;  // a fraction, an exponent, or not an array of numbers
    }
  }
  while (i < n && is_json_blank(raw[i])) ++i;
  if (i != n) return simdjson::TAPE_ERROR;
  out = std::string_view(bytes, count);
  return simdjson::SUCCESS;
}

// journald writes a field that is not printable UTF-8 as an array of byte values. Read from the
// array's text in one pass: element by element through simdjson cost more than the rest of the
// record (a coloured line is an array of thousands of numbers).
error_code read_byte_array(od::array array, Arena& arena, std::string_view& out) {
  std::string_view raw;
  if (error_code e = array.raw_json().get(raw)) return e;
  return decode_byte_array(raw, arena, out);
}

// MESSAGE: a string, a byte array, or (the field occurred several times) an array of those.
error_code read_message(od::value value, JsonLine& out, Arena& arena) {
  od::json_type type;
  if (error_code e = value.type().get(type)) return e;
  if (type == od::json_type::string) {
    std::string_view s;
    if (error_code e = value.get_string().get(s)) return e;
    out.messages.push_back(arena.put(s));
    return simdjson::SUCCESS;
  }
  if (type == od::json_type::null) {
    out.message_elided = true;
    return simdjson::SUCCESS;
  }
  if (type != od::json_type::array) return simdjson::INCORRECT_TYPE;
  od::array array;
  if (error_code e = value.get_array().get(array)) return e;
  // Peek at the first element's type to tell one byte array from several values.
  bool several = false;
  {
    for (auto element : array) {
      od::json_type element_type;
      if (error_code e = element.type().get(element_type)) return e;
      several = element_type != od::json_type::number;
      break;
    }
    if (error_code e = array.reset().error()) return e;
  }
  if (!several) {
    std::string_view bytes;
    if (error_code e = read_byte_array(array, arena, bytes)) return e;
    out.messages.push_back(bytes);
    return simdjson::SUCCESS;
  }
  for (auto element_result : array) {
    od::value element;
    if (error_code e = std::move(element_result).get(element)) return e;
    od::json_type element_type;
    if (error_code e = element.type().get(element_type)) return e;
    if (element_type == od::json_type::string) {
      std::string_view s;
      if (error_code e = element.get_string().get(s)) return e;
      out.messages.push_back(arena.put(s));
    } else if (element_type == od::json_type::array) {
      od::array inner;
      if (error_code e = element.get_array().get(inner)) return e;
      std::string_view bytes;
      if (error_code e = read_byte_array(inner, arena, bytes)) return e;
      out.messages.push_back(bytes);
    } else {
      return simdjson::INCORRECT_TYPE;
    }
  }
  return simdjson::SUCCESS;
}

bool is_tracing_metadata(std::string_view key) {
  return key == "timestamp" || key == "level" || key == "target" || key == "span" || key == "spans" ||
         key == "threadName" || key == "threadId" || key == "filename" || key == "line_number";
}

}  // namespace

struct JsonReader::Impl {
  od::parser parser;
  od::parser nested_parser;  // JSON held in a string field, read while `parser` is mid-document
  std::string padded;
  std::string nested_padded;

  static void pad(std::string& buffer, std::string_view bytes) {
    if (buffer.size() < bytes.size() + simdjson::SIMDJSON_PADDING) {
      buffer.resize(bytes.size() + simdjson::SIMDJSON_PADDING);
    }
    std::memcpy(buffer.data(), bytes.data(), bytes.size());
    std::memset(buffer.data() + bytes.size(), ' ', simdjson::SIMDJSON_PADDING);
  }

  ShapeStatus read(std::string_view line, JsonLine& out, Arena& arena) {
    out.clear();
    pad(padded, line);
    od::document doc;
    if (error_code e = parser.iterate(padded.data(), line.size(), padded.size()).get(doc)) return status_of(e);
    od::object object;
    if (error_code e = doc.get_object().get(object)) return status_of(e);

    EventFields nested;  // from `fields`, the default tracing JSON
    bool has_fields_object = false;
    for (auto field_result : object) {
      od::field field;
      if (error_code e = std::move(field_result).get(field)) return status_of(e);
      std::string_view key;
      if (error_code e = field.unescaped_key().get(key)) return status_of(e);
      od::value value = field.value();
      error_code e = simdjson::SUCCESS;
      if (key == "fields") {
        od::json_type type;
        if ((e = value.type().get(type)) == simdjson::SUCCESS && type == od::json_type::object) {
          od::object fields_object;
          if ((e = value.get_object().get(fields_object)) == simdjson::SUCCESS) {
            has_fields_object = true;
            e = read_event_object(fields_object, nested, arena, false);
          }
        }
      } else if (key == "MESSAGE") {
        out.journald = true;
        e = read_message(value, out, arena);
      } else if (key == "__CURSOR") {
        out.journald = true;
        std::optional<std::string_view> cursor;
        e = scalar_text(value, arena, cursor);
        if (cursor && out.cursor.empty()) out.cursor = *cursor;
      } else if (!is_tracing_metadata(key)) {
        e = read_event_field(key, value, out.fields, arena, false);  // flattened events
      }
      if (e) return status_of(e);
    }
    // Everything after the object must be blank: current_location() fails only at the end.
    const char* trailing = nullptr;
    if (doc.current_location().get(trailing) == simdjson::SUCCESS) return ShapeStatus::invalid_json;

    if (has_fields_object) out.fields = nested;
    resolve_nested_json(out.fields, arena);
    return ShapeStatus::fields;
  }

  void resolve_nested_json(EventFields& f, Arena& arena) {
    if (f.details_json) {
      std::optional<std::string_view> text = f.details_json;
      f.details_json.reset();
      read_nested(*text, arena, [&](od::object object) { return read_details(object, f, arena); });
    }
    if (f.report_json) {
      std::optional<std::string_view> text = f.report_json;
      f.report_json.reset();
      read_nested(*text, arena, [&](od::object object) { return read_report(object, f, arena); });
    }
  }

  template <class ReadObject>
  void read_nested(std::string_view text, Arena&, ReadObject&& read_object) {
    pad(nested_padded, text);
    od::document doc;
    if (nested_parser.iterate(nested_padded.data(), text.size(), nested_padded.size()).get(doc)) return;
    od::object object;
    if (doc.get_object().get(object)) return;
    (void)read_object(object);
  }
};

JsonReader::JsonReader() : impl_(std::make_unique<Impl>()) {}
JsonReader::~JsonReader() = default;
JsonReader::JsonReader(JsonReader&&) noexcept = default;
JsonReader& JsonReader::operator=(JsonReader&&) noexcept = default;

ShapeStatus JsonReader::read(std::string_view line, JsonLine& out, Arena& arena) {
  return impl_->read(line, out, arena);
}

void JsonReader::resolve_nested_json(EventFields& fields, Arena& arena) { impl_->resolve_nested_json(fields, arena); }

}  // namespace nle::parsers
