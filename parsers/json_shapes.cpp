// JSON lines with simdjson's On-Demand API: tracing's JSON (nested `fields` or flattened) and
// journald's `-o json` records. One forward pass over the top-level object reads everything. The
// document itself is copied to the arena, so a string kept is a view of it unless it holds an
// escape; one that does is unescaped by simdjson and that copy put in the arena, as the parser's
// own buffer dies at its next iterate().
// The whole object is consumed, so a truncated or trailing-garbage line is an error, never half
// an event.

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "parsers/shapes.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

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

// The contents of the JSON string that starts just past the quote at `p`, when it holds no
// backslash: then its bytes are exactly what unescaping gives, so nothing is decoded or copied.
// False at the first backslash, for simdjson to unescape (and to reject a bad escape). Stage 1
// has checked that the string closes inside the document, and simdjson's padding keeps every
// 16-byte load, up to 15 bytes past the closing quote, inside the buffer.
[[gnu::always_inline]] inline bool unescaped_in_place(const char* p, std::string_view& out) {
#if defined(__x86_64__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  for (std::size_t i = 0;; i += 16) {
    const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const auto stops = static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(chunk, quote), _mm_cmpeq_epi8(chunk, backslash))));
    if (stops != 0) {
      const std::size_t end = i + static_cast<std::size_t>(std::countr_zero(stops));
      if (p[end] != '"') return false;
      out = std::string_view(p, end);
      return true;
    }
  }
#else
  for (std::size_t i = 0;; ++i) {
    if (p[i] == '"') {
      out = std::string_view(p, i);
      return true;
    }
    if (p[i] == '\\') return false;
  }
#endif
}

// An object key as unescaping gives it, read in place unless it holds an escape.
[[gnu::always_inline]] inline error_code key_of(od::field& field, std::string_view& key) {
  if (unescaped_in_place(field.key().raw(), key)) return simdjson::SUCCESS;
  return field.unescaped_key().get(key);
}

// A string value (its type checked by the caller) as get_string() gives it: read in place, in the
// document, unless it holds an escape; else unescaped into simdjson's string buffer, which dies at
// the next iterate(). `in_document` says which.
[[gnu::always_inline]] inline error_code string_of(od::value& value, std::string_view& s, bool& in_document) {
  in_document = unescaped_in_place(value.raw_json_token().data() + 1, s);
  if (in_document) {
    od::raw_json_string consumed;
    return value.get_raw_json_string().get(consumed);
  }
  return value.get_string().get(s);
}

// A string to keep until the arena's reset: the document itself lives in the arena (see
// JsonReader::Impl::pad), so only what simdjson unescaped is copied.
std::string_view kept(std::string_view s, bool in_document, Arena& arena) {
  return in_document ? s : arena.put(s);
}

// The keys the readers below act on, told apart by length first: a tracing line has a dozen keys
// and a journald record thirty, most of them matching none.
enum class Key : unsigned char {
  other,
  // Top level only.
  fields,
  journald_message,  // MESSAGE
  journald_cursor,   // __CURSOR
  tracing_metadata,  // timestamp, level, target, span(s), thread and source location
  // An event's fields (top level: flattened events).
  message,
  event,
  hostname,
  control_id,
  gate,
  version,
  git_commit,
  event_id,
  host,
  details,
  report,
};

[[gnu::always_inline]] inline Key key_kind(std::string_view key) {
  switch (key.size()) {
    case 4:
      if (key == "gate") return Key::gate;
      if (key == "host") return Key::host;
      if (key == "span") return Key::tracing_metadata;
      break;
    case 5:
      if (key == "event") return Key::event;
      if (key == "level" || key == "spans") return Key::tracing_metadata;
      break;
    case 6:
      if (key == "fields") return Key::fields;
      if (key == "target") return Key::tracing_metadata;
      if (key == "report") return Key::report;
      break;
    case 7:
      if (key == "message") return Key::message;
      if (key == "MESSAGE") return Key::journald_message;
      if (key == "version") return Key::version;
      if (key == "details") return Key::details;
      break;
    case 8:
      if (key == "hostname") return Key::hostname;
      if (key == "event_id") return Key::event_id;
      if (key == "__CURSOR") return Key::journald_cursor;
      if (key == "threadId" || key == "filename") return Key::tracing_metadata;
      break;
    case 9:
      if (key == "timestamp") return Key::tracing_metadata;
      break;
    case 10:
      if (key == "control_id") return Key::control_id;
      if (key == "git_commit") return Key::git_commit;
      if (key == "threadName") return Key::tracing_metadata;
      break;
    case 11:
      if (key == "line_number") return Key::tracing_metadata;
      break;
    default:
      break;
  }
  return Key::other;
}

// A `?`-formatted string field reaches JSON in Rust's Debug form, quotes and escapes included
// (`"hostname":"\"db\\\"1\""`); the text formatter prints the same value the same way and the
// text reader decodes it, so decoding it here too gives one label whatever the formatter.
[[gnu::always_inline]] inline std::string_view debug_unquoted(std::string_view s, bool in_document, Arena& arena) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') {
    std::size_t consumed = 0;
    if (auto decoded = decode_rust_debug_string(s, consumed, arena); decoded && consumed == s.size()) return *decoded;
  }
  return kept(s, in_document, arena);
}

// A scalar field value as text: strings decoded, numbers and booleans as written, null and
// containers absent.
[[gnu::always_inline]] inline error_code scalar_text(od::value& value, Arena& arena,
                                                     std::optional<std::string_view>& out) {
  od::json_type type;
  if (error_code e = value.type().get(type)) return e;
  switch (type) {
    case od::json_type::string: {
      std::string_view s;
      bool in_document = false;
      if (error_code e = string_of(value, s, in_document)) return e;
      if (!out) out = debug_unquoted(s, in_document, arena);
      return simdjson::SUCCESS;
    }
    case od::json_type::number:
    case od::json_type::boolean: {
      std::string_view raw = trim(value.raw_json_token());
      if (!out) out = raw;  // in the document
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
    bool in_document = false;
    if (error_code e = string_of(value, s, in_document)) return e;
    if (!json_text && !s.empty() && s.front() == '{') json_text = kept(s, in_document, arena);
  }
  return simdjson::SUCCESS;
}

// `details`: the wire shape's payload. Only control_id and hostname matter.
error_code read_details(od::object object, EventFields& f, Arena& arena) {
  for (auto field_result : object) {
    od::field field;
    if (error_code e = std::move(field_result).get(field)) return e;
    std::string_view key;
    if (error_code e = key_of(field, key)) return e;
    const Key kind = key_kind(key);
    if (kind == Key::control_id) {
      if (error_code e = scalar_text(field.value(), arena, f.details_control_id)) return e;
    } else if (kind == Key::hostname) {
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

// One field of an event, of kind `kind` (key_kind() of its key); keys not of an event's are
// skipped.
error_code read_event_field(Key kind, od::value value, EventFields& f, Arena& arena, bool nested) {
  std::optional<std::string_view>* slot = nullptr;  // a scalar field's
  switch (kind) {
    case Key::message: slot = &f.message; break;
    case Key::event: slot = &f.event; break;
    case Key::hostname: slot = &f.hostname; break;
    case Key::control_id: slot = &f.control_id; break;
    case Key::gate: slot = &f.gate; break;
    case Key::version: slot = &f.version; break;
    case Key::git_commit: slot = &f.git_commit; break;
    case Key::event_id: slot = &f.event_id; break;
    case Key::host: slot = &f.host; break;
    case Key::details: {
      bool is_object = false;
      if (error_code e = string_or_json(value, arena, f.details_json, is_object)) return e;
      if (is_object) {
        od::object object;
        if (error_code e = value.get_object().get(object)) return e;
        return read_details(object, f, arena);
      }
      return simdjson::SUCCESS;
    }
    case Key::report: {
      if (nested) return simdjson::SUCCESS;
      bool is_object = false;
      if (error_code e = string_or_json(value, arena, f.report_json, is_object)) return e;
      if (is_object) {
        od::object object;
        if (error_code e = value.get_object().get(object)) return e;
        return read_report(object, f, arena);
      }
      return simdjson::SUCCESS;
    }
    default:
      return simdjson::SUCCESS;
  }
  return scalar_text(value, arena, *slot);
}

error_code read_event_object(od::object object, EventFields& f, Arena& arena, bool nested) {
  for (auto field_result : object) {
    od::field field;
    if (error_code e = std::move(field_result).get(field)) return e;
    std::string_view key;
    if (error_code e = key_of(field, key)) return e;
    if (error_code e = read_event_field(key_kind(key), field.value(), f, arena, nested)) return e;
  }
  return simdjson::SUCCESS;
}

bool is_json_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The elements of a byte array from `i` on, byte by byte: every input the fast path below does not
// take ends here, so this loop alone decides what is accepted and with which error. `i` is just
// past the '[' (`first`) or just past a ',', with `count` elements decoded into `bytes` already.
error_code decode_byte_array_carefully(std::string_view raw, std::size_t i, bool first, char* bytes,
                                       std::size_t count, std::string_view& out) {
  const std::size_t n = raw.size();
  while (i < n && is_json_blank(raw[i])) ++i;
  if (first && i < n && raw[i] == ']') {
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

// The fast path reads an array 64 bytes at a time, starting at an element. A byte's lane looks
// back at up to 4 bytes before it, so a window needs 4 readable bytes before its start.
constexpr std::size_t kWindow = 64;
constexpr std::size_t kLookBehind = 4;

// A window's bytes by kind, and for every lane the element that a separator there would end.
struct WindowScan {
  std::uint64_t digits = 0;  // bit k: window[k] is '0'..'9'
  std::uint64_t commas = 0;
  std::uint64_t bad = 0;  // bit k: the digits before k are none, more than 3, lead with 0 or exceed 255
  alignas(16) unsigned char values[kWindow];  // lane k: the 1 to 3 digits before k as a number
};

// The lanes that count are separators at or before the window's first byte that is neither a
// digit nor a comma, so every byte a lane looks back at is a digit or a comma, or window[-1]:
// the ',' before the first element, or a zero where decode_byte_array() staged the window (never
// '[', which the SSE2 lanes would take for a digit). A lane's digits stop at the first non-digit
// behind it, which window[-1] always is, so bytes further back never count.
#if defined(__x86_64__)
// Lanes of bytes: x86-64 guarantees SSE2 only, which has no byte multiply and only signed byte
// compares; every quantity compared stays within 0..99.
void scan_window(const char* window, WindowScan& scan) {
  const __m128i zero_digit = _mm_set1_epi8('0');
  // '0'..'9' shifted to -128..-119, every other byte above.
  const __m128i digit_shift = _mm_set1_epi8(static_cast<char>(0x80 - '0'));
  const __m128i below_ten = _mm_set1_epi8(static_cast<char>(-128 + 10));
  const __m128i comma = _mm_set1_epi8(',');
  const __m128i minus_one = _mm_set1_epi8(-1);
  const __m128i zero = _mm_setzero_si128();
  const __m128i five = _mm_set1_epi8(5);
  const __m128i twenty_five = _mm_set1_epi8(25);
  auto load = [&](std::size_t h, std::size_t back) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(window + h - back));
  };
  auto times_ten = [](__m128i d) {
    const __m128i twice = _mm_add_epi8(d, d);
    const __m128i four_times = _mm_add_epi8(twice, twice);
    return _mm_add_epi8(_mm_add_epi8(four_times, four_times), twice);
  };
  auto bits = [](__m128i mask, std::size_t h) {
    return static_cast<std::uint64_t>(static_cast<unsigned>(_mm_movemask_epi8(mask))) << h;
  };
  for (std::size_t h = 0; h < kWindow; h += 16) {
    const __m128i here = load(h, 0);
    scan.digits |= bits(_mm_cmplt_epi8(_mm_add_epi8(here, digit_shift), below_ten), h);
    scan.commas |= bits(_mm_cmpeq_epi8(here, comma), h);
    // Behind a lane, a byte from '0' up is a digit (see above).
    const __m128i ones = _mm_sub_epi8(load(h, 1), zero_digit);
    const __m128i tens = _mm_sub_epi8(load(h, 2), zero_digit);
    const __m128i hundreds = _mm_sub_epi8(load(h, 3), zero_digit);
    const __m128i has_tens = _mm_and_si128(_mm_cmpgt_epi8(ones, minus_one), _mm_cmpgt_epi8(tens, minus_one));
    const __m128i hundreds_digit = _mm_cmpgt_epi8(hundreds, minus_one);
    const __m128i has_hundreds = _mm_and_si128(has_tens, hundreds_digit);
    // The element without its last digit: at most 99, so the value overflows exactly when
    // this exceeds 25, or is 25 and the last digit exceeds 5.
    const __m128i leading =
        _mm_add_epi8(_mm_and_si128(has_hundreds, times_ten(hundreds)), _mm_and_si128(has_tens, tens));
    _mm_store_si128(reinterpret_cast<__m128i*>(scan.values + h), _mm_add_epi8(times_ten(leading), ones));
    const __m128i over_255 = _mm_or_si128(_mm_cmpgt_epi8(leading, twenty_five),
                                          _mm_and_si128(_mm_cmpeq_epi8(leading, twenty_five), _mm_cmpgt_epi8(ones, five)));
    const __m128i leading_zero =
        _mm_or_si128(_mm_and_si128(_mm_andnot_si128(hundreds_digit, has_tens), _mm_cmpeq_epi8(tens, zero)),
                     _mm_and_si128(has_hundreds, _mm_cmpeq_epi8(hundreds, zero)));
    scan.bad |= bits(_mm_or_si128(over_255, leading_zero), h);
  }
  // No digit before a lane, or more than 3.
  const std::uint64_t has_ones = scan.digits << 1;
  scan.bad |= ~has_ones | (has_ones & scan.digits << 2 & scan.digits << 3 & scan.digits << 4);
}
#else
void scan_window(const char* window, WindowScan& scan) {
  for (std::size_t k = 0; k < kWindow; ++k) {
    auto digit_at = [&](std::ptrdiff_t back) {
      const char c = window[static_cast<std::ptrdiff_t>(k) - back];
      return c >= '0' && c <= '9' ? c - '0' : -1;
    };
    const int ones = digit_at(1), tens = digit_at(2), hundreds = digit_at(3), thousands = digit_at(4);
    bool bad = true;
    int value = 0;
    if (ones < 0) {
    } else if (tens < 0) {
      value = ones, bad = false;
    } else if (hundreds < 0) {
      value = tens * 10 + ones, bad = tens == 0;
    } else if (thousands < 0) {
      value = hundreds * 100 + tens * 10 + ones, bad = hundreds == 0 || value > 255;
    }
    scan.digits |= static_cast<std::uint64_t>(window[k] >= '0' && window[k] <= '9') << k;
    scan.commas |= static_cast<std::uint64_t>(window[k] == ',') << k;
    scan.bad |= static_cast<std::uint64_t>(bad) << k;
    scan.values[k] = static_cast<unsigned char>(value);
  }
}
#endif

// What the fast path made of one window.
struct WindowResult {
  std::size_t consumed;  // bytes of whole elements with their commas (or through the ']')
  bool closed;           // the ']' was read
};

// The elements of `window` up to the first that the window does not hold whole (its separator
// lies past the window) or that the careful loop must judge. window[-1] is the ',' before the
// first element, or a zero.
inline WindowResult decode_window(const char* window, char* bytes, std::size_t& count) {
  WindowScan scan;
  scan_window(window, scan);
  const std::uint64_t others = ~(scan.digits | scan.commas);
  const auto limit = static_cast<std::size_t>(std::countr_zero(others));  // kWindow when there is none
  const std::uint64_t before_limit = limit == kWindow ? ~std::uint64_t{0} : (std::uint64_t{1} << limit) - 1;
  const bool closing = limit < kWindow && window[limit] == ']';
  std::uint64_t separators = (scan.commas & before_limit) | (closing ? std::uint64_t{1} << limit : 0);
  const std::uint64_t bad_separators = separators & scan.bad;
  // Separators from the first bad one on are left to the careful loop.
  if (bad_separators) separators &= (bad_separators & -bad_separators) - 1;
  if (!separators) return {0, false};
  std::size_t decoded = count;
  for (std::uint64_t rest = separators; rest; rest &= rest - 1) {
    bytes[decoded++] = static_cast<char>(scan.values[std::countr_zero(rest)]);
  }
  count = decoded;
  const auto last = static_cast<std::size_t>(63 - std::countl_zero(separators));
  return {last + 1, closing && last == limit};
}

// The bytes of `[104,105]` as written (raw_json: the array and the blanks after it). Exactly the
// arrays simdjson's get_uint64() reads element by element: unsigned integers without a leading
// zero, fraction or exponent, each at most 255; anything else is an error, as there.
// journalctl writes no blanks, so the common array goes through decode_window(), which hands the
// rest (blanks, errors, whatever it cannot see whole) to the careful loop where it stops.
error_code decode_byte_array(std::string_view raw, Arena& arena, std::string_view& out) {
  const std::size_t n = raw.size();
  if (n == 0 || raw[0] != '[') return simdjson::INCORRECT_TYPE;
  char* bytes = arena.reserve(n / 2 + 1);  // each element takes a digit and a separator
  std::size_t count = 0;
  std::size_t i = 1;
  for (;;) {
    WindowResult result;
    if (i >= kLookBehind && i + kWindow <= n) {
      result = decode_window(raw.data() + i, bytes, count);
    } else {
      // Copied where the window would read outside `raw`: the zeros around stop the fast path
      // and read as the non-digit before the first element.
      char staged[kLookBehind + kWindow] = {};
      std::memcpy(staged + kLookBehind, raw.data() + i, std::min(n - i, kWindow));
      result = decode_window(staged + kLookBehind, bytes, count);
    }
    i += result.consumed;
    if (result.closed) {
      while (i < n && is_json_blank(raw[i])) ++i;
      if (i != n) return simdjson::TAPE_ERROR;
      out = std::string_view(bytes, count);
      return simdjson::SUCCESS;
    }
    if (result.consumed == 0) break;
  }
  return decode_byte_array_carefully(raw, i, count == 0, bytes, count, out);
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
// A MESSAGE byte array decoded before simdjson saw the line, and blanked in its copy (see
// JsonReader::Impl::predecode_message): where its '[' sits in that copy, and its bytes.
struct PredecodedMessage {
  const char* at = nullptr;
  std::string_view bytes;
};

error_code read_message(od::value value, JsonLine& out, Arena& arena, const PredecodedMessage& predecoded) {
  od::json_type type;
  if (error_code e = value.type().get(type)) return e;
  if (predecoded.at != nullptr && type == od::json_type::array) {
    const char* at = nullptr;
    if (value.current_location().get(at) == simdjson::SUCCESS && at == predecoded.at) {
      od::array blanked;  // `[   ]` now: consumed in one step
      std::string_view ignored;
      if (error_code e = value.get_array().get(blanked)) return e;
      if (error_code e = blanked.raw_json().get(ignored)) return e;
      out.messages.push_back(predecoded.bytes);
      return simdjson::SUCCESS;
    }
  }
  if (type == od::json_type::string) {
    std::string_view s;
    bool in_document = false;
    if (error_code e = string_of(value, s, in_document)) return e;
    out.messages.push_back(kept(s, in_document, arena));
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
      bool in_document = false;
      if (error_code e = string_of(element, s, in_document)) return e;
      out.messages.push_back(kept(s, in_document, arena));
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

}  // namespace

struct JsonReader::Impl {
  od::parser parser;
  od::parser nested_parser;  // JSON held in a string field, read while `parser` is mid-document

  // simdjson reads a copy of the JSON with its padding, made in the arena: a string without
  // escapes is then kept as a view of the document, valid as long as the arena's other views,
  // instead of being copied out of simdjson's string buffer. The copy's size: `bytes` and padding.
  static char* pad(Arena& arena, std::string_view bytes) {
    char* buffer = arena.reserve(bytes.size() + simdjson::SIMDJSON_PADDING);
    std::memcpy(buffer, bytes.data(), bytes.size());
    std::memset(buffer + bytes.size(), ' ', simdjson::SIMDJSON_PADDING);
    return buffer;
  }

  // journald's MESSAGE byte array (`"MESSAGE":[27,91,...]`, a coloured line: thousands of
  // elements) decoded from the line's text and blanked in `padded` (the line's copy), so that
  // simdjson indexes and walks an empty array instead of a structural per element. Only an array
  // that decode_byte_array() reads whole: exactly the arrays simdjson's own path reads into the
  // same bytes, so blanking one changes neither the bytes nor any error. Any other line:
  // untouched. tracing's JSON formatter writes `timestamp` first: a line that starts so is not
  // even searched.
  PredecodedMessage predecode_message(std::string_view line, char* padded, Arena& arena) {
    constexpr std::string_view kTracing = "{\"timestamp\":";
    if (line.starts_with(kTracing)) return {};
    constexpr std::string_view kKey = "\"MESSAGE\":[";
    const std::size_t key = find_bytes(line, kKey);
    if (key == std::string_view::npos) return {};
    const std::size_t open = key + kKey.size() - 1;
    const void* close = std::memchr(line.data() + open, ']', line.size() - open);
    if (close == nullptr) return {};
    const auto close_at = static_cast<std::size_t>(static_cast<const char*>(close) - line.data());
    if (close_at - open < 64) return {};  // a short array costs simdjson little
    PredecodedMessage predecoded;
    if (decode_byte_array(line.substr(open, close_at - open + 1), arena, predecoded.bytes) != simdjson::SUCCESS) {
      return {};
    }
    std::memset(padded + open + 1, ' ', close_at - open - 1);
    predecoded.at = padded + open;
    return predecoded;
  }

  ShapeStatus read(std::string_view line, JsonLine& out, Arena& arena) {
    out.clear();
    char* padded = pad(arena, line);
    const PredecodedMessage predecoded = predecode_message(line, padded, arena);
    od::document doc;
    if (error_code e = parser.iterate(padded, line.size(), line.size() + simdjson::SIMDJSON_PADDING).get(doc)) {
      return status_of(e);
    }
    od::object object;
    if (error_code e = doc.get_object().get(object)) return status_of(e);

    EventFields nested;  // from `fields`, the default tracing JSON
    bool has_fields_object = false;
    for (auto field_result : object) {
      od::field field;
      if (error_code e = std::move(field_result).get(field)) return status_of(e);
      std::string_view key;
      if (error_code e = key_of(field, key)) return status_of(e);
      od::value value = field.value();
      error_code e = simdjson::SUCCESS;
      const Key kind = key_kind(key);
      if (kind == Key::fields) {
        od::json_type type;
        if ((e = value.type().get(type)) == simdjson::SUCCESS && type == od::json_type::object) {
          od::object fields_object;
          if ((e = value.get_object().get(fields_object)) == simdjson::SUCCESS) {
            has_fields_object = true;
            e = read_event_object(fields_object, nested, arena, false);
          }
        }
      } else if (kind == Key::journald_message) {
        out.journald = true;
        e = read_message(value, out, arena, predecoded);
      } else if (kind == Key::journald_cursor) {
        out.journald = true;
        std::optional<std::string_view> cursor;
        e = scalar_text(value, arena, cursor);
        if (cursor && out.cursor.empty()) out.cursor = *cursor;
      } else {
        e = read_event_field(kind, value, out.fields, arena, false);  // flattened events
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
  void read_nested(std::string_view text, Arena& arena, ReadObject&& read_object) {
    const char* padded = pad(arena, text);
    od::document doc;
    if (nested_parser.iterate(padded, text.size(), text.size() + simdjson::SIMDJSON_PADDING).get(doc)) return;
    od::object object;
    if (doc.get_object().get(object)) return;
    (void)read_object(object);
  }
};

int decode_journald_byte_array(std::string_view raw, Arena& arena, std::string_view& out) {
  return decode_byte_array(raw, arena, out);
}

JsonReader::JsonReader() : impl_(std::make_unique<Impl>()) {}
JsonReader::~JsonReader() = default;
JsonReader::JsonReader(JsonReader&&) noexcept = default;
JsonReader& JsonReader::operator=(JsonReader&&) noexcept = default;

ShapeStatus JsonReader::read(std::string_view line, JsonLine& out, Arena& arena) {
  return impl_->read(line, out, arena);
}

void JsonReader::resolve_nested_json(EventFields& fields, Arena& arena) { impl_->resolve_nested_json(fields, arena); }

}  // namespace nle::parsers
