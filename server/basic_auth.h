// HTTP basic authentication against the bcrypt hashes of a web config (basic_auth_users), as
// exporter-toolkit decides it: a missing or malformed header, an unknown user and a wrong
// password are all refused, and an unknown user costs the same bcrypt work as a known one, so
// timing does not tell which users exist. Knows nothing of sockets or HTTP servers.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace nle {

struct BasicCredentials {
  std::string user;
  std::string password;
};

// The credentials of an `Authorization: Basic <base64(user:password)>` header value (scheme
// case-insensitive, padded standard base64, split at the first ':'); nullopt otherwise.
std::optional<BasicCredentials> parse_basic_authorization(std::string_view header);

// Whether `password` hashes to `hash` (bcrypt, checked with libcrypt's crypt_r). A password
// holding a NUL byte never matches (crypt_r would stop at it).
bool bcrypt_matches(const std::string& hash, const std::string& password);

// Checks a password against a hash; bcrypt_matches() in production, a recorder in tests.
using PasswordCheck = std::function<bool(const std::string& hash, const std::string& password)>;

// The decision for one request: true when `users` is empty (no auth configured) or the header
// names a configured user with the right password. For an unknown user the password is still
// checked once, against a configured user's hash (so at that user's bcrypt cost), and refused.
// Pure: everything it needs comes in as arguments.
bool authorize(const std::map<std::string, std::string>& users, std::string_view authorization_header,
               const PasswordCheck& check);

// authorize() with bcrypt_matches(), caching each (user, hash, password) outcome so that a
// scraper presenting the same credentials pays bcrypt once. The cache holds SHA-256 digests, not
// passwords, and is bounded (cleared when full). bcrypt runs one at a time, as in the toolkit, so
// a flood of wrong passwords takes at most one core. Thread-safe.
class BasicAuthenticator {
 public:
  BasicAuthenticator();
  ~BasicAuthenticator();
  BasicAuthenticator(const BasicAuthenticator&) = delete;
  BasicAuthenticator& operator=(const BasicAuthenticator&) = delete;

  bool allows(const std::map<std::string, std::string>& users, std::string_view authorization_header);
  std::size_t bcrypt_runs() const;  // how often bcrypt ran (cache misses)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle
