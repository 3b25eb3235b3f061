// The web configuration file of --web.config.file, in Prometheus exporter-toolkit's format
// (docs/web-configuration.md): TLS, HTTP response headers, basic-auth users, rate limit.
// Parsing is pure and strict (unknown keys, duplicate keys and bad values are errors that name
// the key); it knows nothing of sockets, OpenSSL or HTTP. Thread-safe: no shared state.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nle {

// client_auth_type, as Go's crypto/tls names them.
enum class ClientAuth {
  no_client_cert,                  // NoClientCert (and "")
  request_client_cert,             // RequestClientCert: asked for, any or none accepted
  require_any_client_cert,         // RequireAnyClientCert: one needed, not verified
  verify_client_cert_if_given,     // VerifyClientCertIfGiven
  require_and_verify_client_cert,  // RequireAndVerifyClientCert
};

// TLS protocol versions by their wire numbers (TLS 1.0 = 0x0301 ... TLS 1.3 = 0x0304), which
// are also OpenSSL's TLS1_VERSION ... TLS1_3_VERSION.
inline constexpr int kTls10 = 0x0301;
inline constexpr int kTls11 = 0x0302;
inline constexpr int kTls12 = 0x0303;
inline constexpr int kTls13 = 0x0304;

struct TlsServerConfig {
  // Whether any of cert, key, their files, a client CA or client_auth_type is set (the
  // toolkit's IsEnabled): then the server speaks TLS only.
  bool enabled = false;
  std::string cert_file;  // resolved against the config file's directory
  std::string key_file;
  std::string cert;       // inline PEM, when cert_file is not given
  std::string key;
  std::string client_ca_file;
  std::string client_ca;  // inline PEM
  ClientAuth client_auth = ClientAuth::no_client_cert;
  // Empty: any client certificate that passed client_auth_type. Else the client certificate's
  // DNS, email, IP or URI SANs must contain one of these.
  std::vector<std::string> client_allowed_sans;
  int min_version = kTls12;
  int max_version = kTls13;
  // OpenSSL names of the TLS 1.0-1.2 suites asked for, in order; empty: OpenSSL's defaults.
  // TLS 1.3 suite names are accepted and, as in Go, not configurable.
  std::vector<std::string> cipher_suites;
  std::vector<std::string> curves;  // OpenSSL group names in preference order; empty: defaults
  bool prefer_server_cipher_suites = true;
};

struct RateLimit {
  std::chrono::nanoseconds interval{0};  // one request allowed per interval; 0: no limit
  int burst = 0;                         // requests allowed at once (a bucket of this size)
};

struct WebConfig {
  TlsServerConfig tls;
  // http_server_config.headers, sorted by name; only the five names the toolkit allows.
  std::vector<std::pair<std::string, std::string>> headers;
  bool http2 = true;  // accepted for compatibility; this server speaks HTTP/1.1 only
  std::map<std::string, std::string> users;  // basic_auth_users: user -> bcrypt hash
  RateLimit rate_limit;
};

// The config, or an error naming the key and line, e.g.
// `line 3: tls_server_config.client_auth_type: unknown value "Maybe"`.
struct WebConfigResult {
  std::optional<WebConfig> config;
  std::string error;
};

// Parses a web config document. Relative cert_file, key_file and client_ca_file resolve against
// `base_dir`. An empty document is a valid config that changes nothing.
WebConfigResult parse_web_config(std::string_view yaml, std::string_view base_dir);
// Reads and parses the file at `path` (its directory is the base directory); a read error names
// the path.
WebConfigResult load_web_config(const std::string& path);

// Go's crypto/tls name of a TLS 1.0-1.2 cipher suite -> OpenSSL's name; nullopt if unknown.
std::optional<std::string> openssl_cipher_name(std::string_view go_name);
// Go's time.ParseDuration: "1s", "1.5h", "2m30s", "300ms", "0"; nullopt if invalid or negative.
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text);
// Whether `hash` is a bcrypt hash with a $2a$, $2b$ or $2y$ prefix and a cost of 4 to 31.
bool is_bcrypt_hash(std::string_view hash);

}  // namespace nle
