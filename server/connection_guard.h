// The connection layer in front of cpp-httplib's request handling: it owns the listening
// sockets and every client connection, and hands a connection to a worker thread only once a
// whole request header has arrived (after the TLS handshake, for TLS). Invariant: a worker never
// waits for a client to send a header or finish a handshake, so clients that trickle bytes or
// sit idle hold a file descriptor, never a worker. Knows nothing of routes or metrics.
//
// One event thread (epoll) accepts, performs TLS handshakes without blocking, reads request
// headers and enforces the deadlines and the connection bound; a fixed pool of workers runs the
// request processor on complete requests, answers pipelined requests in order, and gives an
// idle keep-alive connection back to the event thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server/tls_context.h"

namespace httplib {
class Stream;
}

namespace nle {

struct GuardLimits {
  // From accept to a complete first request header, TLS handshake included; and for a kept-alive
  // connection from the first byte of its next request to the end of that header.
  std::chrono::milliseconds header_timeout{10000};
  // How long a kept-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{90000};
  // Connections open at once (waiting and in service). At the bound the connection that has
  // waited longest for a request is closed to make room; the bound is also kept below the
  // process's file descriptor limit.
  std::size_t max_connections = 1024;
  std::size_t workers = 8;
  std::size_t max_header_bytes = 65536;  // a request header longer than this closes the connection
  // Reading a request's body and writing its response, each as a whole.
  std::chrono::milliseconds io_timeout{10000};
  std::size_t keep_alive_max_requests = 1000;  // then the connection is closed after the response
};

class ConnectionGuard {
 public:
  // Serves one request from the stream; the contract of httplib::Server::process_request.
  // `close_connection`: answer with Connection: close. Sets `connection_closed` when the client
  // asked to close. Returns false when the connection must be closed.
  using Processor = std::function<bool(httplib::Stream& stream, bool close_connection, bool& connection_closed)>;
  // The TLS context for the next handshake, or null (with an error to log) to refuse it.
  using TlsSource = std::function<TlsContextResult()>;
  using ErrorLog = std::function<void(const std::string& message)>;

  // `listeners` are bound, listening sockets; the guard owns them from here on. An empty
  // `tls` serves plain HTTP.
  ConnectionGuard(GuardLimits limits, std::vector<int> listeners, Processor processor, TlsSource tls,
                  ErrorLog log_error);
  ~ConnectionGuard();  // stop()
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // Starts the event thread and the workers; returns an error message or "".
  std::string start();
  // Closes the listeners and waiting connections at once; requests already complete are
  // answered (each bounded by io_timeout) with Connection: close. Idempotent.
  void stop();
  // Requests with a complete header that are queued or being answered (for --web.max-requests).
  // Thread-safe.
  std::size_t in_flight() const;
  std::size_t max_connections() const;  // the bound in effect after start()

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nle
