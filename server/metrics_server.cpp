// HTTP serving with cpp-httplib 0.11 (Debian's split build). Notes on how 0.11 behaves, verified
// with real requests, that shape this file:
//  - Response::set_content() bodies are compressed by httplib itself (brotli first, then gzip,
//    by substring match on Accept-Encoding, ignoring q=0) when the Content-Type starts with
//    "text/", and it does so even if the handler already set Content-Encoding (double encoding).
//    Bodies given through set_content_provider(length, ...) are never compressed. So every body
//    here goes through a length-based content provider and the only gzip layer is ours.
//  - A Range header is applied to whatever the handler returns. Leaving a 2xx status at -1 lets
//    httplib answer 206 with Content-Range; an explicit 200 would send a slice under 200.
//  - The pre-routing handler runs before a request body is read. Requests that carry a body are
//    left to httplib (which reads it, bounded by the payload limit) and reach the same dispatch
//    through catch-all handlers, so an unread body never poisons a keep-alive connection.
//  - The logger runs once per response written (including httplib's own 400/413/414), after the
//    body: that is where the ResponseObserver is called.
//  - Connections, threads, TLS and deadlines are not httplib's here: a ConnectionGuard calls
//    Server::process_request() on complete requests only (connection_guard.h says why).
#include "server/metrics_server.h"

#include "server/basic_auth.h"
#include "server/connection_guard.h"
#include "server/tls_context.h"
#include "server/web_config.h"

#define ZLIB_CONST
#include <httplib.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace nle {
namespace {

constexpr std::size_t kMaxRequestBody = 65536;  // we accept no bodies; this bounds the discard
constexpr std::string_view kAllow = "GET, HEAD";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr std::string_view kHtmlContentType = "text/html; charset=utf-8";
// The cache's time settings are clamped to this, so that comparing them with a time difference
// cannot overflow.
constexpr std::chrono::steady_clock::duration kMaxSetting = std::chrono::hours(24 * 365);

// ---------------------------------------------------------------------------------------------
// Header parsing (RFC 9110 lists: elements separated by commas, parameters by semicolons).

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Splits at `sep` outside double-quoted strings (a backslash escapes inside quotes).
std::vector<std::string_view> split_unquoted(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  parts.push_back(s.substr(start));
  return parts;
}

std::string unquote(std::string_view v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i + 1 < v.size(); ++i) {
    if (v[i] == '\\' && i + 2 < v.size()) ++i;
    out.push_back(v[i]);
  }
  return out;
}

// qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ), read leniently as a number in
// [0, 1]; anything else is invalid.
std::optional<double> parse_qvalue(std::string_view v) {
  v = trim(v);
  double q = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), q);
  if (v.empty() || ec != std::errc{} || end != v.data() + v.size() || !std::isfinite(q) || q < 0 ||
      q > 1) {
    return std::nullopt;
  }
  return q;
}

struct ListElement {
  std::string value;  // lower-cased media range or coding
  std::optional<std::string> version;
  double q = 1;
};

// Parses "a;q=0.5;version=1, b" into elements; elements that are empty or carry an invalid
// q-value are dropped.
std::vector<ListElement> parse_list(std::string_view header) {
  std::vector<ListElement> out;
  for (const std::string_view element : split_unquoted(header, ',')) {
    const std::vector<std::string_view> parts = split_unquoted(element, ';');
    ListElement e;
    e.value = lower(trim(parts.front()));
    if (e.value.empty()) continue;
    bool valid = true;
    for (std::size_t i = 1; i < parts.size(); ++i) {
      const std::string_view param = trim(parts[i]);
      const std::size_t eq = param.find('=');
      const std::string name = lower(trim(param.substr(0, eq)));
      const std::string_view value = eq == std::string_view::npos ? "" : trim(param.substr(eq + 1));
      if (name == "q") {
        const std::optional<double> q = parse_qvalue(value);
        if (!q) {
          valid = false;
          break;
        }
        e.q = *q;
        // Parameters after q are accept-ext, not media type parameters.
        break;
      }
      if (name == "version") e.version = unquote(value);
    }
    if (valid) out.push_back(std::move(e));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Response bodies.

// One gzip member (RFC 1952) of `in`; nullopt if zlib fails (the caller then sends it plain).
// Level 1: on a 10k-series exposition (940 KiB) it is 2.5x faster than the default level 6 for
// a body 13% larger (56 KiB instead of 49 KiB), and a body is compressed once per render.
// The output grows in steps as deflate fills it: a buffer of deflateBound() bytes would be as
// large as the page and stay that large in the cache, though the compressed body is a fraction of it.
std::optional<std::string> gzip(std::string_view in) {
  if (in.size() > UINT_MAX) return std::nullopt;
  z_stream zs{};
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return std::nullopt;
  }
  constexpr std::size_t kStep = 64 * 1024;
  std::string buffer;
  zs.next_in = reinterpret_cast<const Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  int status = Z_OK;
  while (status == Z_OK) {
    const std::size_t used = buffer.size();
    // Never less than a step, and about an eighth of the body: few copies on large pages.
    buffer.resize(used + std::max(kStep, in.size() / 8));
    zs.next_out = reinterpret_cast<Bytef*>(buffer.data() + used);
    zs.avail_out = static_cast<uInt>(buffer.size() - used);
    status = deflate(&zs, Z_FINISH);
    buffer.resize(buffer.size() - zs.avail_out);
  }
  deflateEnd(&zs);
  if (status != Z_STREAM_END) return std::nullopt;
  buffer.shrink_to_fit();
  return buffer;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string landing_page(const ServerOptions& o) {
  const std::string path = html_escape(o.telemetry_path);
  return "<!DOCTYPE html>\n"
         "<html lang=\"en\">\n"
         "<head><meta charset=\"utf-8\"><title>nixfleet-log-exporter</title></head>\n"
         "<body>\n"
         "<h1>nixfleet-log-exporter</h1>\n"
         "<p>Version " + html_escape(o.version) + ", revision " + html_escape(o.revision) + "</p>\n"
         "<ul>\n"
         "<li><a href=\"" + path + "\">" + path + "</a></li>\n"
         "<li><a href=\"/-/healthy\">/-/healthy</a></li>\n"
         "<li><a href=\"/-/ready\">/-/ready</a></li>\n"
         "</ul>\n"
         "</body>\n"
         "</html>\n";
}

// Sets status, headers and body. A 2xx status is left to httplib (see the file comment on
// Range); the body goes through a content provider so httplib never compresses it.
void respond(httplib::Response& res, int status, std::string_view content_type,
             std::shared_ptr<const std::string> shared) {
  res.status = status >= 200 && status < 300 ? -1 : status;
  if (shared->empty()) {
    res.set_content(std::string(), std::string(content_type));
    return;
  }
  res.set_content_provider(shared->size(), std::string(content_type),
                           [shared](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                             if (offset > shared->size()) return false;
                             length = std::min(length, shared->size() - offset);
                             return sink.write(shared->data() + offset, length);
                           });
}

void respond(httplib::Response& res, int status, std::string_view content_type, std::string body) {
  respond(res, status, content_type, std::make_shared<const std::string>(std::move(body)));
}

// Joins every instance of a list header (a client may split one over several lines).
std::string joined_header(const httplib::Request& req, const char* name) {
  std::string out;
  const std::size_t n = req.get_header_value_count(name);
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) out += ", ";
    out += req.get_header_value(name, i);
  }
  return out;
}

// Whether httplib would read a body for this request (it does for these methods only).
bool carries_body(const httplib::Request& req) {
  const bool body_method = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                           req.method == "DELETE";
  if (!body_method) return false;
  if (req.has_header("Transfer-Encoding")) return true;
  const std::string length = req.get_header_value("Content-Length");
  return !length.empty() && length.find_first_not_of('0') != std::string::npos;
}

// ---------------------------------------------------------------------------------------------
// Listen address.

struct HostPort {
  std::string host;
  int port = 0;
};

