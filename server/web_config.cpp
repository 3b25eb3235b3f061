// Strict parsing of the exporter-toolkit web config with yaml-cpp. yaml-cpp throws; every
// exception ends here as an error value. Like Go's yaml.UnmarshalStrict, a key the format does
// not define, or a key given twice, is an error; a null value leaves the default.
#include "server/web_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

namespace nle {
namespace {

struct ParseError {
  std::string message;
};

[[noreturn]] void fail(const YAML::Node& node, const std::string& key, const std::string& what) {
  std::string where;
  const YAML::Mark mark = node.Mark();
  if (mark.line >= 0) where = "line " + std::to_string(mark.line + 1) + ": ";
  throw ParseError{where + key + ": " + what};
}

std::string join_key(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

// The entries of a mapping, checked against the keys it may hold and for duplicates. A null
// node is an empty mapping.
std::vector<std::pair<std::string, YAML::Node>> entries(const YAML::Node& node, const std::string& path,
                                                        std::initializer_list<std::string_view> allowed) {
  std::vector<std::pair<std::string, YAML::Node>> out;
  if (!node || node.IsNull()) return out;
  if (!node.IsMap()) fail(node, path.empty() ? "document" : path, "must be a mapping");
  std::set<std::string> seen;
  for (const auto& item : node) {
    if (!item.first.IsScalar()) fail(item.first, path.empty() ? "document" : path, "keys must be strings");
    const std::string key = item.first.Scalar();
    const std::string full = join_key(path, key);
    if (allowed.size() > 0 && std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      fail(item.first, full, "unknown key");
    }
    if (!seen.insert(key).second) fail(item.first, full, "given twice");
    out.emplace_back(key, item.second);
  }
  return out;
}

bool is_null(const YAML::Node& node) { return !node || node.IsNull(); }

std::string scalar(const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) fail(node, key, "must be a string");
  return node.Scalar();
}

bool boolean(const YAML::Node& node, const std::string& key) {
  const std::string s = scalar(node, key);
  static constexpr std::array<std::string_view, 8> yes = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On"};
  static constexpr std::array<std::string_view, 8> no = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off"};
  if (std::find(yes.begin(), yes.end(), s) != yes.end()) return true;
  if (std::find(no.begin(), no.end(), s) != no.end()) return false;
  fail(node, key, "not a boolean: \"" + s + "\"");
}

std::vector<std::string> string_list(const YAML::Node& node, const std::string& key) {
  std::vector<std::string> out;
  if (is_null(node)) return out;
  if (!node.IsSequence()) fail(node, key, "must be a list");
  for (const auto& item : node) out.push_back(scalar(item, key));
  return out;
}

// config_util.JoinDir: a relative, non-empty path is taken from the config file's directory.
std::string join_dir(std::string_view dir, const std::string& path) {
  if (path.empty() || path.front() == '/' || dir.empty()) return path;
  std::string out(dir);
  if (out.back() != '/') out.push_back('/');
  return out + path;
}

int tls_version(const YAML::Node& node, const std::string& key) {
  const std::string s = scalar(node, key);
  if (s == "TLS10") return kTls10;
  if (s == "TLS11") return kTls11;
  if (s == "TLS12") return kTls12;
  if (s == "TLS13") return kTls13;
  fail(node, key, "unknown TLS version \"" + s + "\" (want TLS10, TLS11, TLS12 or TLS13)");
}

ClientAuth client_auth(const YAML::Node& node, const std::string& key) {
  const std::string s = scalar(node, key);
  if (s.empty() || s == "NoClientCert") return ClientAuth::no_client_cert;
  if (s == "RequestClientCert") return ClientAuth::request_client_cert;
  // "RequireClientCert" is the toolkit's older spelling, still accepted there.
  if (s == "RequireAnyClientCert" || s == "RequireClientCert") return ClientAuth::require_any_client_cert;
  if (s == "VerifyClientCertIfGiven") return ClientAuth::verify_client_cert_if_given;
  if (s == "RequireAndVerifyClientCert") return ClientAuth::require_and_verify_client_cert;
  fail(node, key, "unknown value \"" + s + "\"");
}

// The TLS 1.3 suites Go lists in tls.CipherSuites(); Go does not let them be configured.
constexpr std::array<std::string_view, 3> kTls13Suites = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                                          "TLS_CHACHA20_POLY1305_SHA256"};

std::string openssl_curve(const YAML::Node& node, const std::string& key) {
  const std::string s = scalar(node, key);
  if (s == "CurveP256") return "P-256";
  if (s == "CurveP384") return "P-384";
  if (s == "CurveP521") return "P-521";
  if (s == "X25519") return "X25519";
  fail(node, key, "unknown curve \"" + s + "\" (want CurveP256, CurveP384, CurveP521 or X25519)");
}

TlsServerConfig tls_config(const YAML::Node& node, std::string_view base_dir) {
  const std::string path = "tls_server_config";
  TlsServerConfig tls;
  bool client_auth_set = false;
  for (const auto& [key, value] : entries(node, path,
                                          {"cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type",
                                           "client_ca_file", "cipher_suites", "curve_preferences", "min_version",
                                           "max_version", "prefer_server_cipher_suites", "client_allowed_sans"})) {
    const std::string full = join_key(path, key);
    if (is_null(value)) continue;
    if (key == "cert") {
      tls.cert = scalar(value, full);
    } else if (key == "key") {
      tls.key = scalar(value, full);
    } else if (key == "client_ca") {
      tls.client_ca = scalar(value, full);
    } else if (key == "cert_file") {
      tls.cert_file = join_dir(base_dir, scalar(value, full));
    } else if (key == "key_file") {
      tls.key_file = join_dir(base_dir, scalar(value, full));
    } else if (key == "client_ca_file") {
      tls.client_ca_file = join_dir(base_dir, scalar(value, full));
    } else if (key == "client_auth_type") {
      client_auth_set = !scalar(value, full).empty();
      tls.client_auth = client_auth(value, full);
    } else if (key == "cipher_suites") {
      for (const std::string& name : string_list(value, full)) {
        if (std::find(kTls13Suites.begin(), kTls13Suites.end(), name) != kTls13Suites.end()) continue;
        std::optional<std::string> openssl = openssl_cipher_name(name);
        if (!openssl) fail(value, full, "unknown cipher suite \"" + name + "\"");
        tls.cipher_suites.push_back(std::move(*openssl));
      }
    } else if (key == "curve_preferences") {
      if (!value.IsSequence()) fail(value, full, "must be a list");
      for (const auto& item : value) tls.curves.push_back(openssl_curve(item, full));
    } else if (key == "min_version") {
      tls.min_version = tls_version(value, full);
    } else if (key == "max_version") {
      tls.max_version = tls_version(value, full);
    } else if (key == "prefer_server_cipher_suites") {
      tls.prefer_server_cipher_suites = boolean(value, full);
    } else if (key == "client_allowed_sans") {
      tls.client_allowed_sans = string_list(value, full);
    }
  }
  tls.enabled = !tls.cert_file.empty() || !tls.cert.empty() || !tls.key_file.empty() || !tls.key.empty() ||
                !tls.client_ca_file.empty() || !tls.client_ca.empty() || client_auth_set;
  if (!tls.enabled) return tls;
  if (tls.cert_file.empty() && tls.cert.empty()) fail(node, path, "missing one of cert or cert_file");
  if (tls.key_file.empty() && tls.key.empty()) fail(node, path, "missing one of key or key_file");
  if ((!tls.client_ca_file.empty() || !tls.client_ca.empty()) && tls.client_auth == ClientAuth::no_client_cert) {
    fail(node, join_key(path, "client_ca_file"), "a client CA is configured without a client_auth_type");
  }
  if (!tls.client_allowed_sans.empty() && tls.client_auth != ClientAuth::require_any_client_cert &&
      tls.client_auth != ClientAuth::require_and_verify_client_cert) {
    fail(node, join_key(path, "client_allowed_sans"),
         "needs client_auth_type RequireAnyClientCert or RequireAndVerifyClientCert");
  }
  if ((tls.client_auth == ClientAuth::verify_client_cert_if_given ||
       tls.client_auth == ClientAuth::require_and_verify_client_cert) &&
      tls.client_ca_file.empty() && tls.client_ca.empty()) {
    fail(node, join_key(path, "client_ca_file"), "client_auth_type verifies client certificates but no client CA is given");
  }
  if (tls.min_version > tls.max_version) fail(node, join_key(path, "min_version"), "is above max_version");
  return tls;
}

// The response headers the toolkit lets an operator set, with the values it allows (none listed:
// any value).
struct AllowedHeader {
  std::string_view name;
  std::vector<std::string_view> values;
};
const std::array<AllowedHeader, 5>& allowed_headers() {
  static const std::array<AllowedHeader, 5> headers = {{
      {"Strict-Transport-Security", {}},
      {"X-Content-Type-Options", {"nosniff"}},
      {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},
      {"Content-Security-Policy", {}},
  }};
  return headers;
}

void http_config(const YAML::Node& node, WebConfig& config) {
  const std::string path = "http_server_config";
  for (const auto& [key, value] : entries(node, path, {"http2", "headers"})) {
    const std::string full = join_key(path, key);
    if (is_null(value)) continue;
    if (key == "http2") {
      config.http2 = boolean(value, full);
      continue;
    }
    for (const auto& [name, header_value] : entries(value, full, {})) {
      const std::string header_key = join_key(full, name);
      const auto& allowed = allowed_headers();
      const auto known = std::find_if(allowed.begin(), allowed.end(), [&wanted = name](const AllowedHeader& h) { return h.name == wanted; });
      if (known == allowed.end()) fail(value, header_key, "this header can not be configured");
      const std::string text = is_null(header_value) ? "" : scalar(header_value, header_key);
      if (!known->values.empty() && std::find(known->values.begin(), known->values.end(), text) == known->values.end()) {
        std::string expected;
        for (const std::string_view v : known->values) expected += (expected.empty() ? "\"" : ", \"") + std::string(v) + "\"";
        fail(header_value, header_key, "invalid value \"" + text + "\" (expected one of " + expected + ")");
      }
      if (text.find_first_of("\r\n") != std::string::npos) fail(header_value, header_key, "must not contain a line break");
      config.headers.emplace_back(name, text);
    }
  }
  std::sort(config.headers.begin(), config.headers.end());
}

void users(const YAML::Node& node, WebConfig& config) {
  const std::string path = "basic_auth_users";
  for (const auto& [user, hash_node] : entries(node, path, {})) {
    const std::string key = join_key(path, user);
    const std::string hash = is_null(hash_node) ? "" : scalar(hash_node, key);
    if (!is_bcrypt_hash(hash)) fail(hash_node, key, "not a bcrypt hash ($2a$, $2b$ or $2y$, cost 4 to 31)");
    config.users.emplace(user, hash);
  }
}

void rate_limit(const YAML::Node& node, WebConfig& config) {
  const std::string path = "rate_limit";
  for (const auto& [key, value] : entries(node, path, {"burst", "interval"})) {
    const std::string full = join_key(path, key);
    if (is_null(value)) continue;
    const std::string text = scalar(value, full);
    if (key == "burst") {
      int burst = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), burst);
      if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || burst < 0) {
        fail(value, full, "not a non-negative integer: \"" + text + "\"");
      }
      config.rate_limit.burst = burst;
    } else {
      // yaml.v2 reads a time.Duration from a duration string, or from an integer of nanoseconds.
      std::optional<std::chrono::nanoseconds> interval = parse_go_duration(text);
      if (!interval && !text.empty() && text.find_first_not_of("0123456789") == std::string::npos) {
        long long ns = 0;
        if (std::from_chars(text.data(), text.data() + text.size(), ns).ec == std::errc{}) interval = std::chrono::nanoseconds(ns);
      }
      if (!interval) fail(value, full, "not a duration: \"" + text + "\" (e.g. 1s, 500ms)");
      config.rate_limit.interval = *interval;
    }
  }
}

}  // namespace

WebConfigResult parse_web_config(std::string_view yaml, std::string_view base_dir) {
  WebConfigResult result;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    WebConfig config;
    for (const auto& [key, value] :
         entries(root, "", {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"})) {
      if (key == "tls_server_config") {
        config.tls = tls_config(value, base_dir);
      } else if (key == "http_server_config") {
        http_config(value, config);
      } else if (key == "basic_auth_users") {
        users(value, config);
      } else {
        rate_limit(value, config);
      }
    }
    result.config = std::move(config);
  } catch (const ParseError& e) {
    result.error = e.message;
  } catch (const YAML::Exception& e) {
    result.error = e.what();  // "yaml-cpp: error at line 2, column 3: ..."
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  return result;
}

WebConfigResult load_web_config(const std::string& path) {
  WebConfigResult result;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    result.error = "cannot read " + path + ": " + std::strerror(errno);
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, std::max<std::size_t>(slash, 1));
  result = parse_web_config(text.str(), dir);
  if (!result.config) result.error = path + ": " + result.error;
  return result;
}

std::optional<std::string> openssl_cipher_name(std::string_view go_name) {
  // The TLS 1.0-1.2 suites Go's tls.CipherSuites() and tls.InsecureCipherSuites() name, that
  // OpenSSL 3 has.
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 18> names = {{
      {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
      {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
      {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
      {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
      {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
      {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"},
  }};
  for (const auto& [go, openssl] : names) {
    if (go == go_name) return std::string(openssl);
  }
  // Go's older aliases of the ChaCha20 suites.
  if (go_name == "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305") return "ECDHE-RSA-CHACHA20-POLY1305";
  if (go_name == "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305") return "ECDHE-ECDSA-CHACHA20-POLY1305";
  return std::nullopt;
}

std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view text) {
  if (text == "0") return std::chrono::nanoseconds(0);
  if (text.empty()) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  double total = 0;
  bool any = false;
  while (!text.empty()) {
    const std::size_t digits = text.find_first_not_of("0123456789.");
    if (digits == 0) return std::nullopt;
    double number = 0;
    const std::string_view number_text = text.substr(0, digits);
    const auto [end, ec] = std::from_chars(number_text.data(), number_text.data() + number_text.size(), number);
    if (ec != std::errc{} || end != number_text.data() + number_text.size()) return std::nullopt;
    text.remove_prefix(number_text.size());
    const std::size_t unit_end = text.find_first_of("0123456789.");
    const std::string_view unit = text.substr(0, unit_end);
    text.remove_prefix(unit.size());
    double scale = 0;
    if (unit == "ns") {
      scale = 1;
    } else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") {
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1e6;
    } else if (unit == "s") {
      scale = 1e9;
    } else if (unit == "m") {
      scale = 60e9;
    } else if (unit == "h") {
      scale = 3600e9;
    } else {
      return std::nullopt;
    }
    total += number * scale;
    any = true;
  }
  if (!any || !std::isfinite(total) || total > 9.2e18) return std::nullopt;
  return std::chrono::nanoseconds(static_cast<long long>(total));
}

bool is_bcrypt_hash(std::string_view hash) {
  // $2b$10$ + 22 characters of salt + 31 of hash, in bcrypt's base64 alphabet.
  if (hash.size() != 60 || hash.substr(0, 2) != "$2") return false;
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return false;
  if (hash[3] != '$' || hash[6] != '$') return false;
  if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' || hash[5] > '9') return false;
  const int cost = (hash[4] - '0') * 10 + (hash[5] - '0');
  if (cost < 4 || cost > 31) return false;
  constexpr std::string_view alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return hash.substr(7).find_first_not_of(alphabet) == std::string_view::npos;
}

}  // namespace nle
