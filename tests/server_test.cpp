// server/: header negotiation as pure functions, then the real server on loopback, spoken to with
// raw sockets so that the test sees exactly the bytes on the wire.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "exporter/exposition.h"
#include "exporter/snapshot.h"
#include "server/metrics_server.h"

namespace {

using nle::ExpositionFormat;
using nle::MetricsServer;
using nle::ServerOptions;
using nle::Snapshot;

constexpr std::string_view kPrometheusAccept =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client over a socket.

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  Headers headers;  // names lower-cased, in wire order
  std::string body;

  std::string header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
  std::size_t header_count(std::string_view name) const {
    std::size_t n = 0;
    for (const auto& h : headers) n += h.first == name ? 1 : 0;
    return n;
  }
};

std::string lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// A client socket with 20 s timeouts; invalid if it cannot connect.
class Connection {
 public:
  Connection(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    addrinfo* ai = nullptr;
    if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &ai) != 0) return;
    fd_ = ::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ >= 0) {
      timeval tv{};
      tv.tv_sec = 20;
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      if (::connect(fd_, ai->ai_addr, ai->ai_addrlen) != 0) {
        ::close(fd_);
        fd_ = -1;
      }
    }
    ::freeaddrinfo(ai);
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool valid() const { return fd_ >= 0; }

  // The client's own port, which is the peer port of the server's accepted socket.
  int local_port() const {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
    return addr.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port)
                                     : ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  }

  bool send_all(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  // Appends what arrives to `into`; false at end of stream or error.
  bool receive_some(std::string& into) {
    char buf[16384];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    into.append(buf, static_cast<std::size_t>(n));
    return true;
  }

 private:
  int fd_ = -1;
};

// Sends `raw` to host:port and reads until the server closes; nullopt if it cannot connect.
std::optional<std::string> exchange(const std::string& host, int port, const std::string& raw) {
  Connection c(host, port);
  if (!c.valid() || !c.send_all(raw)) return std::nullopt;
  std::string received;
  while (c.receive_some(received)) {
  }
  return received;
}

// Parses one response from the front of `raw`, consuming it; nullopt if incomplete or malformed.
// Bodies are delimited by Content-Length, which this server always sends; HEAD has no body.
std::optional<HttpResponse> parse_response_or_throw(std::string& raw, bool head) {
  const std::size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return std::nullopt;
  const std::string head_text = raw.substr(0, end);
  HttpResponse r;
  std::size_t line_end = head_text.find("\r\n");
  const std::string status_line = head_text.substr(0, line_end);
  if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) return std::nullopt;
  r.status = std::stoi(status_line.substr(9, 3));
  while (line_end != std::string::npos) {
    const std::size_t start = line_end + 2;
    line_end = head_text.find("\r\n", start);
    const std::string line = head_text.substr(start, line_end == std::string::npos ? std::string::npos
                                                                                  : line_end - start);
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) return std::nullopt;
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    r.headers.emplace_back(lower(line.substr(0, colon)), value);
  }
  std::size_t length = 0;
  if (!head) length = static_cast<std::size_t>(std::stoul(r.header("content-length")));
  if (raw.size() < end + 4 + length) return std::nullopt;
  r.body = raw.substr(end + 4, length);
  raw.erase(0, end + 4 + length);
  return r;
}

std::optional<HttpResponse> parse_response(std::string& raw, bool head) {
  try {
    return parse_response_or_throw(raw, head);
  } catch (const std::exception&) {  // std::stoi and friends on a malformed response
    return std::nullopt;
  }
}

std::string request_text(std::string_view method, std::string_view target, const Headers& headers,
                         std::string_view body, bool close) {
  std::string raw = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\nHost: test\r\n";
  if (close) raw += "Connection: close\r\n";
  for (const auto& [k, v] : headers) raw += k + ": " + v + "\r\n";
  if (!body.empty()) raw += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  raw += "\r\n";
  raw += body;
  return raw;
}

// One request on its own connection. No Catch2 macros: also used from several threads.
std::optional<HttpResponse> http(int port, std::string_view method, std::string_view target,
                                 const Headers& headers = {}, std::string_view body = {},
                                 const std::string& host = "127.0.0.1") {
  std::optional<std::string> raw =
      exchange(host, port, request_text(method, target, headers, body, true));
  if (!raw) return std::nullopt;
  std::optional<HttpResponse> r = parse_response(*raw, method == "HEAD");
  if (!r || !raw->empty()) return std::nullopt;  // trailing bytes: a malformed response
  return r;
}

// One request on a kept-alive connection: the response, or nullopt if it did not arrive whole.
std::optional<HttpResponse> http_on(Connection& c, std::string_view target, const Headers& headers = {}) {
  if (!c.send_all(request_text("GET", target, headers, {}, false))) return std::nullopt;
  std::string raw;
  for (;;) {
    if (std::optional<HttpResponse> r = parse_response(raw, false)) return r;
    if (!c.receive_some(raw)) return std::nullopt;
  }
}

// The server's end of a loopback TCP connection in this process (the server runs in-process):
// the socket whose local port is `server_port` and whose peer port is `client_port`; -1 if none.
int accepted_socket(int server_port, int client_port) {
  const auto port_of = [](const sockaddr_storage& addr) {
    if (addr.ss_family == AF_INET) return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port));
    if (addr.ss_family == AF_INET6) return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port));
    return 0;
  };
  for (int fd = 0; fd < 4096; ++fd) {
    sockaddr_storage local{};
    sockaddr_storage peer{};
    socklen_t local_len = sizeof local;
    socklen_t peer_len = sizeof peer;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) continue;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) continue;
    if (port_of(local) == server_port && port_of(peer) == client_port) return fd;
  }
  return -1;
}