std::optional<HostPort> parse_listen_address(std::string_view address) {
  HostPort hp;
  std::string_view port;
  if (!address.empty() && address.front() == '[') {
    const std::size_t close = address.find(']');
    if (close == std::string_view::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return std::nullopt;
    }
    hp.host = std::string(address.substr(1, close - 1));
    if (hp.host.empty()) return std::nullopt;
    port = address.substr(close + 2);
  } else {
    const std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    hp.host = std::string(address.substr(0, colon));
    if (hp.host.find(':') != std::string::npos) return std::nullopt;  // IPv6 needs brackets
    port = address.substr(colon + 1);
  }
  if (hp.host.empty()) hp.host = "0.0.0.0";  // ":9761": every IPv4 interface
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), hp.port);
  if (ec != std::errc{} || end != port.data() + port.size() || hp.port > 65535) return std::nullopt;
  return hp;
}

// Binds and listens on one address: every address getaddrinfo gives is tried, the first that
// binds is kept (IPv6 sockets also take IPv4, as httplib and Go do). SO_REUSEADDR only: httplib's
// default SO_REUSEPORT would let a second exporter bind the same port silently.
int listen_on(const HostPort& hp, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  const std::string service = std::to_string(hp.port);
  if (const int rc = ::getaddrinfo(hp.host.c_str(), service.c_str(), &hints, &result); rc != 0) {
    error = ::gai_strerror(rc);
    return -1;
  }
  int bound = -1;
  error = "no address to bind";
  for (addrinfo* ai = result; ai != nullptr && bound < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (ai->ai_family == AF_INET6) {
      int no = 0;
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
    }
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, SOMAXCONN) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      continue;
    }
    bound = fd;
  }
  ::freeaddrinfo(result);
  return bound;
}

// The numeric host and port a listening socket is bound to.
MetricsServer::Endpoint endpoint_of(int fd) {
  MetricsServer::Endpoint e;
  sockaddr_storage addr{};
  socklen_t length = sizeof addr;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) return e;
  char host[NI_MAXHOST] = {};
  char service[NI_MAXSERV] = {};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), length, host, sizeof host, service, sizeof service,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
    e.host = host;
    e.port = std::atoi(service);
  }
  return e;
}

// httplib's request handling, reachable from a ConnectionGuard: process_request is protected.
// httplib also stops writing a response body as soon as it believes its own listen loop is not
// running (is_running()), so it is given a loop that never accepts anything: its "listening
// socket" is the read end of a pipe, which it only ever waits on, until a byte written to the
// pipe makes its accept() fail and the loop end.
class RequestProcessor final : public httplib::Server {
 public:
  using httplib::Server::process_request;

  ~RequestProcessor() override { stop_idle_loop(); }

  // Returns false if the loop could not be started.
  bool start_idle_loop() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return false;
    svr_sock_ = fds[0];
    wake_ = fds[1];
    new_task_queue = [] { return new NoTasks; };
    set_idle_interval(3600, 0);  // wait on the pipe, never call accept() before it is written
    loop_ = std::thread([this] { listen_after_bind(); });
    while (!is_running() && !loop_ended_()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return is_running();
  }
  void stop_idle_loop() {
    if (!loop_.joinable()) return;
    const char byte = 0;
    [[maybe_unused]] const ssize_t w = ::write(wake_, &byte, 1);
    loop_.join();
    ::close(wake_);
  }

 private:
  struct NoTasks final : httplib::TaskQueue {
    void enqueue(std::function<void()>) override {}
    void shutdown() override {}
  };
  bool loop_ended_() const { return svr_sock_ == INVALID_SOCKET; }
  std::thread loop_;
  int wake_ = -1;
};

