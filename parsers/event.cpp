#include "parsers/event.h"

namespace nle {

std::string_view event_kind_name(EventKind kind) {
  switch (kind) {
    case EventKind::compliance_failure: return "compliance_failure";
    case EventKind::runtime_gate_error: return "runtime_gate_error";
    case EventKind::gate_block: return "gate_block";
  }
  return "unknown";
}

std::string_view skip_reason_name(SkipReason reason) {
  switch (reason) {
    case SkipReason::invalid_json: return "invalid_json";
    case SkipReason::invalid_utf8: return "invalid_utf8";
    case SkipReason::nul_byte: return "nul_byte";
    case SkipReason::oversize: return "oversize";
    case SkipReason::unrecognised: return "unrecognised";
    case SkipReason::message_elided: return "message_elided";
  }
  return "unknown";
}

}  // namespace nle
