// The web config parser and the basic-auth decision: pure functions, no sockets, no files.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "server/basic_auth.h"
#include "server/web_config.h"

using nle::ClientAuth;
using nle::parse_web_config;
using nle::WebConfigResult;

namespace {

// Made with `htpasswd -nbBC 4 "" secret` and `htpasswd -nbBC 5 "" other` (cost 4 and 5 keep
// the tests fast; the cost is part of the hash).
const std::string kSecretHash = "$2y$04$fXNe45kYNrsEML6ZR/xinehQwnA.vV17BT3fA7vzey/9Q799hQr5y";
const std::string kOtherHash = "$2y$05$heShCK2b0XiOuN7gK9ff.OevPhh2sSdSj3BSg54ndDzvvLUNlK4Hm";

std::string basic(const std::string& user_password) {
  // base64 of a few fixed strings, spelled out so the test does not reuse the decoder.
  if (user_password == "alice:secret") return "Basic YWxpY2U6c2VjcmV0";
  if (user_password == "alice:wrong") return "Basic YWxpY2U6d3Jvbmc=";
  if (user_password == "mallory:secret") return "Basic bWFsbG9yeTpzZWNyZXQ=";
  if (user_password == "bob:other") return "Basic Ym9iOm90aGVy";
  FAIL("no fixture for " << user_password);
  return "";
}

WebConfigResult parse(const std::string& yaml) { return parse_web_config(yaml, "/etc/nle"); }

void require_error(const std::string& yaml, const std::string& part) {
  const WebConfigResult r = parse(yaml);
  INFO(yaml);
  REQUIRE_FALSE(r.config);
  INFO(r.error);
  CHECK(r.error.find(part) != std::string::npos);
}

}  // namespace

TEST_CASE("an empty web config is valid and changes nothing") {
  for (const std::string yaml : {"", "# nothing\n", "tls_server_config:\n"}) {
    const WebConfigResult r = parse(yaml);
    REQUIRE(r.config);
    CHECK_FALSE(r.config->tls.enabled);
    CHECK(r.config->users.empty());
    CHECK(r.config->headers.empty());
    CHECK(r.config->rate_limit.interval.count() == 0);
  }
}

TEST_CASE("a full web config parses into every field") {
  const WebConfigResult r = parse(R"(
tls_server_config:
  cert_file: server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: [prometheus.example, 10.0.0.1]
  min_version: TLS13
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  curve_preferences: [X25519, CurveP256]
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: )" + kSecretHash + R"(
rate_limit:
  interval: 1.5s
  burst: 3
)");
  INFO(r.error);
  REQUIRE(r.config);
  const nle::WebConfig& c = *r.config;
  CHECK(c.tls.enabled);
  CHECK(c.tls.cert_file == "/etc/nle/server.crt");
  CHECK(c.tls.key_file == "/abs/server.key");
  CHECK(c.tls.client_ca_file == "/etc/nle/ca.crt");
  CHECK(c.tls.client_auth == ClientAuth::require_and_verify_client_cert);
  CHECK(c.tls.client_allowed_sans == std::vector<std::string>{"prometheus.example", "10.0.0.1"});
  CHECK(c.tls.min_version == nle::kTls13);
  CHECK(c.tls.max_version == nle::kTls13);
  CHECK(c.tls.cipher_suites == std::vector<std::string>{"ECDHE-RSA-AES128-GCM-SHA256"});
  CHECK(c.tls.curves == std::vector<std::string>{"X25519", "P-256"});
  CHECK_FALSE(c.tls.prefer_server_cipher_suites);
  CHECK_FALSE(c.http2);
  REQUIRE(c.headers.size() == 2);
  CHECK(c.headers[0] == std::pair<std::string, std::string>{"Strict-Transport-Security", "max-age=31536000"});
  CHECK(c.headers[1] == std::pair<std::string, std::string>{"X-Frame-Options", "deny"});
  CHECK(c.users.at("alice") == kSecretHash);
  CHECK(c.rate_limit.interval == std::chrono::milliseconds(1500));
  CHECK(c.rate_limit.burst == 3);
}

TEST_CASE("TLS defaults to TLS 1.2 to 1.3 and no client certificate") {
  const WebConfigResult r = parse("tls_server_config:\n  cert: PEM\n  key: PEM\n");
  REQUIRE(r.config);
  CHECK(r.config->tls.enabled);
  CHECK(r.config->tls.min_version == nle::kTls12);
  CHECK(r.config->tls.max_version == nle::kTls13);
  CHECK(r.config->tls.client_auth == ClientAuth::no_client_cert);
  CHECK(r.config->tls.cert == "PEM");
}

TEST_CASE("every client_auth_type name maps to its policy") {
  const std::vector<std::pair<std::string, ClientAuth>> names = {
      {"NoClientCert", ClientAuth::no_client_cert},
      {"RequestClientCert", ClientAuth::request_client_cert},
      {"RequireAnyClientCert", ClientAuth::require_any_client_cert},
      {"VerifyClientCertIfGiven", ClientAuth::verify_client_cert_if_given},
      {"RequireAndVerifyClientCert", ClientAuth::require_and_verify_client_cert},
  };
  for (const auto& [name, policy] : names) {
    const WebConfigResult r = parse("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: ca\n"
                                    "  client_auth_type: " + name + "\n");
    INFO(name << ": " << r.error);
    if (policy == ClientAuth::no_client_cert) {
      CHECK_FALSE(r.config);  // a client CA without a policy is an error, as in the toolkit
    } else {
      REQUIRE(r.config);
      CHECK(r.config->tls.client_auth == policy);
    }
  }
}

TEST_CASE("an unknown key is an error naming it, at any depth") {
  require_error("tls_server_confg:\n  cert_file: x\n", "tls_server_confg: unknown key");
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_versoin: TLS12\n",
                "tls_server_config.min_versoin: unknown key");
  require_error("rate_limit:\n  burst: 1\n  period: 1s\n", "rate_limit.period: unknown key");
  require_error("http_server_config:\n  header: {}\n", "http_server_config.header: unknown key");
}

TEST_CASE("an error names the line it is on") {
  require_error("basic_auth_users: {}\nrate_limit:\n  burst: x\n", "line 3: rate_limit.burst");
}

TEST_CASE("a key given twice is an error") {
  require_error("rate_limit:\n  burst: 1\n  burst: 2\n", "rate_limit.burst: given twice");
}

TEST_CASE("bad values are errors naming the key") {
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: Maybe\n",
                "tls_server_config.client_auth_type: unknown value \"Maybe\"");
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS14\n",
                "tls_server_config.min_version: unknown TLS version");
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [TLS_FOO]\n",
                "unknown cipher suite \"TLS_FOO\"");
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  curve_preferences: [P256]\n",
                "unknown curve \"P256\"");
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n",
                "min_version: is above max_version");
  require_error("tls_server_config:\n  cert_file: c\n", "missing one of key or key_file");
  require_error("tls_server_config:\n  key: k\n", "missing one of cert or cert_file");
  require_error("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequestClientCert\n"
                "  client_allowed_sans: [a]\n",
                "client_allowed_sans: needs client_auth_type");
  require_error("rate_limit:\n  interval: soon\n", "rate_limit.interval: not a duration");
  require_error("rate_limit:\n  burst: -1\n", "rate_limit.burst: not a non-negative integer");
  require_error("http_server_config:\n  http2: maybe\n", "http_server_config.http2: not a boolean");
  require_error("basic_auth_users: [alice]\n", "basic_auth_users: must be a mapping");
  require_error("- a\n- b\n", "document: must be a mapping");
  require_error("tls_server_config: {cert_file: [a]}\n", "tls_server_config.cert_file: must be a string");
}

TEST_CASE("YAML that does not parse is an error") {
  const WebConfigResult r = parse("tls_server_config: {cert_file: x\n");
  CHECK_FALSE(r.config);
  CHECK_FALSE(r.error.empty());
}

TEST_CASE("only the five toolkit headers can be set, some with fixed values") {
  require_error("http_server_config:\n  headers:\n    Server: nginx\n",
                "http_server_config.headers.Server: this header can not be configured");
  require_error("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "invalid value \"allow\"");
  require_error("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n", "invalid value \"sniff\"");
  const WebConfigResult r = parse("http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
                                  "    X-XSS-Protection: '1; mode=block'\n    Content-Security-Policy: default-src 'self'\n");
  INFO(r.error);
  REQUIRE(r.config);
  CHECK(r.config->headers.size() == 3);
}

TEST_CASE("user hashes must be bcrypt with a 2a, 2b or 2y prefix") {
  require_error("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: not a bcrypt hash");
  require_error("basic_auth_users:\n  alice:\n", "basic_auth_users.alice: not a bcrypt hash");
  std::string md5ish = kSecretHash;
  md5ish[2] = 'x';
  require_error("basic_auth_users:\n  alice: " + md5ish + "\n", "not a bcrypt hash");
  for (const char variant : {'a', 'b', 'y'}) {
    std::string hash = kSecretHash;
    hash[2] = variant;
    CHECK(nle::is_bcrypt_hash(hash));
  }
  CHECK_FALSE(nle::is_bcrypt_hash("$2y$03$fXNe45kYNrsEML6ZR/xinehQwnA.vV17BT3fA7vzey/9Q799hQr5y"));
  CHECK_FALSE(nle::is_bcrypt_hash(kSecretHash.substr(0, 59)));
}

TEST_CASE("Go durations parse as time.ParseDuration does") {
  using std::chrono::nanoseconds;
  CHECK(nle::parse_go_duration("0") == nanoseconds(0));
  CHECK(nle::parse_go_duration("1s") == nanoseconds(1'000'000'000));
  CHECK(nle::parse_go_duration("2m30s") == nanoseconds(150'000'000'000));
  CHECK(nle::parse_go_duration("1.5h") == nanoseconds(5'400'000'000'000));
  CHECK(nle::parse_go_duration("300ms") == nanoseconds(300'000'000));
  CHECK(nle::parse_go_duration("10us") == nanoseconds(10'000));
  CHECK_FALSE(nle::parse_go_duration(""));
  CHECK_FALSE(nle::parse_go_duration("1"));
  CHECK_FALSE(nle::parse_go_duration("1d"));
  CHECK_FALSE(nle::parse_go_duration("-1s"));
}

TEST_CASE("Go cipher suite names map to OpenSSL's") {
  CHECK(nle::openssl_cipher_name("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384") == "ECDHE-ECDSA-AES256-GCM-SHA384");
  CHECK(nle::openssl_cipher_name("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256") == "ECDHE-RSA-CHACHA20-POLY1305");
  CHECK(nle::openssl_cipher_name("TLS_RSA_WITH_AES_128_CBC_SHA") == "AES128-SHA");
  CHECK_FALSE(nle::openssl_cipher_name("ECDHE-RSA-AES128-GCM-SHA256"));  // OpenSSL's own name is not Go's
}

TEST_CASE("the basic authorization header is decoded as Go decodes it") {
  const auto c = nle::parse_basic_authorization("Basic YWxpY2U6c2VjcmV0");
  REQUIRE(c);
  CHECK(c->user == "alice");
  CHECK(c->password == "secret");
  CHECK(nle::parse_basic_authorization("basic YWxpY2U6c2VjcmV0"));  // the scheme is case-insensitive
  CHECK(nle::parse_basic_authorization("Basic YTo6Yg==")->password == ":b");  // split at the first colon
  CHECK_FALSE(nle::parse_basic_authorization("Bearer YWxpY2U6c2VjcmV0"));
  CHECK_FALSE(nle::parse_basic_authorization("Basic YWxpY2U"));    // unpadded
  CHECK_FALSE(nle::parse_basic_authorization("Basic YWxpY2U="));  // no colon
  CHECK_FALSE(nle::parse_basic_authorization("Basic !!!!"));
  CHECK_FALSE(nle::parse_basic_authorization(""));
}

TEST_CASE("bcrypt hashes are checked with crypt_r, all three prefixes") {
  CHECK(nle::bcrypt_matches(kSecretHash, "secret"));
  CHECK_FALSE(nle::bcrypt_matches(kSecretHash, "Secret"));
  CHECK_FALSE(nle::bcrypt_matches(kSecretHash, std::string("secret\0x", 8)));
  for (const char variant : {'a', 'b'}) {
    std::string hash = kSecretHash;
    hash[2] = variant;
    CHECK(nle::bcrypt_matches(hash, "secret"));
  }
}

TEST_CASE("auth allows everyone when no users are configured") {
  int checks = 0;
  const auto check = [&](const std::string&, const std::string&) { return ++checks, false; };
  CHECK(nle::authorize({}, "", check));
  CHECK(checks == 0);
}

TEST_CASE("auth refuses a missing header, a wrong password and an unknown user") {
  const std::map<std::string, std::string> users = {{"alice", kSecretHash}, {"bob", kOtherHash}};
  std::vector<std::string> hashes_checked;
  const auto check = [&](const std::string& hash, const std::string& password) {
    hashes_checked.push_back(hash);
    return nle::bcrypt_matches(hash, password);
  };
  CHECK(nle::authorize(users, basic("alice:secret"), check));
  CHECK(nle::authorize(users, basic("bob:other"), check));
  CHECK_FALSE(nle::authorize(users, basic("alice:wrong"), check));
  CHECK_FALSE(nle::authorize(users, "", check));
  CHECK_FALSE(nle::authorize(users, "Basic garbage", check));
  hashes_checked.clear();
  // mallory is unknown; her password is alice's, and is still refused after a real bcrypt run.
  CHECK_FALSE(nle::authorize(users, basic("mallory:secret"), check));
  REQUIRE(hashes_checked.size() == 1);
  CHECK(users.count("alice") == 1);
  CHECK((hashes_checked[0] == kSecretHash || hashes_checked[0] == kOtherHash));
}

TEST_CASE("the authenticator caches verified credentials and follows changed users") {
  nle::BasicAuthenticator auth;
  std::map<std::string, std::string> users = {{"alice", kSecretHash}};
  CHECK(auth.allows(users, basic("alice:secret")));
  CHECK(auth.allows(users, basic("alice:secret")));
  CHECK(auth.bcrypt_runs() == 1);
  CHECK_FALSE(auth.allows(users, basic("alice:wrong")));
  CHECK_FALSE(auth.allows(users, basic("alice:wrong")));
  CHECK(auth.bcrypt_runs() == 2);
  CHECK_FALSE(auth.allows(users, basic("mallory:secret")));
  CHECK(auth.bcrypt_runs() == 3);
  // A reloaded config without alice refuses her at once, cache or not.
  users = {{"bob", kOtherHash}};
  CHECK_FALSE(auth.allows(users, basic("alice:secret")));
  CHECK(auth.allows(users, basic("bob:other")));
}

TEST_CASE("the example web configs in packaging/ parse") {
  const std::string packaging = std::string(NLE_TESTDATA_DIR) + "/../packaging/";
  const WebConfigResult full = nle::load_web_config(packaging + "web-config.full-example.yml");
  INFO(full.error);
  REQUIRE(full.config);
  CHECK(full.config->tls.cert_file == packaging + "tls.crt");
  CHECK(full.config->tls.client_auth == ClientAuth::require_and_verify_client_cert);
  CHECK(full.config->users.size() == 1);
  CHECK(nle::bcrypt_matches(full.config->users.at("prometheus"), "example-password"));
  CHECK(full.config->rate_limit.burst == 20);
  const WebConfigResult shipped = nle::load_web_config(packaging + "web-config.example.yml");
  INFO(shipped.error);
  CHECK(shipped.config);
}