// exporter-toolkit's rate_limit: a token bucket of `burst` tokens refilled at one per interval
// (Go's rate.NewLimiter(rate.Every(interval), burst)); it starts full. Thread-safe.
class RateLimiter {
 public:
  bool allow(const RateLimit& limit) {
    if (limit.interval.count() <= 0) return true;
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (limit.interval != current_.interval || limit.burst != current_.burst) {
      current_ = limit;  // a changed config starts a full bucket
      tokens_ = limit.burst;
      last_ = now;
    }
    tokens_ = std::min<double>(limit.burst, tokens_ + std::chrono::duration<double>(now - last_) /
                                                          std::chrono::duration<double>(limit.interval));
    last_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  std::mutex mutex_;
  RateLimit current_;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point last_;
};

// One rendered body of the render cache. Immutable once published, except for its gzip form,
// which the first gzip request computes under `gzip_mutex` (later ones wait for it).
struct RenderedBody {
  std::shared_ptr<const std::string> plain;
  std::uint64_t generation = 0;
  std::chrono::steady_clock::time_point rendered_at;  // when `generation` was read
  // What making it cost: snapshot and render, plus gzip once done.
  std::atomic<std::chrono::steady_clock::rep> cost{0};

  // The gzip form; null with `gzip_done` when zlib failed (the body is then sent plain).
  std::shared_ptr<const std::string> gzipped(std::atomic<std::uint64_t>& gzips) {
    std::lock_guard lock(gzip_mutex);
    if (!gzip_done) {
      gzips.fetch_add(1, std::memory_order_relaxed);
      const auto start = std::chrono::steady_clock::now();
      if (std::optional<std::string> compressed = gzip(*plain)) {
        gzip_body = std::make_shared<const std::string>(std::move(*compressed));
      }
      gzip_done = true;
      cost.fetch_add((std::chrono::steady_clock::now() - start).count(), std::memory_order_relaxed);
    }
    return gzip_body;
  }

 private:
  std::mutex gzip_mutex;
  bool gzip_done = false;                        // guarded by gzip_mutex
  std::shared_ptr<const std::string> gzip_body;  // guarded by gzip_mutex
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Negotiation.

ExpositionFormat negotiate_format(std::string_view accept_header) {
  double openmetrics_q = 0;
  double text_q = 0;
  double any_q = 0;
  for (const ListElement& e : parse_list(accept_header)) {
    if (e.value == "application/openmetrics-text") {
      if (!e.version || *e.version == "1.0.0") openmetrics_q = std::max(openmetrics_q, e.q);
    } else if (e.value == "text/plain" || e.value == "text/*") {
      text_q = std::max(text_q, e.q);
    } else if (e.value == "*/*") {
      any_q = std::max(any_q, e.q);
    }
  }
  return openmetrics_q > text_q && openmetrics_q > any_q ? ExpositionFormat::openmetrics
                                                         : ExpositionFormat::prometheus;
}

bool accepts_gzip(std::string_view accept_encoding_header) {
  std::optional<double> gzip_q;
  std::optional<double> any_q;
  for (const ListElement& e : parse_list(accept_encoding_header)) {
    if (e.value == "gzip" || e.value == "x-gzip") {
      gzip_q = std::max(gzip_q.value_or(0), e.q);
    } else if (e.value == "*") {
      any_q = std::max(any_q.value_or(0), e.q);
    }
  }
  if (gzip_q) return *gzip_q > 0;
  return any_q.value_or(0) > 0;
}

// ---------------------------------------------------------------------------------------------
// Server.

struct MetricsServer::Impl {
  enum class State { idle, bound, running, stopped };
  using Clock = std::chrono::steady_clock;

  // The render cache of one exposition format; guarded by cache_mutex.
  struct FormatCache {
    std::shared_ptr<RenderedBody> body;  // null until the first render
    Clock::time_point confirmed_at;      // last time body->generation was seen current
    bool refreshing = false;             // a scrape is reading the generation or rendering
  };

