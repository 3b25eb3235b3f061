// Serves the metrics over HTTP with cpp-httplib: the telemetry path with content negotiation and
// gzip, a landing page, /-/healthy and /-/ready. Knows nothing of parsing or files: it asks a
// callback for a snapshot, renders it outside any lock, and reports each response's status.
// Thread-safe: handlers run on the server's own threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/exposition.h"
#include "exporter/snapshot.h"

namespace nle {

struct ServerOptions {
  // Every address is served: host:port, [v6]:port, :port (all IPv4); port 0 picks a free one.
  std::vector<std::string> listen_addresses = {"127.0.0.1:9761"};
  // Serve the sockets systemd passes (sd_listen_fds) instead of listen_addresses.
  bool systemd_socket = false;
  // exporter-toolkit web config (TLS, basic auth, headers, rate limit); "" serves plain HTTP to
  // everyone. Read at bind() (an error there is fatal), then again for every request, and for
  // every TLS handshake.
  std::string web_config_file;
  // Telemetry requests queued or being answered at once; beyond it a scrape gets 503 with
  // node_exporter's text. 0: no limit.
  std::size_t max_requests = 40;
  // Families whose name starts with one of these are left off the page
  // (--web.disable-exporter-metrics).
  std::vector<std::string> hidden_family_prefixes;
  // Where errors met while serving go (a web config that broke, a refused TLS handshake): one
  // message per change, not per request.
  std::function<void(const std::string& message)> log_error;
  std::string telemetry_path = "/metrics";
  std::string version = "unknown";
  std::string revision = "unknown";
  // The render cache (see MetricsServer); only used when the server has a GenerationFn.
  // A body is reused for this long after its snapshot began even if the generation moved: this
  // bounds how often a scrape renders while lines are ingested. 0: only reuse confirmed bodies.
  std::chrono::milliseconds max_stale{5};
  // ... or for this many times what the body cost to make (snapshot, render and gzip), when that
  // is longer: rendering then takes at most 1/(factor + 1) of a core per format, whatever the
  // number of series. 0: max_stale alone.
  unsigned max_stale_render_factor = 2;
  // A body whose generation has not moved is reused for this long after its snapshot began, so
  // metrics that do not bump the generation (self-metrics, process_*) are at most this old.
  std::chrono::milliseconds max_unchanged_age{1000};
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
// With a web config, every request first passes its checks, in the toolkit's order: a config
// that no longer parses gives 500 (and is logged), then the rate limit 429, then the configured
// headers are set, then basic auth 401 with `WWW-Authenticate: Basic`.
//
// Connections are handled by a ConnectionGuard (connection_guard.h): slow or idle clients never
// hold a server thread, pipelined requests are answered in order, and responses go out with
// TCP_NODELAY and corked while they are written, so headers and body leave in full segments.
//
// Render cache. Without a GenerationFn every scrape takes a snapshot, renders it and compresses
// it. With one, the caller promises a number that changes whenever the counts it wants visible
// change (e.g. bumped at each consistent point of ingestion), and rendered bodies are reused,
// one per exposition format, with their gzip form computed at most once per body, on the first
// gzip request. The staleness contract, for a scrape that arrives at time t, where a body's age
// is counted from the moment its generation was read, just before its snapshot was taken, and
// S = max(max_stale, max_stale_render_factor x the time the cached body took to make: its
// snapshot and render, plus its gzip once done), so S is max_stale unless rendering is slow:
//  - every change that bumped the generation before t - S is in the body served, or before
//    t - 2S while another scrape is refreshing that body;
//  - any other change (counters that do not bump the generation, process_* metrics, the
//    snapshot callback's own extras) is in it if it happened before t - max(2S,
//    max_unchanged_age);
// that is, a body is served when its age is at most S, when its age is at most
// max_unchanged_age and its generation was seen unchanged no more than S before t, or when its
// age is at most 2S and another scrape is refreshing it.
// Otherwise one scrape reads the generation (and renders if it moved). Concurrent scrapes of
// the same format meanwhile get the previous body if its age is at most 2S, and wait for the
// refresh if not (or if there is none yet): at most one generation read or render per format
// runs at a time, so a burst of scrapes costs one snapshot, not one each, and a render does not
// stall the other server threads. A snapshot callback that throws caches nothing (that scrape
// gets a 500, and the next one tries again).
//
// bind(), start(), stop() and the destructor are called from one owning thread; set_ready() and
// port() from any thread. The snapshot, generation and observer callbacks run on server threads
// (up to eight at once) and must be thread-safe; the snapshot callback is where the caller takes
// its lock, and it should only copy; the generation callback should be cheap.
class MetricsServer {
 public:
  using SnapshotFn = std::function<Snapshot()>;
  using ResponseObserver = std::function<void(int status)>;  // once per response written
  using GenerationFn = std::function<std::uint64_t()>;        // see "Render cache" above

  // An empty `generation` disables the render cache: every scrape renders.
  MetricsServer(ServerOptions options, SnapshotFn snapshot, ResponseObserver observer = {},
                GenerationFn generation = {});
  ~MetricsServer();  // stops
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Reads the web config (strictly; TLS certificates too) and binds every listen address, or
  // takes systemd's sockets. Returns an error message or "", e.g.
  // "cannot listen on 127.0.0.1:9761: Address already in use". Binds at most once.
  std::string bind();
  int port() const;  // the first bound port (the real one when port 0 was asked for); 0 before bind()
  struct Endpoint {
    std::string host;  // numeric, as bound
    int port = 0;
  };
  std::vector<Endpoint> endpoints() const;  // every bound listener, after bind()
  bool tls() const;                         // whether the web config turned TLS on
  // Serves on background threads; bind() first (does nothing otherwise). When it returns, the
  // listener accepts connections.
  std::string start();  // "" or why serving could not start
  // Closes the listeners and waiting connections and waits for the threads: a request in
  // flight finishes first (its body read and its response write are bounded by 10 s each).
  // Idempotent; a bound but never started listener is closed.
  void stop();
  void set_ready(bool ready);  // /-/ready answers 503 until set

  // What the telemetry path has cost so far; callable from any thread.
  struct RenderStats {
    std::uint64_t renders = 0;  // snapshots taken and rendered
    std::uint64_t gzips = 0;    // bodies compressed
  };
  RenderStats render_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle
