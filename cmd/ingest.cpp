#include "cmd/ingest.h"

#include <cstring>

#include "nle_version.h"

#include "parsers/candidate_scan.h"

namespace nle {

RegistryOptions registry_options(const IngestConfig& config) {
  RegistryOptions options;
  options.max_series_per_family = config.max_series;
  options.max_label_bytes = config.max_label_bytes;
  options.cp_version = config.cp_version;
  options.cp_git_commit = config.cp_git_commit;
  options.exporter_version = NLE_VERSION;
  options.exporter_revision = NLE_GIT_COMMIT;
  options.exporter_branch = NLE_GIT_BRANCH;
  options.exporter_compiler = NLE_COMPILER;
  options.exporter_platform = NLE_PLATFORM;
  return options;
}

void LineIngester::line(std::string_view line, std::uint64_t order, std::optional<LogTimeMicros> logged_at) {
  ++pending_lines_;
  if (!reference_ && !parser_.holds_record()) {
    // The block path's stages for one line: a line with no needle cannot matter (the parser
    // would return nothing for it), nor can one the screen turns away.
    if (!line_holds_needle(line)) return;
    if (screening_ && screen_.screen(line) != ScreenVerdict::parse) return;
  }
  record(parser_.parse(line, logged_at), order);
}

void LineIngester::lines(std::string_view block, std::uint64_t order_base, std::uint64_t offset,
                         std::size_t max_line_bytes) {
  const auto chomped = [&](std::size_t begin, std::size_t end) {  // block[end] is the "\n"
    std::string_view text = block.substr(begin, end - begin);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    return text;
  };
  // The line after the one ending at `end`, if the block holds it whole and the parser would see it.
  const auto next_line = [&](std::size_t end, std::string_view& next) {
    if (end + 1 >= block.size()) return false;
    const void* nl = std::memchr(block.data() + end + 1, '\n', block.size() - end - 1);
    if (nl == nullptr) return false;
    next = chomped(end + 1, static_cast<std::size_t>(static_cast<const char*>(nl) - block.data()));
    return next.size() <= max_line_bytes;
  };
  // Where the `next` of the last screened line begins in this block (npos: none).
  std::size_t screened_next_begin = std::string_view::npos;
  // `relevant`: a candidate whose needle made it relevant (Candidate::relevant, or
  // relevant_if_json_object in a line that is one).
  const auto deliver = [&](std::size_t begin, std::size_t end, bool candidate, bool screen, bool relevant) {
    const std::string_view text = chomped(begin, end);
    if (text.size() > max_line_bytes) return oversize_line(text.size());
    const std::uint64_t order = order_base + offset + end + 1;
    if (!candidate) return line(text, order);
    ++pending_lines_;
    std::string_view next;
    const bool has_next = next_line(end, next);
    // The scan read the line with its "\r", if any; the parser reads it without. The needle tests
    // take a "\r" as the line's end, so the mark would hold, but such a line is left to
    // may_be_relevant() rather than to that argument.
    const bool known_relevant = relevant && text.size() == end - begin;
    // A text record it starts is complete when the next line starts one too: read now, that next
    // line goes back to the scan instead of the parser.
    int alone = -1;  // not asked yet
    std::optional<bool> screened_alone;  // what the screen learnt of it, if it screened the line
    const auto is_alone = [&] {
      if (alone < 0) alone = has_next && (screened_alone ? *screened_alone : parser_.starts_text_record(next)) ? 1 : 0;
      return alone == 1;
    };
    if (screen) {
      const bool line_was_next = begin == screened_next_begin;
      screened_next_begin = has_next ? end + 1 : std::string_view::npos;
      if (screen_.screen(text, has_next ? &next : nullptr, line_was_next) != ScreenVerdict::parse) {
        ++screened_out_;  // the parser would make nothing of it, and holds no record it could end
        return;
      }
      if (has_next) screened_alone = screen_.next_starts_text_record();
    }
    // A plain text record (not coloured, no quotes or braces) is read in one pass over its bytes.
    if (known_relevant && !text.empty() && text.front() != '{' && text.front() != '\x1b' && is_alone()) {
      if (const ParseResult* result = parser_.parse_plain_text_record(text)) return record(*result, order);
    }
    record(known_relevant ? parser_.parse_relevant(text, is_alone())
           : is_alone()   ? parser_.parse_before_text_record(text)
                          : parser_.parse(text),
           order);
  };
  const auto read_block = [&] {
    std::size_t pos = 0;
    while (pos < block.size()) {
      if (parser_.holds_record()) {
        // Each line after a held record must reach the parser, relevant or not.
        const void* nl = std::memchr(block.data() + pos, '\n', block.size() - pos);
        const std::size_t end = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - block.data()) : block.size();
        deliver(pos, end, false, false, false);
        pos = end + 1;
        continue;
      }
      const Candidate c = find_candidate(block, pos, max_line_bytes);
      pending_lines_ += c.lines_before;
      if (!c.found) break;
      ++candidates_;
      // A tracing JSON line spelling a counting value is nearly always a counting report (a text
      // line's report is found by its message first, and the text screen is cheap on the others).
      const bool skip_screen = c.counting_value && block[c.line_begin] == '{';
      const bool relevant =
          c.relevant ||
          (c.relevant_if_json_object && may_hold_byte_array(block.substr(c.line_begin, c.line_end - c.line_begin)));
      deliver(c.line_begin, c.line_end, true, screening_ && !skip_screen, relevant);
      pos = c.line_end + 1;
    }
  };
  in_lines_ = true;
  try {
    read_block();
  } catch (...) {
    in_lines_ = false;
    record_batched();
    throw;
  }
  in_lines_ = false;
  record_batched();
}

void LineIngester::end_of_input(std::uint64_t order) { record(parser_.finish(), order); }

bool LineIngester::batch(const Event& event) {
  const std::size_t bytes = event.control_id.size() + event.host.size() + event.gate.size() + event.event_id.size();
  if (bytes > kBatchedValueBytes) return false;
  if (batched_ == kBatchEvents) record_batched();
  Event& into = batch_[batched_];
  char* at = batch_values_[batched_].data();
  ++batched_;
  into = event;
  for (std::string_view* value : {&into.control_id, &into.host, &into.gate, &into.event_id}) {
    if (!value->empty()) std::memcpy(at, value->data(), value->size());
    *value = std::string_view(at, value->size());
    at += value->size();
  }
  registry_->prefetch(into);
  return true;
}

void LineIngester::record_batched() {
  if (batched_ == 0) return;
  const std::size_t n = batched_;
  batched_ = 0;  // first: should counting throw, lines()'s handler must not count these again
  registry_->record(std::span<const Event>(batch_.data(), n));
}

void LineIngester::record(const ParseResult& result, std::uint64_t order) {
  records_ += result.events.size() + (result.build_info ? 1 : 0);
  for (const Event& event : result.events) {
    if (!in_lines_ || !batch(event)) {
      record_batched();  // counted in input order: the latest event names its series' exemplar
      registry_->record(event);
    }
  }
  if (result.build_info) registry_->record_build_info(*result.build_info, order);
  if (result.skipped) registry_->add_skipped(*result.skipped);
}

void LineIngester::oversize_line(std::uint64_t) {
  ++pending_lines_;
  registry_->add_skipped(SkipReason::oversize);
}

void LineIngester::flush() {
  if (pending_lines_ == 0 && pending_bytes_ == 0) return;
  registry_->add_lines_read(pending_lines_, pending_bytes_);
  pending_lines_ = 0;
  pending_bytes_ = 0;
}

}  // namespace nle