  ServerOptions options;
  SnapshotFn snapshot;
  ResponseObserver observer;
  GenerationFn generation;
  // options.max_stale and max_unchanged_age in the clock's unit, clamped to [0, kMaxSetting].
  Clock::duration max_stale{};
  Clock::duration max_unchanged_age{};
  Clock::duration::rep render_factor = 0;  // options.max_stale_render_factor
  std::mutex cache_mutex;
  std::condition_variable cache_refreshed;
  std::array<FormatCache, 2> caches;  // indexed by ExpositionFormat
  // One render at a time, whatever the format: a render holds a snapshot and a page being built,
  // the largest blocks the process ever has, so this keeps the peak at one of each. Scrapes of
  // one format already render one at a time; only a scrape of both formats at once waits.
  std::mutex render_mutex;
  std::atomic<std::uint64_t> renders{0};
  std::atomic<std::uint64_t> gzips{0};
  std::string landing;
  std::atomic<bool> ready{false};
  State state = State::idle;
  RequestProcessor http;
  std::vector<int> listeners;  // bound, until the guard owns them
  std::vector<Endpoint> endpoints;
  bool tls = false;
  std::unique_ptr<ConnectionGuard> guard;
  // The web config, read again for each request when its file changed (see current_web_config).
  struct WebConfigCache {
    std::mutex mutex;
    std::string stamp;  // device, inode, size and modification time of the file read
    std::shared_ptr<const WebConfig> config;
    std::string last_logged;  // the last error logged, so a broken file is logged once
  };
  WebConfigCache web;
  BasicAuthenticator auth;
  RateLimiter rate_limiter;

