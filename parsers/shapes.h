// Internal to parsers/: the pieces every line shape shares. A shape reader (JSON, journald, text)
// fills EventFields from one line; classify() alone decides what those fields count as, so the
// rules of LOG-FORMAT.md section 3 live in one place whatever the shape.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parsers/event.h"

namespace nle::parsers {

// Stable scratch space for decoded strings: views it hands out stay valid until reset(), however
// much more is put after them. Blocks are kept across resets, so a warm arena never allocates.
class Arena {
 public:
  std::string_view put(std::string_view bytes);
  // Space for `size` bytes that the caller fills; stays valid until reset().
  char* reserve(std::size_t size);
  void reset() { block_ = 0, used_ = 0; }

 private:
  std::vector<std::unique_ptr<char[]>> blocks_;
  std::vector<std::size_t> sizes_;
  std::size_t block_ = 0;  // the block being filled
  std::size_t used_ = 0;   // bytes used in it
};

// The fields of one CP event that matter to us, as found on the line. Unset = not on the line.
struct EventFields {
  std::optional<std::string_view> message;
  std::optional<std::string_view> event;
  std::optional<std::string_view> hostname;
  std::optional<std::string_view> control_id;
  std::optional<std::string_view> gate;
  std::optional<std::string_view> version;
  std::optional<std::string_view> git_commit;
  std::optional<std::string_view> event_id;  // exemplars only: never decides what counts
  std::optional<std::string_view> host;      // a GateBlock line's host when it has no `hostname`
  // The agent's wire shape: `"details":{"control_id":...}`, and a whole report logged as one
  // field (`report={"event":...,"details":{...}}`). Used only where the flat fields are missing.
  std::optional<std::string_view> details_control_id;
  std::optional<std::string_view> details_hostname;
  std::optional<std::string_view> report_event;
  std::optional<std::string_view> report_hostname;
  std::optional<std::string_view> report_control_id;
  std::optional<std::string_view> report_event_id;
  // JSON text still to be read into the slots above (a text line's `details={...}`, or a JSON
  // string holding JSON); resolve_nested_json() fills them.
  std::optional<std::string_view> details_json;
  std::optional<std::string_view> report_json;
};

inline constexpr std::string_view kReportReceived = "report received";
inline constexpr std::string_view kGateHeld = "dispatch: held by fleet-level gate";

// What a shape reader made of a line.
enum class ShapeStatus : unsigned char {
  fields,        // EventFields filled; classify() decides
  not_this,      // the line is not of this shape
  invalid_json,  // JSON that does not parse
  invalid_utf8,  // JSON that is not UTF-8
};

// Where a shape reader puts what it finds.
struct LineOutput {
  std::vector<Event> events;
  std::optional<BuildInfoFields> build_info;
  std::optional<SkipReason> skipped;
  std::string_view journal_cursor;
};

// Applies LOG-FORMAT.md sections 3 and 4 to the fields of one CP line.
void classify(const EventFields& fields, LineOutput& out);

// What a line is read from: leading NULs (a crash can leave a run of them before the next good
// line), json-seq's record separator and blanks removed.
std::string_view trim_front(std::string_view line);

// The first `needle` in `haystack` at or after `from`, or npos. For the short fixed needles of
// the parsers: 16 positions at a time, testing the needle's first and last bytes together (a
// pair rarer in log text than either byte), then memcmp. Neither memmem (which prepares a two-way
// search on every call) nor string_view::find (memchr on the first byte, common in log lines).
std::size_t find_bytes(std::string_view haystack, std::string_view needle, std::size_t from = 0);
inline bool contains_bytes(std::string_view haystack, std::string_view needle) {
  return find_bytes(haystack, needle) != std::string_view::npos;
}

// Removes ANSI SGR/CSI escape sequences (ESC '[' params final-byte); other bytes are kept.
std::string_view strip_ansi(std::string_view line, Arena& arena);
// The same by a walk from escape to escape, without the AVX2 rounds strip_ansi() takes where it
// can: for the differential tests.
std::string_view strip_ansi_by_walk(std::string_view line, Arena& arena);

// Tracing fmt text: `[TIMESTAMP] LEVEL [spans: ][target: ]message key=value ...`, optionally
// behind a syslog prefix (`journalctl -o short`). Views point into `line` or `arena`.
// `body`: text_record_body(line) when the caller has it already, else npos.
ShapeStatus read_text_line(std::string_view line, EventFields& fields, Arena& arena,
                           std::size_t body = std::string_view::npos);
// The same without its fast path for plain lines (no '"', '{', NUL or ESC; up to 4 KiB), which
// finds all fields in one pass: the walk from each value to the next field that reads every line.
// For the differential tests of the fast path.
ShapeStatus read_text_line_by_walk(std::string_view line, EventFields& fields, Arena& arena);
// read_text_line() when its fast path reads `line` (a plain record line, on a CPU with AVX2),
// else nullopt: so that the differential test knows which lines it compared on that path.
std::optional<ShapeStatus> read_text_line_if_plain(std::string_view line, EventFields& fields, Arena& arena);
// A plain text record line read in one pass over its bytes (on a CPU with AVX2): a line of at
// most 4 KiB with no NUL, ESC, '"' or '{', not starting with a blank, that starts a record
// (text_record_body() finds its level) and has at most 64 fields. Fills `fields` exactly as
// read_text_line() would and returns true; false, with `fields` untouched, for any other line.
bool read_plain_text_record(std::string_view line, EventFields& fields);

// Does this text line start a record (a level token where tracing puts it), rather than
// continue the previous record's multi-line value? `line` has no ANSI escapes.
bool is_text_record_start(std::string_view line);
// Where a text record's spans, target, message and fields begin: just past its level token, or
// npos when `line` starts no record. `line` has no ANSI escapes.
std::size_t text_record_body(std::string_view line);

// Does `line` start a text record once trimmed and stripped of its colours, as the text reader
// finds it (a level token where tracing puts it)? False for a line that reads as JSON either way.
// Stripped text goes to `arena`.
bool text_starts_record(std::string_view line, Arena& arena);
// The same for a line with no ESC, saying more: `text` is what the text reader reads of it
// (trimmed), and the result is text_record_body(text), or npos when the line starts no record
// (also when `text` is empty or reads as JSON).
std::size_t plain_text_record_body(std::string_view line, std::string_view& text);

// Decodes a value printed by Rust's Debug for str: `"..."` with \" \\ \n \r \t \0 \' \u{...}.
// `quoted` starts at the opening quote; returns the decoded value and sets `consumed` to the
// length through the closing quote, or nullopt when the quote never closes.
std::optional<std::string_view> decode_rust_debug_string(std::string_view quoted, std::size_t& consumed,
                                                         Arena& arena);

// journald's byte-array MESSAGE, `[104,105]` and the blanks after it, decoded into `arena`: 0, or
// the simdjson::error_code (an int here, so this header needs no simdjson) that reading it element
// by element with simdjson gives. For the differential test of its fast path.
int decode_journald_byte_array(std::string_view raw, Arena& arena, std::string_view& out);

// What a JSON line held: a tracing event (nested `fields` or flattened), or a journald record
// whose MESSAGE values (decoded from byte arrays where need be) are CP lines in their own right.
struct JsonLine {
  bool journald = false;
  EventFields fields;                      // tracing events
  std::vector<std::string_view> messages;  // journald records
  std::string_view cursor;                 // journald `__CURSOR`
  bool message_elided = false;             // journald `"MESSAGE":null`
  void clear() {
    journald = false;
    message_elided = false;
    fields = {};
    messages.clear();
    cursor = {};
  }
};

// JSON needs simdjson's parser state; one JsonReader per LineParser. Not thread-safe.
class JsonReader {
 public:
  JsonReader();
  ~JsonReader();
  JsonReader(JsonReader&&) noexcept;
  JsonReader& operator=(JsonReader&&) noexcept;

  // `line` is one JSON object. Decoded strings go to `arena`.
  ShapeStatus read(std::string_view line, JsonLine& out, Arena& arena);

  // Reads `details_json` / `report_json` of `fields` into the details_* / report_* slots.
  // Unreadable JSON there leaves the slots empty: it is one field of a good line, not the line.
  void resolve_nested_json(EventFields& fields, Arena& arena);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle::parsers
