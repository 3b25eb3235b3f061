#include "cmd/ingest.h"

namespace nle {

void LineIngester::line(std::string_view line, std::uint64_t order) {
  ++pending_lines_;
  record(parser_.parse(line), order);
}

void LineIngester::end_of_input(std::uint64_t order) { record(parser_.finish(), order); }

void LineIngester::record(const ParseResult& result, std::uint64_t order) {
  for (const Event& event : result.events) registry_->record(event);
  if (result.build_info) registry_->record_build_info(*result.build_info, order);
  if (result.skipped) registry_->add_skipped(*result.skipped);
  if (!result.journal_cursor.empty()) last_cursor_.assign(result.journal_cursor);
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