std::string gunzip(const std::string& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  }
  const bool whole = rc == Z_STREAM_END && zs.avail_in == 0;
  inflateEnd(&zs);
  if (!whole) throw std::runtime_error("not a single complete gzip member");
  return out;
}

// ---------------------------------------------------------------------------------------------
// A hand-built snapshot, so that these tests do not depend on the registry.

Snapshot test_snapshot() {
  nle::Family events;
  events.name = "nixfleet_test_events";
  events.help = "Events seen by the test.";
  events.type = nle::MetricType::counter;
  events.label_names = {"kind"};
  events.series = {{{"alpha"}, 3, 1700000000}, {{"beta"}, 5, 1700000100}};
  nle::Family depth;
  depth.name = "nixfleet_test_queue_depth";
  depth.help = "Queue depth seen by the test.";
  depth.type = nle::MetricType::gauge;
  depth.series = {{{}, 7, 0}};
  return {events, depth};
}

std::string prometheus_text(const Snapshot& s) {
  return nle::render(s, {ExpositionFormat::prometheus, false});
}
std::string openmetrics_text(const Snapshot& s) {
  return nle::render(s, {ExpositionFormat::openmetrics, true});
}

ServerOptions loopback(std::string telemetry_path = "/metrics") {
  ServerOptions o;
  o.listen_addresses = {"127.0.0.1:0"};
  o.telemetry_path = std::move(telemetry_path);
  o.version = "1.2.3";
  o.revision = "abc123def456";
  return o;
}

// A started server on a free loopback port; stops when it goes out of scope.
struct RunningServer {
  explicit RunningServer(ServerOptions options = loopback(),
                         MetricsServer::SnapshotFn snapshot = test_snapshot,
                         MetricsServer::ResponseObserver observer = {},
                         MetricsServer::GenerationFn generation = {})
      : server(std::move(options), std::move(snapshot), std::move(observer), std::move(generation)) {
    const std::string error = server.bind();
    REQUIRE(error.empty());
    REQUIRE(server.port() > 0);
    server.start();
  }
  int port() const { return server.port(); }
  MetricsServer server;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// negotiate_format

TEST_CASE("negotiate_format picks OpenMetrics for the Accept header Prometheus 2.x sends",
          "[server][negotiate]") {
  CHECK(nle::negotiate_format(kPrometheusAccept) == ExpositionFormat::openmetrics);
}

TEST_CASE("negotiate_format picks Prometheus text when nothing asks for OpenMetrics",
          "[server][negotiate]") {
  CHECK(nle::negotiate_format("") == ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("*/*") == ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("text/plain") == ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("text/plain;version=0.0.4") == ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format(",, ,") == ExpositionFormat::prometheus);
}

TEST_CASE("negotiate_format picks OpenMetrics only when its q beats text/plain and */*",
          "[server][negotiate]") {
  CHECK(nle::negotiate_format("application/openmetrics-text") == ExpositionFormat::openmetrics);
  CHECK(nle::negotiate_format("application/openmetrics-text;q=0.5,text/plain;q=0.6") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("application/openmetrics-text;q=0.5,text/plain;q=0.5") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("text/plain;q=0.4,application/openmetrics-text;q=0.5") ==
        ExpositionFormat::openmetrics);
  CHECK(nle::negotiate_format("application/openmetrics-text;q=0.5,*/*") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("application/openmetrics-text;q=0.5,text/*;q=0.9") ==
        ExpositionFormat::prometheus);
}

TEST_CASE("negotiate_format never picks OpenMetrics at q=0", "[server][negotiate]") {
  CHECK(nle::negotiate_format("application/openmetrics-text;q=0") == ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("application/openmetrics-text;version=1.0.0;q=0.000,*/*;q=0") ==
        ExpositionFormat::prometheus);
}

TEST_CASE("negotiate_format ignores OpenMetrics versions it does not serve", "[server][negotiate]") {
  CHECK(nle::negotiate_format("application/openmetrics-text;version=2.0.0") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("application/openmetrics-text;version=2.0.0,text/plain;q=0.1") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("application/openmetrics-text;version=\"1.0.0\"") ==
        ExpositionFormat::openmetrics);
}

TEST_CASE("negotiate_format is case-insensitive and tolerates whitespace", "[server][negotiate]") {
  CHECK(nle::negotiate_format("Application/OpenMetrics-Text; Version=1.0.0") ==
        ExpositionFormat::openmetrics);
  CHECK(nle::negotiate_format("  application/openmetrics-text ;\tq=0.9 , TEXT/PLAIN ; Q=0.5 ") ==
        ExpositionFormat::openmetrics);
  CHECK(nle::negotiate_format("text/plain ; q=1 , application/openmetrics-text ; q=0.9") ==
        ExpositionFormat::prometheus);
}

TEST_CASE("negotiate_format drops elements with an invalid q-value", "[server][negotiate]") {
  CHECK(nle::negotiate_format("application/openmetrics-text;q=high") ==
        ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("application/openmetrics-text;q=1.5") == ExpositionFormat::prometheus);
  CHECK(nle::negotiate_format("text/plain;q=-1,application/openmetrics-text;q=0.2") ==
        ExpositionFormat::openmetrics);
}

// ---------------------------------------------------------------------------------------------
// accepts_gzip

TEST_CASE("accepts_gzip honours explicit gzip and q-values", "[server][gzip]") {
  CHECK(nle::accepts_gzip("gzip"));
  CHECK(nle::accepts_gzip("gzip, deflate, br"));
  CHECK(nle::accepts_gzip("br;q=1.0, gzip;q=0.8, *;q=0.1"));
  CHECK(nle::accepts_gzip("x-gzip"));
  CHECK_FALSE(nle::accepts_gzip(""));
  CHECK_FALSE(nle::accepts_gzip("identity"));
  CHECK_FALSE(nle::accepts_gzip("br, deflate"));
  CHECK_FALSE(nle::accepts_gzip("gzip;q=0"));
  CHECK_FALSE(nle::accepts_gzip("gzip;q=0.000"));
}

TEST_CASE("accepts_gzip falls back to * only without an explicit gzip", "[server][gzip]") {
  CHECK(nle::accepts_gzip("*"));
  CHECK(nle::accepts_gzip("identity, *;q=0.5"));
  CHECK_FALSE(nle::accepts_gzip("*;q=0"));
  CHECK_FALSE(nle::accepts_gzip("gzip;q=0, *"));
  CHECK(nle::accepts_gzip("gzip;q=0.1, *;q=0"));
}

TEST_CASE("accepts_gzip is case-insensitive and tolerates whitespace", "[server][gzip]") {
  CHECK(nle::accepts_gzip("GZIP"));
  CHECK(nle::accepts_gzip(" deflate ,\tGzip ; Q=0.5 "));
  CHECK_FALSE(nle::accepts_gzip(" gzip ; q = 0 "));
  CHECK_FALSE(nle::accepts_gzip("gzipx, xgzip"));
}

// ---------------------------------------------------------------------------------------------
// The server on loopback

TEST_CASE("metrics are served as Prometheus text by default", "[server][http]") {
  RunningServer s;
  const auto r = http(s.port(), "GET", "/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r->header("content-encoding").empty());
  CHECK(r->body == prometheus_text(test_snapshot()));
  CHECK(r->body.find("nixfleet_test_events") != std::string::npos);
}

TEST_CASE("metrics are served as OpenMetrics with _created when Prometheus asks for it",
          "[server][http]") {
  RunningServer s;
  const auto r = http(s.port(), "GET", "/metrics", {{"Accept", std::string(kPrometheusAccept)}});
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("content-type") == "application/openmetrics-text; version=1.0.0; charset=utf-8");
  CHECK(r->body == openmetrics_text(test_snapshot()));
  CHECK(r->body.size() >= 6);
  CHECK(r->body.substr(r->body.size() - 6) == "# EOF\n");
}

TEST_CASE("metrics ignore the query string", "[server][http]") {
  RunningServer s;
  const auto r = http(s.port(), "GET", "/metrics?name[]=up");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == prometheus_text(test_snapshot()));
}

