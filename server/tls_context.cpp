// OpenSSL 3 server contexts. Certificates, keys and CAs are read into memory first and parsed
// from there, so that TlsContextSource can tell from the bytes whether anything changed.
#include "server/tls_context.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

namespace nle {
namespace {

std::optional<std::string> read_file(const std::string& path, std::string& error, const char* key) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = std::string("cannot read ") + key + " " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The PEM texts a config names, read from their files or taken inline.
struct TlsMaterial {
  std::string cert;
  std::string key;
  std::string client_ca;
};

// The PEM text of one setting: its file when one is named, else its inline value.
bool pem_of(const std::string& file, const std::string& inline_text, const char* key, std::string& out,
            std::string& error) {
  if (file.empty()) {
    out = inline_text;
    return true;
  }
  std::optional<std::string> text = read_file(file, error, key);
  if (!text) return false;
  out = std::move(*text);
  return true;
}

std::optional<TlsMaterial> read_material(const TlsServerConfig& config, std::string& error) {
  TlsMaterial m;
  if (!pem_of(config.cert_file, config.cert, "cert_file", m.cert, error) ||
      !pem_of(config.key_file, config.key, "key_file", m.key, error) ||
      !pem_of(config.client_ca_file, config.client_ca, "client_ca_file", m.client_ca, error)) {
    return std::nullopt;
  }
  return m;
}

std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr memory_bio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The SANs Go compares with client_allowed_sans: DNS names, email addresses, IP addresses (as
// Go prints them) and URIs.
bool has_allowed_san(X509* cert, const std::vector<std::string>& allowed) {
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return false;
  bool found = false;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && !found; ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    std::string value;
    if (name->type == GEN_DNS || name->type == GEN_EMAIL || name->type == GEN_URI) {
      const ASN1_IA5STRING* s = name->d.ia5;
      value.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<std::size_t>(ASN1_STRING_length(s)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int length = ASN1_STRING_length(ip);
      const int family = length == 4 ? AF_INET : length == 16 ? AF_INET6 : 0;
      if (family != 0 && ::inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof text) != nullptr) value = text;
    }
    found = !value.empty() && std::find(allowed.begin(), allowed.end(), value) != allowed.end();
  }
  GENERAL_NAMES_free(names);
  return found;
}

int verify_client_certificate(int preverify_ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  const auto* context = static_cast<const TlsContext*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  if (context == nullptr) return 0;
  // RequestClientCert and RequireAnyClientCert take any certificate, as Go does: the chain is
  // not verified.
  if (context->client_auth == ClientAuth::request_client_cert ||
      context->client_auth == ClientAuth::require_any_client_cert) {
    preverify_ok = 1;
  }
  if (preverify_ok == 0) return 0;
  if (X509_STORE_CTX_get_error_depth(store) == 0 && !context->allowed_sans.empty()) {
    return has_allowed_san(X509_STORE_CTX_get_current_cert(store), context->allowed_sans) ? 1 : 0;
  }
  return 1;
}

// Builds the context from material already read.
TlsContextResult build(const TlsServerConfig& config, const TlsMaterial& m) {
  TlsContextResult result;
  auto context = std::make_shared<TlsContext>();
  context->client_auth = config.client_auth;
  context->allowed_sans = config.client_allowed_sans;
  context->ctx = SSL_CTX_new(TLS_server_method());
  SSL_CTX* ctx = context->ctx;
  const auto fail = [&result](std::string what) {
    result.error = std::move(what);
    return result;
  };
  if (ctx == nullptr) return fail("cannot create a TLS context: " + openssl_error());
  SSL_CTX_set_app_data(ctx, context.get());

  BioPtr cert_bio = memory_bio(m.cert);
  X509* leaf = PEM_read_bio_X509_AUX(cert_bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr || SSL_CTX_use_certificate(ctx, leaf) != 1) {
    X509_free(leaf);
    return fail("tls_server_config: the certificate does not load: " + openssl_error());
  }
  X509_free(leaf);
  while (X509* extra = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
      X509_free(extra);
      return fail("tls_server_config: a chain certificate does not load: " + openssl_error());
    }
  }
  ERR_clear_error();  // the end of the PEM chain
  BioPtr key_bio = memory_bio(m.key);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
    EVP_PKEY_free(key);
    return fail("tls_server_config: the key does not load: " + openssl_error());
  }
  EVP_PKEY_free(key);
  if (SSL_CTX_check_private_key(ctx) != 1) return fail("tls_server_config: the key does not match the certificate");

  if (!m.client_ca.empty()) {
    BioPtr ca_bio = memory_bio(m.client_ca);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    int count = 0;
    while (X509* ca = PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr)) {
      X509_STORE_add_cert(store, ca);
      SSL_CTX_add_client_CA(ctx, ca);
      X509_free(ca);
      ++count;
    }
    ERR_clear_error();
    if (count == 0) return fail("tls_server_config: the client CA holds no certificate");
  }
  int mode = SSL_VERIFY_NONE;
  switch (config.client_auth) {
    case ClientAuth::no_client_cert: break;
    case ClientAuth::request_client_cert:
    case ClientAuth::verify_client_cert_if_given: mode = SSL_VERIFY_PEER; break;
    case ClientAuth::require_any_client_cert:
    case ClientAuth::require_and_verify_client_cert: mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT; break;
  }
  SSL_CTX_set_verify(ctx, mode, mode == SSL_VERIFY_NONE ? nullptr : verify_client_certificate);
  // Sessions resume only with the context that made them; the id context is required once
  // client certificates are verified.
  static const unsigned char kSessionContext[] = "nixfleet-log-exporter";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);

  // OpenSSL 3's default security level refuses TLS 1.0 and 1.1 whatever the versions say; an
  // operator who asks for them gets them, as in Go.
  if (config.min_version < kTls12) SSL_CTX_set_security_level(ctx, 0);
  if (SSL_CTX_set_min_proto_version(ctx, config.min_version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, config.max_version) != 1) {
    return fail("tls_server_config: min_version/max_version: " + openssl_error());
  }
  if (!config.cipher_suites.empty()) {
    std::string list;
    for (const std::string& name : config.cipher_suites) list += (list.empty() ? "" : ":") + name;
    if (config.min_version < kTls12) list += ":@SECLEVEL=0";
    if (SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) {
      return fail("tls_server_config.cipher_suites: OpenSSL has none of them: " + openssl_error());
    }
  }
  if (!config.curves.empty()) {
    std::string list;
    for (const std::string& name : config.curves) list += (list.empty() ? "" : ":") + name;
    if (SSL_CTX_set1_groups_list(ctx, list.c_str()) != 1) {
      return fail("tls_server_config.curve_preferences: " + openssl_error());
    }
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (config.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  result.context = std::move(context);
  return result;
}

}  // namespace

TlsContext::~TlsContext() { SSL_CTX_free(ctx); }

TlsContextResult make_tls_context(const TlsServerConfig& config) {
  TlsContextResult result;
  std::optional<TlsMaterial> material = read_material(config, result.error);
  if (!material) return result;
  return build(config, *material);
}

TlsContextSource::TlsContextSource(std::string web_config_file) : path_(std::move(web_config_file)) {}

TlsContextResult TlsContextSource::current() {
  TlsContextResult result;
  const WebConfigResult loaded = load_web_config(path_);
  if (!loaded.config) {
    result.error = loaded.error;
    return result;
  }
  const TlsServerConfig& config = loaded.config->tls;
  if (!config.enabled) {
    result.error = path_ + ": tls_server_config was removed; a restart serves plain HTTP";
    return result;
  }
  std::optional<TlsMaterial> material = read_material(config, result.error);
  if (!material) return result;
  // Everything the context is made of, in one string to compare with the last one's.
  std::string inputs;
  const auto add = [&inputs](const std::string& part) { inputs += std::to_string(part.size()) + ":" + part; };
  add(material->cert);
  add(material->key);
  add(material->client_ca);
  add(std::to_string(static_cast<int>(config.client_auth)) + "/" + std::to_string(config.min_version) + "/" +
      std::to_string(config.max_version) + "/" + (config.prefer_server_cipher_suites ? "1" : "0"));
  for (const auto* list : {&config.client_allowed_sans, &config.cipher_suites, &config.curves}) {
    add(std::to_string(list->size()));
    for (const std::string& item : *list) add(item);
  }
  std::lock_guard lock(mutex_);
  if (last_ && inputs == last_inputs_) {
    result.context = last_;
    return result;
  }
  result = build(config, *material);
  if (result.context) {
    last_ = result.context;
    last_inputs_ = std::move(inputs);
  }
  return result;
}

}  // namespace nle
