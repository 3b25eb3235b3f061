#include "server/basic_auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <atomic>
#include <mutex>
#include <set>

namespace nle {
namespace {

// Standard base64 with padding (RFC 4648 section 4), as Go's r.BasicAuth() decodes it.
std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int pad = 0;
    if (last && in[i + 3] == '=') pad = in[i + 2] == '=' ? 2 : 1;
    unsigned bits = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const int v = j >= 4 - static_cast<std::size_t>(pad) ? 0 : value(in[i + j]);
      if (v < 0) return std::nullopt;
      bits = bits << 6 | static_cast<unsigned>(v);
    }
    out.push_back(static_cast<char>(bits >> 16 & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>(bits >> 8 & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(bits & 0xFF));
  }
  return out;
}

using Digest = std::array<unsigned char, 32>;

Digest sha256(std::string_view a, std::string_view b, std::string_view c) {
  // Lengths first, so that no two different triples hash the same bytes.
  std::string input = std::to_string(a.size()) + ":" + std::to_string(b.size()) + ":";
  input.append(a).append(b).append(c);
  Digest digest{};
  unsigned int length = 0;
  EVP_Digest(input.data(), input.size(), digest.data(), &length, EVP_sha256(), nullptr);
  OPENSSL_cleanse(input.data(), input.size());
  return digest;
}

constexpr std::size_t kCacheEntries = 1024;

}  // namespace

std::optional<BasicCredentials> parse_basic_authorization(std::string_view header) {
  constexpr std::string_view scheme = "basic ";
  if (header.size() < scheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    char c = header[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != scheme[i]) return std::nullopt;
  }
  std::optional<std::string> decoded = base64_decode(header.substr(scheme.size()));
  if (!decoded) return std::nullopt;
  const std::size_t colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return BasicCredentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

bool bcrypt_matches(const std::string& hash, const std::string& password) {
  if (password.find('\0') != std::string::npos) return false;
  auto data = std::make_unique<crypt_data>();  // about 32 KiB: not on a server thread's stack
  const char* result = ::crypt_r(password.c_str(), hash.c_str(), data.get());
  const bool match = result != nullptr && result[0] != '*' && std::string_view(result).size() == hash.size() &&
                     CRYPTO_memcmp(result, hash.data(), hash.size()) == 0;
  OPENSSL_cleanse(data.get(), sizeof(crypt_data));
  return match;
}

bool authorize(const std::map<std::string, std::string>& users, std::string_view authorization_header,
               const PasswordCheck& check) {
  if (users.empty()) return true;
  const std::optional<BasicCredentials> credentials = parse_basic_authorization(authorization_header);
  if (!credentials) return false;
  const auto user = users.find(credentials->user);
  if (user == users.end()) {
    // Spend what a known user costs, then refuse whatever the outcome.
    check(users.begin()->second, credentials->password);
    return false;
  }
  return check(user->second, credentials->password);
}

struct BasicAuthenticator::Impl {
  std::mutex cache_mutex;
  std::set<Digest> allowed;  // guarded by cache_mutex
  std::set<Digest> refused;  // guarded by cache_mutex
  std::mutex bcrypt_mutex;   // one bcrypt at a time
  std::atomic<std::size_t> runs{0};
};

BasicAuthenticator::BasicAuthenticator() : impl_(std::make_unique<Impl>()) {}
BasicAuthenticator::~BasicAuthenticator() = default;

bool BasicAuthenticator::allows(const std::map<std::string, std::string>& users,
                                std::string_view authorization_header) {
  Impl& d = *impl_;
  const std::optional<BasicCredentials> credentials = parse_basic_authorization(authorization_header);
  const std::string user = credentials ? credentials->user : std::string();
  return authorize(users, authorization_header, [&d, &user](const std::string& hash, const std::string& password) {
    const Digest key = sha256(user, hash, password);
    {
      std::lock_guard lock(d.cache_mutex);
      if (d.allowed.count(key) != 0) return true;
      if (d.refused.count(key) != 0) return false;
    }
    bool match = false;
    {
      std::lock_guard lock(d.bcrypt_mutex);
      match = bcrypt_matches(hash, password);
      d.runs.fetch_add(1, std::memory_order_relaxed);
    }
    std::lock_guard lock(d.cache_mutex);
    std::set<Digest>& into = match ? d.allowed : d.refused;
    if (into.size() >= kCacheEntries) into.clear();
    into.insert(key);
    return match;
  });
}

std::size_t BasicAuthenticator::bcrypt_runs() const { return impl_->runs.load(std::memory_order_relaxed); }

}  // namespace nle
