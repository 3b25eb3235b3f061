// Serves the metrics over HTTP with cpp-httplib: the telemetry path with content negotiation and
// gzip, a landing page, /-/healthy and /-/ready. Knows nothing of parsing or files: it asks a
// callback for a snapshot, renders it outside any lock, and reports each response's status.
// Thread-safe: handlers run on the server's own threads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "exporter/exposition.h"
#include "exporter/snapshot.h"

namespace nle {

struct ServerOptions {
  std::string listen_address = "127.0.0.1:9761";  // host:port, [v6]:port; port 0 picks a free one
  std::string telemetry_path = "/metrics";
  std::string version = "unknown";
  std::string revision = "unknown";
};

// Picks the exposition format an `Accept` header prefers (q-values honoured; OpenMetrics only
// when it is preferred to text/plain, as Prometheus asks).
//
// OpenMetrics is picked when the best q of `application/openmetrics-text` (without a version or
// with version=1.0.0; other versions are not served) is above zero and strictly higher than both
// the best q of `text/plain` (or `text/*`) and the q of `*/*`. Everything else, including an
// empty or unparsable header, picks Prometheus text 0.0.4. Types and parameter names are
// case-insensitive; an element with an invalid q-value is ignored.
ExpositionFormat negotiate_format(std::string_view accept_header);
// Whether an `Accept-Encoding` header allows gzip (q=0 refuses it): an explicit `gzip` (or
// `x-gzip`) element decides; without one, `*` does. An empty header allows nothing.
bool accepts_gzip(std::string_view accept_encoding_header);

// The HTTP endpoint. Routes:
//   <telemetry_path>  GET, HEAD: render(snapshot(), negotiated format), gzip when accepted.
//   /                 GET, HEAD: HTML landing page naming version, revision and the telemetry path.
//   /-/healthy        GET, HEAD: 200 "OK".
//   /-/ready          GET, HEAD: 200 "OK" after set_ready(true), else 503.
// Other methods on these paths get 405 with `Allow: GET, HEAD`; any method on any other path
// gets 404. No exception escapes; a throwing snapshot callback gives a 500.
//
// bind(), start(), stop() and the destructor are called from one owning thread; set_ready() and
// port() from any thread. The snapshot callback and the observer run on server threads (up to
// four at once) and must be thread-safe; the snapshot callback is where the caller takes its
// lock, and it should only copy.
class MetricsServer {
 public:
  using SnapshotFn = std::function<Snapshot()>;
  using ResponseObserver = std::function<void(int status)>;  // once per response written

  MetricsServer(ServerOptions options, SnapshotFn snapshot, ResponseObserver observer = {});
  ~MetricsServer();  // stops
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds the listen address. Returns an error message (port in use, bad address) or "", e.g.
  // "cannot listen on 127.0.0.1:9761: Address already in use". Binds at most once.
  std::string bind();
  int port() const;  // the bound port (the real one when port 0 was asked for); 0 before bind()
  // Serves on background threads; bind() first (does nothing otherwise). When it returns, the
  // listener accepts connections.
  void start();
  // Closes the listener and waits for the threads: a request in flight finishes first (each
  // socket read/write is bounded by 10 s) and an idle client connection is dropped within 2 s.
  // Idempotent; a bound but never started listener is closed.
  void stop();
  void set_ready(bool ready);  // /-/ready answers 503 until set

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle
