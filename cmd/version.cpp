// --version, laid out as prometheus/common's version.Print so that operators (and scripts) read
// it as they read every other exporter's.

#include <string>

#include "cmd/commands.h"
#include "nle_version.h"

namespace nle {

std::string version_text() {
  std::string text = "nixfleet-log-exporter, version " NLE_VERSION " (branch: " NLE_GIT_BRANCH
                     ", revision: " NLE_GIT_COMMIT ")\n";
  text += "  build user:       " NLE_BUILD_USER "\n";
  text += "  build date:       " NLE_BUILD_DATE "\n";
  text += "  compiler:         " NLE_COMPILER "\n";
  text += "  platform:         " NLE_PLATFORM;
  return text;
}

}  // namespace nle
