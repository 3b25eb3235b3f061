// The OpenSSL server context of a web config's tls_server_config: certificate and key (files or
// inline PEM), client certificate policy, client_allowed_sans, protocol versions, cipher suites
// and curves. Like exporter-toolkit, the config file and the certificates are read again for
// every handshake (TlsContextSource), so rotated certificates apply to the next connection
// without a restart. Knows nothing of HTTP.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/web_config.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace nle {

// One immutable server context; connections keep the one they were accepted with alive.
struct TlsContext {
  TlsContext() = default;
  ~TlsContext();  // frees ctx
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx = nullptr;
  ClientAuth client_auth = ClientAuth::no_client_cert;
  std::vector<std::string> allowed_sans;  // checked in the handshake; empty: not checked
};

struct TlsContextResult {
  std::shared_ptr<const TlsContext> context;
  std::string error;  // names the file or setting, e.g. "cannot read cert_file /x: No such file"
};

// Builds a context from a parsed config, reading the files it names.
TlsContextResult make_tls_context(const TlsServerConfig& config);

// The context for the next handshake: re-reads the web config file and the files it names, and
// returns the previous context when none of that changed (so sessions resume and no key is
// parsed again). Thread-safe.
class TlsContextSource {
 public:
  explicit TlsContextSource(std::string web_config_file);
  TlsContextResult current();

 private:
  std::string path_;
  std::mutex mutex_;
  std::string last_inputs_;  // guarded by mutex_: what `last_` was built from
  std::shared_ptr<const TlsContext> last_;
};

}  // namespace nle