TEST_CASE("gzip-accepting scrapes get exactly one gzip layer", "[server][http][gzip]") {
  RunningServer s;
  SECTION("Prometheus text") {
    const auto r = http(s.port(), "GET", "/metrics", {{"Accept-Encoding", "gzip"}});
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("content-encoding") == "gzip");
    CHECK(r->header_count("content-encoding") == 1);
    CHECK(r->header("vary") == "Accept-Encoding");
    CHECK(r->header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(gunzip(r->body) == prometheus_text(test_snapshot()));
  }
  SECTION("OpenMetrics, with the encodings Prometheus sends") {
    const auto r = http(s.port(), "GET", "/metrics",
                        {{"Accept", std::string(kPrometheusAccept)}, {"Accept-Encoding", "gzip"}});
    REQUIRE(r);
    CHECK(r->header("content-encoding") == "gzip");
    CHECK(gunzip(r->body) == openmetrics_text(test_snapshot()));
  }
  SECTION("brotli is never chosen, even when gzip is also offered") {
    const auto r = http(s.port(), "GET", "/metrics", {{"Accept-Encoding", "br, gzip"}});
    REQUIRE(r);
    CHECK(r->header("content-encoding") == "gzip");
    CHECK(gunzip(r->body) == prometheus_text(test_snapshot()));
  }
}

TEST_CASE("scrapes that refuse gzip get the plain body", "[server][http][gzip]") {
  RunningServer s;
  for (const char* encoding : {"br", "gzip;q=0", "identity", "deflate"}) {
    CAPTURE(encoding);
    const auto r = http(s.port(), "GET", "/metrics", {{"Accept-Encoding", encoding}});
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("content-encoding").empty());
    CHECK(r->body == prometheus_text(test_snapshot()));
  }
}

TEST_CASE("HEAD on the metrics path sends GET's headers without a body", "[server][http]") {
  RunningServer s;
  for (const bool gzip : {false, true}) {
    CAPTURE(gzip);
    Headers h;
    if (gzip) h.emplace_back("Accept-Encoding", "gzip");
    const auto get = http(s.port(), "GET", "/metrics", h);
    const auto head = http(s.port(), "HEAD", "/metrics", h);
    REQUIRE(get);
    REQUIRE(head);
    CHECK(head->status == 200);
    CHECK(head->body.empty());
    CHECK(head->header("content-type") == get->header("content-type"));
    CHECK(head->header("content-encoding") == get->header("content-encoding"));
    CHECK(head->header("content-length") == std::to_string(get->body.size()));
  }
}

TEST_CASE("the landing page names the exporter and links to the telemetry path",
          "[server][http]") {
  RunningServer s;
  const auto r = http(s.port(), "GET", "/");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("content-type") == "text/html; charset=utf-8");
  CHECK(r->header("content-encoding").empty());
  CHECK(r->body.find("nixfleet-log-exporter") != std::string::npos);
  CHECK(r->body.find("1.2.3") != std::string::npos);
  CHECK(r->body.find("abc123def456") != std::string::npos);
  CHECK(r->body.find("href=\"/metrics\"") != std::string::npos);
}