  void log_error(const std::string& message);
  std::shared_ptr<const WebConfig> current_web_config();
  bool admit(const httplib::Request& req, httplib::Response& res);
  void configure();
  void handle(const httplib::Request& req, httplib::Response& res) noexcept;
  void dispatch(const httplib::Request& req, httplib::Response& res);
  void serve_metrics(const httplib::Request& req, httplib::Response& res);
  std::string render_now(ExpositionFormat format);
  std::shared_ptr<RenderedBody> cached_body(ExpositionFormat format, Clock::time_point arrived);
};

void MetricsServer::Impl::configure() {
  http.set_payload_max_length(kMaxRequestBody);
  // Only for the Keep-Alive header httplib writes: the guard enforces these.
  const GuardLimits limits;
  http.set_keep_alive_timeout(std::chrono::duration_cast<std::chrono::seconds>(limits.idle_timeout).count());
  http.set_keep_alive_max_count(limits.keep_alive_max_requests);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (carries_body(req)) return httplib::Server::HandlerResponse::Unhandled;
    handle(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  const httplib::Server::Handler after_body = [this](const httplib::Request& req,
                                                     httplib::Response& res) { handle(req, res); };
  http.Post(".*", after_body);
  http.Put(".*", after_body);
  http.Patch(".*", after_body);
  http.Delete(".*", after_body);

  http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
    if (!observer) return;
    try {
      observer(res.status);
    } catch (...) {
      // The observer is the caller's; a throw must not take down a server thread.
    }
  });
}

void MetricsServer::Impl::log_error(const std::string& message) {
  if (!options.log_error) return;
  try {
    options.log_error(message);
  } catch (...) {
    // The logger is the caller's; a throw must not take down a server thread.
  }
}

// The web config as its file is now: parsed again when the file's identity, size or
// modification time changed since the last read, which is how the toolkit's per-request
// re-read behaves without parsing YAML for every scrape. Null (and logged once per distinct
// error) when the file no longer reads or parses.
std::shared_ptr<const WebConfig> MetricsServer::Impl::current_web_config() {
  struct stat st{};
  std::string stamp;
  if (::stat(options.web_config_file.c_str(), &st) == 0) {
    stamp = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" + std::to_string(st.st_size) + ":" +
            std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
  }
  std::lock_guard lock(web.mutex);
  if (!stamp.empty() && stamp == web.stamp && web.config) return web.config;
  WebConfigResult loaded = load_web_config(options.web_config_file);
  if (!loaded.config) {
    web.config.reset();
    web.stamp.clear();
    if (loaded.error != web.last_logged) {
      web.last_logged = loaded.error;
      log_error("the web config does not load; requests get 500 until it is fixed: " + loaded.error);
    }
    return nullptr;
  }
  web.last_logged.clear();
  web.stamp = stamp;
  web.config = std::make_shared<const WebConfig>(std::move(*loaded.config));
  return web.config;
}

// The web config's checks, in exporter-toolkit's order. Returns false after writing the
// refusal into `res`.
bool MetricsServer::Impl::admit(const httplib::Request& req, httplib::Response& res) {
  if (options.web_config_file.empty()) return true;
  const std::shared_ptr<const WebConfig> config = current_web_config();
  if (!config) {
    respond(res, 500, kTextContentType, "Internal Server Error\n");
    return false;
  }
  if (!rate_limiter.allow(config->rate_limit)) {
    respond(res, 429, kTextContentType, "Too Many Requests\n");
    return false;
  }
  for (const auto& [name, value] : config->headers) res.set_header(name, value);
  if (!auth.allows(config->users, req.get_header_value("Authorization"))) {
    res.set_header("WWW-Authenticate", "Basic");
    respond(res, 401, kTextContentType, "Unauthorized\n");
    return false;
  }
  return true;
}

void MetricsServer::Impl::handle(const httplib::Request& req,
                                 httplib::Response& res) noexcept {
  try {
    if (admit(req, res)) dispatch(req, res);
  } catch (...) {
    try {
      res.headers.clear();
      res.content_provider_ = nullptr;
      res.content_length_ = 0;
      res.body.clear();
      respond(res, 500, kTextContentType, "internal server error\n");
    } catch (...) {
      res.status = 500;
    }
  }
}

void MetricsServer::Impl::dispatch(const httplib::Request& req, httplib::Response& res) {
  const std::string& path = req.path;
  const bool known = path == options.telemetry_path || path == "/" || path == "/-/healthy" ||
                     path == "/-/ready";
  if (!known) {
    respond(res, 404, kTextContentType, "404 page not found\n");
    return;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    res.set_header("Allow", std::string(kAllow));
    respond(res, 405, kTextContentType, "405 method not allowed\n");
    return;
  }
  if (path == options.telemetry_path) {
    serve_metrics(req, res);
  } else if (path == "/") {
    respond(res, 200, kHtmlContentType, landing);
  } else if (path == "/-/healthy") {
    respond(res, 200, kTextContentType, "OK");
  } else if (ready.load(std::memory_order_relaxed)) {
    respond(res, 200, kTextContentType, "OK");
  } else {
    respond(res, 503, kTextContentType, "not ready\n");
  }
}

std::string MetricsServer::Impl::render_now(ExpositionFormat format) {
  const std::lock_guard one_render(render_mutex);
  renders.fetch_add(1, std::memory_order_relaxed);
  RenderOptions render_options;
  render_options.format = format;
  render_options.include_created = format == ExpositionFormat::openmetrics;
  // The caller's lock is held inside snapshot() only; rendering and compression run outside it.
  Snapshot families = snapshot();
  if (!options.hidden_family_prefixes.empty()) {
    std::erase_if(families, [this](const Family& f) {
      return std::any_of(options.hidden_family_prefixes.begin(), options.hidden_family_prefixes.end(),
                         [&f](const std::string& prefix) { return f.name.rfind(prefix, 0) == 0; });
    });
  }
  return render(families, render_options);
}

// A body for a scrape that arrived at `arrived`, under the contract in the header: the cached
// one if it may still be served, else one refreshed by this scrape or by the one that is
// already refreshing it.
std::shared_ptr<RenderedBody> MetricsServer::Impl::cached_body(ExpositionFormat format,
                                                               Clock::time_point arrived) {
  FormatCache& cache = caches[format == ExpositionFormat::openmetrics ? 1 : 0];
  std::unique_lock lock(cache_mutex);
  for (;;) {
    if (cache.body) {
      const Clock::duration cost(cache.body->cost.load(std::memory_order_relaxed));
      const Clock::duration stale = std::max(max_stale, std::min(cost * render_factor, kMaxSetting));
      if (arrived - cache.body->rendered_at <= stale) return cache.body;
      if (arrived - cache.body->rendered_at <= max_unchanged_age &&
          arrived - std::max(cache.body->rendered_at, cache.confirmed_at) <= stale) {
        return cache.body;
      }
      // Another scrape is refreshing it: rather than queue behind that snapshot and render,
      // which stalled every server thread for the length of a render, take this body while it
      // is no older than 2S.
      if (cache.refreshing && arrived - cache.body->rendered_at <= 2 * stale) return cache.body;
    }
    if (!cache.refreshing) break;
    cache_refreshed.wait(lock);
  }
  cache.refreshing = true;
  std::shared_ptr<RenderedBody> previous = cache.body;
  lock.unlock();
  try {
    const Clock::time_point read_at = Clock::now();
    const std::uint64_t current = generation();
    if (previous && previous->generation == current &&
        read_at - previous->rendered_at <= max_unchanged_age) {
      lock.lock();
      cache.confirmed_at = std::max(cache.confirmed_at, read_at);
    } else {
      // The generation is read before the snapshot is taken: if it moves in between, the body
      // holds newer counts than its generation says and is only refreshed sooner than needed.
      auto body = std::make_shared<RenderedBody>();
      body->plain = std::make_shared<const std::string>(render_now(format));
      body->generation = current;
      body->rendered_at = read_at;
      body->cost.store((Clock::now() - read_at).count(), std::memory_order_relaxed);
      lock.lock();
      cache.body = std::move(body);
      cache.confirmed_at = read_at;
    }
    cache.refreshing = false;
    std::shared_ptr<RenderedBody> result = cache.body;
    lock.unlock();
    cache_refreshed.notify_all();
    return result;
  } catch (...) {
    if (!lock.owns_lock()) lock.lock();
    cache.refreshing = false;
    lock.unlock();
    cache_refreshed.notify_all();
    throw;
  }
}

void MetricsServer::Impl::serve_metrics(const httplib::Request& req, httplib::Response& res) {
  const Clock::time_point arrived = Clock::now();
  // --web.max-requests, as promhttp's MaxRequestsInFlight answers it. This request is counted.
  if (options.max_requests > 0 && guard && guard->in_flight() > options.max_requests) {
    respond(res, 503, kTextContentType,
            "Limit of concurrent requests reached (" + std::to_string(options.max_requests) + "), try again later.\n");
    return;
  }
  const ExpositionFormat format = negotiate_format(joined_header(req, "Accept"));
  const bool want_gzip = accepts_gzip(joined_header(req, "Accept-Encoding"));
  // HEAD renders too, so that its Content-Length and Content-Encoding are GET's; httplib then
  // sends no body.
  std::shared_ptr<const std::string> body;
  if (generation) {
    const std::shared_ptr<RenderedBody> rendered = cached_body(format, arrived);
    if (want_gzip) body = rendered->gzipped(gzips);
    if (body) {
      res.set_header("Content-Encoding", "gzip");
    } else {
      body = rendered->plain;
    }
  } else {
    std::string text = render_now(format);
    if (want_gzip) {
      gzips.fetch_add(1, std::memory_order_relaxed);
      if (std::optional<std::string> compressed = gzip(text)) {
        text = std::move(*compressed);
        res.set_header("Content-Encoding", "gzip");
      }
    }
    body = std::make_shared<const std::string>(std::move(text));
  }
  res.set_header("Vary", "Accept-Encoding");
  respond(res, 200,
          format == ExpositionFormat::openmetrics ? kOpenMetricsContentType
                                                  : kPrometheusContentType,
          std::move(body));
}

MetricsServer::MetricsServer(ServerOptions options, SnapshotFn snapshot, ResponseObserver observer,
                             GenerationFn generation)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->snapshot = std::move(snapshot);
  impl_->observer = std::move(observer);
  impl_->generation = std::move(generation);
  const auto clamp = [](std::chrono::milliseconds ms) {
    return std::chrono::duration_cast<Impl::Clock::duration>(std::clamp(
        ms, std::chrono::milliseconds(0), std::chrono::duration_cast<std::chrono::milliseconds>(kMaxSetting)));
  };
  impl_->max_stale = clamp(impl_->options.max_stale);
  impl_->max_unchanged_age = clamp(impl_->options.max_unchanged_age);
  impl_->render_factor = std::min<Impl::Clock::duration::rep>(impl_->options.max_stale_render_factor, 1000);
  impl_->landing = landing_page(impl_->options);
  impl_->configure();
}

MetricsServer::~MetricsServer() { stop(); }

std::string MetricsServer::bind() {
  Impl& d = *impl_;
  if (d.state != Impl::State::idle) return "cannot listen: already bound";
  try {
    if (d.options.telemetry_path.empty() || d.options.telemetry_path.front() != '/') {
      return "invalid telemetry path \"" + d.options.telemetry_path + "\": must start with '/'";
    }
    if (!d.options.web_config_file.empty()) {
      // Strict at start-up: a config that does not parse, or certificates that do not load,
      // stop the exporter here instead of failing every request later.
      const WebConfigResult loaded = load_web_config(d.options.web_config_file);
      if (!loaded.config) return "invalid --web.config.file " + loaded.error;
      if (loaded.config->tls.enabled) {
        const TlsContextResult context = make_tls_context(loaded.config->tls);
        if (!context.context) return "invalid --web.config.file " + d.options.web_config_file + ": " + context.error;
        d.tls = true;
      }
    }
    if (d.options.systemd_socket) {
      const int n = sd_listen_fds(1);
      if (n <= 0) return "no socket activation file descriptors found";
      for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + n; ++fd) {
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
          return "socket activation: file descriptor " + std::to_string(fd) + " is not a listening stream socket";
        }
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        d.listeners.push_back(fd);
      }
    } else {
      if (d.options.listen_addresses.empty()) return "no --web.listen-address to serve on";
      for (const std::string& address : d.options.listen_addresses) {
        const std::optional<HostPort> hp = parse_listen_address(address);
        if (!hp) {
          for (const int fd : d.listeners) ::close(fd);
          d.listeners.clear();
          return "cannot listen on " + address + ": invalid address (want host:port or [ipv6]:port)";
        }
        std::string error;
        const int fd = listen_on(*hp, error);
        if (fd < 0) {
          for (const int l : d.listeners) ::close(l);
          d.listeners.clear();
          return "cannot listen on " + address + ": " + error;
        }
        d.listeners.push_back(fd);
      }
    }
    for (const int fd : d.listeners) d.endpoints.push_back(endpoint_of(fd));
    d.state = Impl::State::bound;
    return "";
  } catch (const std::exception& e) {
    return std::string("cannot listen: ") + e.what();
  }
}

int MetricsServer::port() const { return impl_->endpoints.empty() ? 0 : impl_->endpoints.front().port; }

std::vector<MetricsServer::Endpoint> MetricsServer::endpoints() const { return impl_->endpoints; }

bool MetricsServer::tls() const { return impl_->tls; }

std::string MetricsServer::start() {
  Impl& d = *impl_;
  if (d.state != Impl::State::bound) return "";
  ConnectionGuard::TlsSource tls;
  if (d.tls) {
    auto source = std::make_shared<TlsContextSource>(d.options.web_config_file);
    tls = [source] { return source->current(); };
  }
  d.guard = std::make_unique<ConnectionGuard>(
      GuardLimits{}, std::move(d.listeners),
      [&d](httplib::Stream& stream, bool close_connection, bool& connection_closed) {
        return d.http.process_request(stream, close_connection, connection_closed, nullptr);
      },
      std::move(tls), [&d](const std::string& message) { d.log_error(message); });
  d.listeners.clear();
  d.state = Impl::State::running;
  if (!d.http.start_idle_loop()) return "cannot start serving: httplib's loop did not start";
  return d.guard->start();
}

void MetricsServer::stop() {
  Impl& d = *impl_;
  if (d.guard) d.guard->stop();
  d.http.stop_idle_loop();
  for (const int fd : d.listeners) ::close(fd);
  d.listeners.clear();
  if (d.state != Impl::State::idle) d.state = Impl::State::stopped;
}

void MetricsServer::set_ready(bool ready) { impl_->ready.store(ready, std::memory_order_relaxed); }

MetricsServer::RenderStats MetricsServer::render_stats() const {
  return {impl_->renders.load(std::memory_order_relaxed), impl_->gzips.load(std::memory_order_relaxed)};
}

}  // namespace nle