TEST_CASE("the landing page escapes HTML in the version", "[server][http]") {
  ServerOptions o = loopback();
  o.version = "<script>";
  RunningServer s(o);
  const auto r = http(s.port(), "GET", "/");
  REQUIRE(r);
  CHECK(r->body.find("<script>") == std::string::npos);
  CHECK(r->body.find("&lt;script&gt;") != std::string::npos);
}

TEST_CASE("/-/healthy answers 200 OK", "[server][http]") {
  RunningServer s;
  const auto r = http(s.port(), "GET", "/-/healthy");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "OK");
}

TEST_CASE("/-/ready answers 503 until set_ready(true)", "[server][http]") {
  RunningServer s;
  auto r = http(s.port(), "GET", "/-/ready");
  REQUIRE(r);
  CHECK(r->status == 503);
  s.server.set_ready(true);
  r = http(s.port(), "GET", "/-/ready");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == "OK");
  s.server.set_ready(false);
  r = http(s.port(), "HEAD", "/-/ready");
  REQUIRE(r);
  CHECK(r->status == 503);
}

TEST_CASE("unknown paths answer 404 with a text body", "[server][http]") {
  RunningServer s;
  for (const char* path : {"/nope", "/metrics/", "/metricsx", "/-/"}) {
    CAPTURE(path);
    const auto r = http(s.port(), "GET", path);
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(r->header("content-type") == "text/plain; charset=utf-8");
    CHECK_FALSE(r->body.empty());
  }
}

TEST_CASE("other methods on known paths answer 405 with Allow", "[server][http]") {
  RunningServer s;
  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    for (const char* path : {"/metrics", "/", "/-/healthy", "/-/ready"}) {
      CAPTURE(method, path);
      const auto r = http(s.port(), method, path);
      REQUIRE(r);
      CHECK(r->status == 405);
      CHECK(r->header("allow") == "GET, HEAD");
    }
  }
}

TEST_CASE("other methods on unknown paths answer 404", "[server][http]") {
  RunningServer s;
  const auto r = http(s.port(), "POST", "/nope");
  REQUIRE(r);
  CHECK(r->status == 404);
  CHECK(r->header("allow").empty());
  const auto with_body = http(s.port(), "PUT", "/nope", {}, "payload");
  REQUIRE(with_body);
  CHECK(with_body->status == 404);
}

TEST_CASE("a refused request body does not corrupt the next request on the connection",
          "[server][http]") {
  RunningServer s;
  Connection c("127.0.0.1", s.port());
  REQUIRE(c.valid());
  // Keep-alive: the body must be consumed so that the second request parses.
  REQUIRE(c.send_all(request_text("POST", "/metrics", {}, "a=1&b=2", false)));
  std::string received;
  std::optional<HttpResponse> first;
  while (!(first = parse_response(received, false)) && c.receive_some(received)) {
  }
  REQUIRE(first);
  CHECK(first->status == 405);
  CHECK(first->header("allow") == "GET, HEAD");
  CHECK(received.empty());
  REQUIRE(c.send_all(request_text("GET", "/-/healthy", {}, {}, true)));
  while (c.receive_some(received)) {
  }
  const auto second = parse_response(received, false);
  REQUIRE(second);
  CHECK(second->status == 200);
  CHECK(second->body == "OK");
}

TEST_CASE("a custom telemetry path serves the metrics and /metrics is then unknown",
          "[server][http]") {
  RunningServer s(loopback("/custom/telemetry"));
  auto r = http(s.port(), "GET", "/custom/telemetry");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == prometheus_text(test_snapshot()));
  r = http(s.port(), "GET", "/metrics");
  REQUIRE(r);
  CHECK(r->status == 404);
  r = http(s.port(), "GET", "/");
  REQUIRE(r);
  CHECK(r->body.find("href=\"/custom/telemetry\"") != std::string::npos);
  r = http(s.port(), "POST", "/custom/telemetry");
  REQUIRE(r);
  CHECK(r->status == 405);
}

TEST_CASE("a snapshot callback that throws gives a 500 and the server keeps serving",
          "[server][http]") {
  std::atomic<bool> fail{true};
  RunningServer s(loopback(), [&fail] {
    if (fail.load()) throw std::runtime_error("registry on fire");
    return test_snapshot();
  });
  auto r = http(s.port(), "GET", "/metrics", {{"Accept-Encoding", "gzip"}});
  REQUIRE(r);
  CHECK(r->status == 500);
  CHECK(r->header("content-encoding").empty());
  fail.store(false);
  r = http(s.port(), "GET", "/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("the observer sees each response's status code once", "[server][http]") {
  std::mutex m;
  std::map<int, int> codes;
  RunningServer s(loopback(), test_snapshot, [&](int status) {
    std::lock_guard<std::mutex> lock(m);
    ++codes[status];
  });
  REQUIRE(http(s.port(), "GET", "/metrics"));
  REQUIRE(http(s.port(), "HEAD", "/metrics"));
  REQUIRE(http(s.port(), "GET", "/nope"));
  REQUIRE(http(s.port(), "POST", "/metrics"));
  REQUIRE(http(s.port(), "GET", "/-/ready"));
  // The observer runs after the response is written; give the server thread a moment.
  const std::map<int, int> want{{200, 2}, {404, 1}, {405, 1}, {503, 1}};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::map<int, int> seen;
  do {
    {
      std::lock_guard<std::mutex> lock(m);
      seen = codes;
    }
    if (seen == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < deadline);
  CHECK(seen == want);
}

TEST_CASE("a port already in use gives a bind error naming the address", "[server][bind]") {
  MetricsServer first(loopback(), test_snapshot);
  REQUIRE(first.bind().empty());
  ServerOptions o = loopback();
  o.listen_addresses = {"127.0.0.1:" + std::to_string(first.port())};
  MetricsServer second(o, test_snapshot);
  CHECK(second.bind() == "cannot listen on " + o.listen_addresses[0] + ": Address already in use");
}

TEST_CASE("a bound but never started server releases its port", "[server][bind]") {
  int port = 0;
  {
    MetricsServer first(loopback(), test_snapshot);
    REQUIRE(first.bind().empty());
    port = first.port();
  }
  ServerOptions o = loopback();
  o.listen_addresses = {"127.0.0.1:" + std::to_string(port)};
  MetricsServer again(o, test_snapshot);
  CHECK(again.bind().empty());
  CHECK(again.port() == port);
}

TEST_CASE("malformed listen addresses give an error instead of throwing", "[server][bind]") {
  for (const char* address : {"nonsense", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:65536",
                              "::1:9761", "[::1]9761", "[]:9761", "127.0.0.1:-1"}) {
    CAPTURE(address);
    ServerOptions o = loopback();
    o.listen_addresses = {address};
    MetricsServer s(o, test_snapshot);
    const std::string error = s.bind();
    CHECK(error.find(std::string("cannot listen on ") + address + ": ") == 0);
    s.start();  // does nothing without a bound socket
    s.stop();
  }
}

TEST_CASE("a telemetry path without a leading slash is refused at bind", "[server][bind]") {
  MetricsServer s(loopback("metrics"), test_snapshot);
  CHECK_FALSE(s.bind().empty());
}

TEST_CASE("an IPv6 listen address in brackets is served", "[server][bind]") {
  ServerOptions o = loopback();
  o.listen_addresses = {"[::1]:0"};
  MetricsServer s(o, test_snapshot);
  const std::string error = s.bind();
  if (!error.empty()) {
    WARN("no IPv6 loopback here: " << error);
    return;
  }
  s.start();
  const auto r = http(s.port(), "GET", "/-/healthy", {}, {}, "::1");
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("stop closes the listener and is idempotent", "[server][lifecycle]") {
  RunningServer s;
  const int port = s.port();
  REQUIRE(http(port, "GET", "/-/healthy"));
  s.server.stop();
  CHECK_FALSE(http(port, "GET", "/-/healthy"));
  s.server.stop();
}

namespace {

// Whether a scrape's body is a whole exposition of test_snapshot()'s families (gunzipped when
// `gzip`; ending in "# EOF" when `openmetrics`), whatever values it shows.
bool is_whole_exposition(const HttpResponse& r, bool gzip, bool openmetrics) {
  std::string body;
  try {
    body = gzip ? gunzip(r.body) : r.body;
  } catch (const std::exception&) {
    return false;
  }
  return body.find("nixfleet_test_events") != std::string::npos &&
         body.find("nixfleet_test_queue_depth") != std::string::npos &&
         (!openmetrics || (body.size() >= 6 && body.substr(body.size() - 6) == "# EOF\n"));
}

}  // namespace

TEST_CASE("four threads scraping while the snapshot data changes all get whole responses",
          "[server][concurrency]") {
  std::mutex m;
  Snapshot shared = test_snapshot();
  std::atomic<int> observed{0};
  RunningServer s(
      loopback(),
      [&] {
        std::lock_guard<std::mutex> lock(m);
        return shared;
      },
      [&](int) { observed.fetch_add(1); });

  std::atomic<bool> done{false};
  std::thread mutator([&] {
    unsigned long i = 0;
    while (!done.load()) {
      {
        std::lock_guard<std::mutex> lock(m);
        shared[0].series[0].value += 1;
        shared[1].series[0].value = static_cast<double>(i % 100);
        if (i % 50 == 0 && shared[0].series.size() < 20) {
          shared[0].series.push_back({{"k" + std::to_string(100 + i)}, 1, 1700000000});
        }
      }
      ++i;
      std::this_thread::yield();
    }
  });

  constexpr int kThreads = 4;
  constexpr int kScrapes = 200;
  std::atomic<int> good{0};
  std::vector<std::thread> scrapers;
  for (int t = 0; t < kThreads; ++t) {
    scrapers.emplace_back([&, t] {
      for (int i = 0; i < kScrapes; ++i) {
        const bool gzip = (i + t) % 2 == 0;
        const bool openmetrics = (i + t) % 3 == 0;
        Headers h;
        if (gzip) h.emplace_back("Accept-Encoding", "gzip");
        if (openmetrics) h.emplace_back("Accept", std::string(kPrometheusAccept));
        const auto r = http(s.port(), "GET", "/metrics", h);
        if (!r || r->status != 200) continue;
        if (is_whole_exposition(*r, gzip, openmetrics)) good.fetch_add(1);
      }
    });
  }
  for (auto& t : scrapers) t.join();
  done.store(true);
  mutator.join();

  CHECK(good.load() == kThreads * kScrapes);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (observed.load() < kThreads * kScrapes && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(observed.load() == kThreads * kScrapes);
}

// ---------------------------------------------------------------------------------------------
// Render cache and TCP

namespace {

// test_snapshot() with the first counter set to `value`.
Snapshot snapshot_with(double value) {
  Snapshot s = test_snapshot();
  s[0].series[0].value = value;
  return s;
}

// Hands out snapshot_with(value) and counts the calls: what a registry behind a lock would do.
struct CountingSource {
  std::mutex m;
  double value = 1;
  std::uint64_t generation = 0;
  int snapshots = 0;

  Snapshot snapshot() {
    std::lock_guard<std::mutex> lock(m);
    ++snapshots;
    return snapshot_with(value);
  }
  std::uint64_t current_generation() {
    std::lock_guard<std::mutex> lock(m);
    return generation;
  }
  void bump(double new_value) {
    std::lock_guard<std::mutex> lock(m);
    value = new_value;
    ++generation;
  }
  int snapshot_count() {
    std::lock_guard<std::mutex> lock(m);
    return snapshots;
  }
};

ServerOptions cached(std::chrono::milliseconds max_stale, std::chrono::milliseconds max_unchanged_age) {
  ServerOptions o = loopback();
  o.max_stale = max_stale;
  o.max_unchanged_age = max_unchanged_age;
  o.max_stale_render_factor = 0;  // the tests that want it set it
  return o;
}

RunningServer cached_server(CountingSource& source, ServerOptions options) {
  return RunningServer(
      std::move(options), [&source] { return source.snapshot(); }, {},
      [&source] { return source.current_generation(); });
}

bool shows(const std::optional<HttpResponse>& r, double value) {
  const std::string sample = "nixfleet_test_events_total{kind=\"alpha\"} " + std::to_string(static_cast<int>(value)) + "\n";
  return r && r->status == 200 && r->body.find(sample) != std::string::npos;
}

constexpr std::chrono::hours kForever{24};

}  // namespace

TEST_CASE("without a generation callback every scrape takes a snapshot", "[server][cache]") {
  CountingSource source;
  RunningServer s(loopback(), [&source] { return source.snapshot(); });
  for (int i = 0; i < 5; ++i) REQUIRE(http(s.port(), "GET", "/metrics"));
  CHECK(source.snapshot_count() == 5);
  CHECK(s.server.render_stats().renders == 5);
}

TEST_CASE("a cached body is reused while the generation stands still", "[server][cache]") {
  CountingSource source;
  // max_stale 0: every reuse below is allowed only because the generation did not move.
  RunningServer s = cached_server(source, cached(std::chrono::milliseconds(0), kForever));
  const std::string first = http(s.port(), "GET", "/metrics")->body;
  CHECK(first == prometheus_text(snapshot_with(1)));
  for (int i = 0; i < 20; ++i) {
    const auto r = http(s.port(), i % 2 == 0 ? "GET" : "HEAD", "/metrics");
    REQUIRE(r);
    CHECK(r->status == 200);
    if (i % 2 == 0) CHECK(r->body == first);
  }
  CHECK(source.snapshot_count() == 1);
  // Each exposition format has its own cached body.
  for (int i = 0; i < 5; ++i) {
    const auto r = http(s.port(), "GET", "/metrics", {{"Accept", std::string(kPrometheusAccept)}});
    REQUIRE(r);
    CHECK(r->body == openmetrics_text(snapshot_with(1)));
  }
  CHECK(source.snapshot_count() == 2);
  CHECK(s.server.render_stats().renders == 2);
}

TEST_CASE("a generation change is visible once max_stale has passed", "[server][cache]") {
  CountingSource source;
  RunningServer s = cached_server(source, cached(std::chrono::milliseconds(30), kForever));
  REQUIRE(shows(http(s.port(), "GET", "/metrics"), 1));
  source.bump(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  CHECK(shows(http(s.port(), "GET", "/metrics"), 2));
  CHECK(source.snapshot_count() == 2);
}

TEST_CASE("with max_stale 0 the next scrape after a generation change shows it", "[server][cache]") {
  CountingSource source;
  RunningServer s = cached_server(source, cached(std::chrono::milliseconds(0), kForever));
  for (int v = 1; v <= 5; ++v) {
    if (v > 1) source.bump(v);
    CHECK(shows(http(s.port(), "GET", "/metrics"), v));
    CHECK(shows(http(s.port(), "GET", "/metrics"), v));
  }
  CHECK(source.snapshot_count() == 5);
}

TEST_CASE("within max_stale a body is reused even though the generation moved", "[server][cache]") {
  CountingSource source;
  // The largest setting must not overflow when compared with a time difference.
  constexpr auto kMax = std::chrono::milliseconds::max();
  RunningServer s = cached_server(source, cached(kMax, kMax));
  REQUIRE(shows(http(s.port(), "GET", "/metrics"), 1));
  source.bump(2);
  CHECK(shows(http(s.port(), "GET", "/metrics"), 1));
  CHECK(source.snapshot_count() == 1);
}

TEST_CASE("a slow render stretches max_stale to a multiple of its cost", "[server][cache]") {
  CountingSource source;
  ServerOptions options = cached(std::chrono::milliseconds(0), kForever);
  options.max_stale_render_factor = 2;
  RunningServer s(
      std::move(options),
      [&source] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        return source.snapshot();
      },
      {}, [&source] { return source.current_generation(); });
  REQUIRE(shows(http(s.port(), "GET", "/metrics"), 1));  // cost >= 100 ms: reused for >= 200 ms
  source.bump(2);
  CHECK(shows(http(s.port(), "GET", "/metrics"), 1));
  CHECK(source.snapshot_count() == 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!shows(http(s.port(), "GET", "/metrics"), 2) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(shows(http(s.port(), "GET", "/metrics"), 2));
}

TEST_CASE("an unchanged body is rendered again after max_unchanged_age", "[server][cache]") {
  CountingSource source;
  RunningServer s = cached_server(source, cached(std::chrono::milliseconds(0), std::chrono::milliseconds(30)));
  REQUIRE(http(s.port(), "GET", "/metrics"));
  std::this_thread::sleep_for(std::chrono::milliseconds(40));
  REQUIRE(http(s.port(), "GET", "/metrics"));
  CHECK(source.snapshot_count() == 2);
}

TEST_CASE("the gzip form of a cached body is computed once", "[server][cache][gzip]") {
  CountingSource source;
  RunningServer s = cached_server(source, cached(kForever, kForever));
  const std::string plain = http(s.port(), "GET", "/metrics")->body;
  CHECK(s.server.render_stats().gzips == 0);  // lazily: only when someone asks for gzip
  for (int i = 0; i < 10; ++i) {
    const auto r = http(s.port(), i % 3 == 0 ? "HEAD" : "GET", "/metrics", {{"Accept-Encoding", "gzip"}});
    REQUIRE(r);
    CHECK(r->header("content-encoding") == "gzip");
    CHECK(r->header_count("content-encoding") == 1);
    if (i % 3 != 0) CHECK(gunzip(r->body) == plain);
  }
  CHECK(s.server.render_stats().gzips == 1);
  CHECK(s.server.render_stats().renders == 1);
  // A plain scrape of the same body still gets it plain.
  const auto r = http(s.port(), "GET", "/metrics");
  REQUIRE(r);
  CHECK(r->header("content-encoding").empty());
  CHECK(r->body == plain);
}

TEST_CASE("a snapshot callback that throws is not cached", "[server][cache]") {
  std::atomic<bool> fail{true};
  std::atomic<int> calls{0};
  RunningServer s(
      cached(kForever, kForever),
      [&] {
        calls.fetch_add(1);
        if (fail.load()) throw std::runtime_error("registry on fire");
        return test_snapshot();
      },
      {}, [] { return std::uint64_t{7}; });
  auto r = http(s.port(), "GET", "/metrics");
  REQUIRE(r);
  CHECK(r->status == 500);
  fail.store(false);
  r = http(s.port(), "GET", "/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == prometheus_text(test_snapshot()));
  CHECK(calls.load() == 2);
}

TEST_CASE("concurrent scrapes that need a fresh body wait for one render", "[server][cache][concurrency]") {
  std::atomic<int> snapshots{0};
  // The render is slow, so the other scrapes arrive while it runs and must wait for it.
  RunningServer s(
      cached(std::chrono::milliseconds(0), kForever),
      [&] {
        snapshots.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        return test_snapshot();
      },
      {}, [] { return std::uint64_t{1}; });
  constexpr int kClients = 4;  // the server's thread count
  std::atomic<int> ready{0};
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kClients) std::this_thread::yield();
      Headers h;
      if (t % 2 == 0) h.emplace_back("Accept-Encoding", "gzip");
      const auto r = http(s.port(), "GET", "/metrics", h);
      if (!r || r->status != 200) return;
      try {
        if ((t % 2 == 0 ? gunzip(r->body) : r->body) == prometheus_text(test_snapshot())) good.fetch_add(1);
      } catch (const std::exception&) {
      }
    });
  }
  for (auto& c : clients) c.join();
  CHECK(good.load() == kClients);
  CHECK(snapshots.load() == 1);
  CHECK(s.server.render_stats().gzips == 1);
}

namespace {

// A source whose snapshots can be held until the test releases them, and which says when a
// snapshot has begun, so a test can send a second scrape while the first is still refreshing.
struct HeldSource {
  CountingSource counts;
  std::mutex m;
  std::condition_variable released_cv;
  bool hold = false;
  int begun = 0;

  Snapshot snapshot() {
    {
      std::unique_lock lock(m);
      ++begun;
      released_cv.notify_all();
      released_cv.wait(lock, [&] { return !hold; });
    }
    return counts.snapshot();
  }
  void set_hold(bool on) {
    {
      std::lock_guard lock(m);
      hold = on;
    }
    released_cv.notify_all();
  }
  bool wait_until_begun(int n) {
    std::unique_lock lock(m);
    return released_cv.wait_for(lock, std::chrono::seconds(10), [&] { return begun >= n; });
  }
};

RunningServer held_server(HeldSource& source, std::chrono::milliseconds max_stale) {
  return RunningServer(
      cached(max_stale, kForever), [&source] { return source.snapshot(); }, {},
      [&source] { return source.counts.current_generation(); });
}

}  // namespace

TEST_CASE("while one scrape refreshes, others get the previous body if it is at most 2 max_stale old",
          "[server][cache][concurrency]") {
  HeldSource source;
  RunningServer s = held_server(source, std::chrono::milliseconds(1500));
  REQUIRE(shows(http(s.port(), "GET", "/metrics"), 1));
  source.counts.bump(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(1600));  // older than S, younger than 2S
  source.set_hold(true);
  std::optional<HttpResponse> refreshing;
  std::thread first([&] { refreshing = http(s.port(), "GET", "/metrics"); });
  REQUIRE(source.wait_until_begun(2));
  // The refresh cannot finish before the release below, so this got the previous body.
  const auto during = http(s.port(), "GET", "/metrics");
  source.set_hold(false);
  first.join();
  CHECK(shows(during, 1));
  CHECK(shows(refreshing, 2));
  CHECK(source.counts.snapshot_count() == 2);
}

TEST_CASE("while one scrape refreshes, others wait for it if the previous body is older than 2 max_stale",
          "[server][cache][concurrency]") {
  HeldSource source;
  RunningServer s = held_server(source, std::chrono::milliseconds(100));
  REQUIRE(shows(http(s.port(), "GET", "/metrics"), 1));
  source.counts.bump(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // older than 2S
  source.set_hold(true);
  std::optional<HttpResponse> refreshing;
  std::thread first([&] { refreshing = http(s.port(), "GET", "/metrics"); });
  REQUIRE(source.wait_until_begun(2));
  std::atomic<bool> second_done{false};
  std::optional<HttpResponse> waiting;
  std::thread second([&] {
    waiting = http(s.port(), "GET", "/metrics");
    second_done.store(true);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Served the old body, it would be back by now; waiting, it cannot be before the release.
  CHECK_FALSE(second_done.load());
  source.set_hold(false);
  first.join();
  second.join();
  CHECK(shows(waiting, 2));
  CHECK(shows(refreshing, 2));
  CHECK(source.counts.snapshot_count() == 2);  // the waiting scrape took the refreshed body
}

TEST_CASE("a kept-alive connection serves many scrapes before the server closes it", "[server][http]") {
  CountingSource source;
  RunningServer s = cached_server(source, cached(kForever, kForever));
  Connection c("127.0.0.1", s.port());
  // httplib's own default closes after 5; reconnecting that often halves the rate of large scrapes.
  for (int i = 0; i < 50; ++i) {
    const auto r = http_on(c, "/metrics");
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("connection") != "close");
  }
}

TEST_CASE("cached scrapes while the generation moves all get whole, current-enough responses",
          "[server][cache][concurrency]") {
  CountingSource source;
  RunningServer s = cached_server(source, cached(std::chrono::milliseconds(1), std::chrono::milliseconds(20)));
  std::atomic<bool> done{false};
  std::thread mutator([&] {
    double v = 1;
    while (!done.load()) {
      source.bump(++v);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  constexpr int kThreads = 4;
  constexpr int kScrapes = 100;
  std::atomic<int> good{0};
  std::vector<std::thread> scrapers;
  for (int t = 0; t < kThreads; ++t) {
    scrapers.emplace_back([&, t] {
      std::unique_ptr<Connection> c;
      for (int i = 0; i < kScrapes; ++i) {
        // The server may close a kept-alive connection; open another then.
        if (!c) c = std::make_unique<Connection>("127.0.0.1", s.port());
        const bool gzip = (i + t) % 2 == 0;
        const bool openmetrics = (i + t) % 3 == 0;
        Headers h;
        if (gzip) h.emplace_back("Accept-Encoding", "gzip");
        if (openmetrics) h.emplace_back("Accept", std::string(kPrometheusAccept));
        const auto r = http_on(*c, "/metrics", h);
        if (!r || r->header("connection") == "close") c.reset();
        if (!r || r->status != 200) continue;
        if (is_whole_exposition(*r, gzip, openmetrics)) good.fetch_add(1);
      }
    });
  }
  for (auto& t : scrapers) t.join();
  done.store(true);
  mutator.join();
  CHECK(good.load() == kThreads * kScrapes);
}

TEST_CASE("a response is corked while it is written and uncorked once it is out", "[server][tcp]") {
  std::atomic<int> server_port{0};
  std::atomic<int> client_port{0};
  std::atomic<int> corked_while_rendering{-1};
  RunningServer s(loopback(), [&] {
    // The snapshot is taken inside the handler, after the cork and before httplib writes.
    const int fd = accepted_socket(server_port.load(), client_port.load());
    int cork = -1;
    socklen_t len = sizeof cork;
    if (fd >= 0 && ::getsockopt(fd, IPPROTO_TCP, TCP_CORK, &cork, &len) != 0) cork = -1;
    corked_while_rendering.store(cork);
    return test_snapshot();
  });
  server_port.store(s.port());
  // Each request must cork its own connection's socket: two connections taking turns, then a
  // new one after the first is closed (its descriptor number may be reused).
  const auto scrape_and_check = [&](Connection& c) {
    client_port.store(c.local_port());
    corked_while_rendering.store(-1);
    const auto r = http_on(c, "/metrics");
    REQUIRE(r);
    CHECK(r->body == prometheus_text(test_snapshot()));
    CHECK(corked_while_rendering.load() == 1);
    const int fd = accepted_socket(s.port(), c.local_port());
    REQUIRE(fd >= 0);
    int cork = -1;
    socklen_t len = sizeof cork;
    REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_CORK, &cork, &len) == 0);
    CHECK(cork == 0);
  };
  auto first = std::make_unique<Connection>("127.0.0.1", s.port());
  Connection second("127.0.0.1", s.port());
  REQUIRE(first->valid());
  REQUIRE(second.valid());
  for (int i = 0; i < 2; ++i) {
    scrape_and_check(*first);
    scrape_and_check(second);
  }
  first.reset();
  Connection third("127.0.0.1", s.port());
  REQUIRE(third.valid());
  scrape_and_check(third);
  scrape_and_check(third);
}

TEST_CASE("accepted connections have TCP_NODELAY, so kept-alive scrapes do not wait for an ACK",
          "[server][tcp]") {
  RunningServer s;
  Connection c("127.0.0.1", s.port());
  REQUIRE(c.valid());
  REQUIRE(http_on(c, "/metrics"));  // the server has accepted it and keeps it open
  const int fd = accepted_socket(s.port(), c.local_port());
  REQUIRE(fd >= 0);
  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len) == 0);
  CHECK(nodelay != 0);
  // And the effect: later requests on the connection do not take a delayed ACK's ~40 ms.
  auto best = std::chrono::steady_clock::duration::max();
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(http_on(c, "/metrics"));
    best = std::min(best, std::chrono::steady_clock::now() - start);
  }
  CHECK(best < std::chrono::milliseconds(20));
}
