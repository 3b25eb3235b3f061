// Why this exists: cpp-httplib 0.11 serves each connection on one pool thread from accept to
// close, reading the header with a per-read timeout that every byte resets, and SSLServer does
// its handshake on that thread too. Four clients sending a byte a second held all four threads,
// and a fresh SocketStream per request dropped pipelined requests. httplib's request parsing,
// routing and response writing are kept (Server::process_request on a Stream of ours); only
// the connection handling around them is replaced.
#include "server/connection_guard.h"

#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace nle {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunk = 16384;
// File descriptors kept free for everything else the process opens (followed files, the state
// file, the journal), when the connection bound is fitted under RLIMIT_NOFILE.
constexpr std::size_t kReservedDescriptors = 64;

std::string numeric_host(const sockaddr_storage& addr, socklen_t length, int& port) {
  char host[NI_MAXHOST] = {};
  char service[NI_MAXSERV] = {};
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), length, host, sizeof host, service, sizeof service,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    port = 0;
    return "";
  }
  port = std::atoi(service);
  return host;
}

// The end of a request header ("\r\n\r\n", or "\n\n" from lenient clients) in `buffer` from
// `from`; npos if not there yet.
bool has_complete_header(const std::string& buffer, std::size_t from) {
  const std::string_view rest = std::string_view(buffer).substr(from);
  // Blank lines before a request line are skipped by parsers (RFC 9112 section 2.2).
  const std::size_t start = rest.find_first_not_of("\r\n");
  if (start == std::string_view::npos) return false;
  const std::string_view header = rest.substr(start);
  return header.find("\r\n\r\n") != std::string_view::npos || header.find("\n\n") != std::string_view::npos;
}

void set_cork(int fd, bool on) {
  const int value = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}

struct Connection {
  int fd = -1;
  SSL* ssl = nullptr;
  std::shared_ptr<const TlsContext> tls;  // keeps ssl's context alive
  bool handshaking = false;
  std::string in;             // bytes received and not yet consumed by a request
  std::size_t consumed = 0;   // bytes of `in` consumed
  Clock::time_point deadline;       // when the event thread closes it (while it waits there)
  Clock::time_point waiting_since;  // when it last started to wait for a request
  std::uint32_t events = 0;         // what it is registered for in epoll (0: not registered)
  std::size_t requests = 0;
  std::string remote_ip;
  int remote_port = 0;
  std::string local_ip;
  int local_port = 0;

  ~Connection() {
    if (ssl != nullptr) SSL_free(ssl);
    if (fd >= 0) ::close(fd);
  }
  std::size_t buffered() const { return in.size() - consumed; }
  void compact() {
    if (consumed > 0) {
      in.erase(0, consumed);
      consumed = 0;
    }
  }
};

// Waits for `fd` to be ready for `events` until `deadline`; false on timeout or error.
bool wait_ready(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000 * 60)));
    if (rc > 0) return (p.revents & (events | POLLHUP | POLLERR)) != 0;
    if (rc < 0 && errno != EINTR) return false;
  }
}

// A worker's view of a connection for httplib: reads come from what the event thread buffered
// first, then from the socket; every read and write finishes by one deadline per request.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(Connection& c, Clock::time_point deadline) : c_(c), deadline_(deadline) {}

  bool is_readable() const override {
    if (c_.buffered() > 0 || (c_.ssl != nullptr && SSL_pending(c_.ssl) > 0)) return true;
    return wait_ready(c_.fd, POLLIN, deadline_);
  }
  bool is_writable() const override { return wait_ready(c_.fd, POLLOUT, deadline_); }

  ssize_t read(char* ptr, size_t size) override {
    if (c_.buffered() > 0) {
      const std::size_t n = std::min(size, c_.buffered());
      std::memcpy(ptr, c_.in.data() + c_.consumed, n);
      c_.consumed += n;
      if (c_.consumed == c_.in.size()) {
        c_.in.clear();
        c_.consumed = 0;
      }
      return static_cast<ssize_t>(n);
    }
    for (;;) {
      short wait_for = POLLIN;
      if (c_.ssl != nullptr) {
        ERR_clear_error();
        const int n = SSL_read(c_.ssl, ptr, static_cast<int>(std::min<size_t>(size, INT32_MAX)));
        if (n > 0) return n;
        const int error = SSL_get_error(c_.ssl, n);
        if (error == SSL_ERROR_ZERO_RETURN) return 0;
        if (error == SSL_ERROR_WANT_WRITE) {
          wait_for = POLLOUT;
        } else if (error != SSL_ERROR_WANT_READ) {
          return -1;
        }
      } else {
        const ssize_t n = ::recv(c_.fd, ptr, size, 0);
        if (n >= 0) return n;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      }
      if (!wait_ready(c_.fd, wait_for, deadline_)) return -1;
    }
  }

  ssize_t write(const char* ptr, size_t size) override {
    std::size_t written = 0;
    while (written < size) {
      short wait_for = POLLOUT;
      if (c_.ssl != nullptr) {
        ERR_clear_error();
        const int n = SSL_write(c_.ssl, ptr + written, static_cast<int>(std::min<size_t>(size - written, 1 << 20)));
        if (n > 0) {
          written += static_cast<std::size_t>(n);
          continue;
        }
        const int error = SSL_get_error(c_.ssl, n);
        if (error == SSL_ERROR_WANT_READ) {
          wait_for = POLLIN;
        } else if (error != SSL_ERROR_WANT_WRITE) {
          return -1;
        }
      } else {
        const ssize_t n = ::send(c_.fd, ptr + written, size - written, MSG_NOSIGNAL);
        if (n >= 0) {
          written += static_cast<std::size_t>(n);
          continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      }
      if (!wait_ready(c_.fd, wait_for, deadline_)) return -1;
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.remote_ip;
    port = c_.remote_port;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = c_.local_ip;
    port = c_.local_port;
  }
  // httplib 0.11 answers 500 when a socket number is not below FD_SETSIZE (a limit of select(),
  // which it does not call on our streams); the number is used for nothing else on this path.
  socket_t socket() const override { return std::min(c_.fd, FD_SETSIZE - 1); }

 private:
  Connection& c_;
  Clock::time_point deadline_;
};

}  // namespace

struct ConnectionGuard::Impl {
  GuardLimits limits;
  std::vector<int> listeners;
  Processor processor;
  TlsSource tls;
  ErrorLog log_error;

  int epoll_fd = -1;
  int wake_fd = -1;
  std::thread event_thread;
  std::vector<std::thread> workers;
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;

  // Owned by the event thread: connections waiting for a request.
  std::map<int, std::unique_ptr<Connection>> waiting;  // by fd
  Clock::time_point next_check = Clock::time_point::max();
  bool listeners_paused = false;
  Clock::time_point resume_listeners_at;

  std::atomic<std::size_t> open{0};  // connections open, waiting or in service
  std::atomic<std::size_t> in_flight_requests{0};
  std::size_t bound = 0;

  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  std::deque<std::unique_ptr<Connection>> work;       // guarded by queue_mutex
  std::deque<std::unique_ptr<Connection>> returned;   // guarded by queue_mutex
  bool workers_exit = false;                          // guarded by queue_mutex

  void event_loop();
  void accept_from(int listener);
  void wait_for_request(std::unique_ptr<Connection> c);
  void on_ready(int fd);
  // Handshakes and reads as far as the socket allows; returns false when `c` must be closed.
  bool advance(Connection& c);
  void dispatch(std::unique_ptr<Connection> c);
  void watch(Connection& c, std::uint32_t events);
  void close_waiting(int fd);
  void check_deadlines(Clock::time_point now);
  bool evict_oldest();
  void worker_loop();
  void serve(std::unique_ptr<Connection> c);
  void log(const std::string& message) {
    if (!log_error) return;
    try {
      log_error(message);
    } catch (...) {
      // The logger is the caller's; a throw must not take down a server thread.
    }
  }
};

void ConnectionGuard::Impl::watch(Connection& c, std::uint32_t events) {
  if (c.events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = c.fd;
  ::epoll_ctl(epoll_fd, c.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c.fd, &ev);
  c.events = events;
}

void ConnectionGuard::Impl::close_waiting(int fd) {
  const auto it = waiting.find(fd);
  if (it == waiting.end()) return;
  ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
  waiting.erase(it);
  open.fetch_sub(1, std::memory_order_relaxed);
}

bool ConnectionGuard::Impl::evict_oldest() {
  auto oldest = waiting.end();
  for (auto it = waiting.begin(); it != waiting.end(); ++it) {
    if (oldest == waiting.end() || it->second->waiting_since < oldest->second->waiting_since) oldest = it;
  }
  if (oldest == waiting.end()) return false;
  close_waiting(oldest->first);
  return true;
}

void ConnectionGuard::Impl::accept_from(int listener) {
  // A bounded batch per wake-up, so that one busy listener does not starve the others.
  for (int i = 0; i < 64; ++i) {
    sockaddr_storage peer{};
    socklen_t peer_length = sizeof peer;
    const int fd = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors: make room, or stop accepting for a moment (the backlog holds them).
        if (!evict_oldest()) {
          listeners_paused = true;
          resume_listeners_at = Clock::now() + std::chrono::milliseconds(100);
          for (const int l : listeners) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, l, nullptr);
        }
      }
      return;
    }
    if (open.load(std::memory_order_relaxed) >= bound && !evict_oldest()) {
      ::close(fd);  // every connection is being answered; this one may retry
      continue;
    }
    open.fetch_add(1, std::memory_order_relaxed);
    auto c = std::make_unique<Connection>();
    c->fd = fd;
    c->remote_ip = numeric_host(peer, peer_length, c->remote_port);
    sockaddr_storage local{};
    socklen_t local_length = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) == 0) {
      c->local_ip = numeric_host(local, local_length, c->local_port);
    }
    // A response written as headers then body must not wait for the client's delayed ACK.
    const int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    const Clock::time_point now = Clock::now();
    c->waiting_since = now;
    c->deadline = now + limits.header_timeout;
    if (tls) {
      TlsContextResult context = tls();
      if (!context.context) {
        log("TLS handshake refused: " + context.error);
        open.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      c->tls = std::move(context.context);
      c->ssl = SSL_new(c->tls->ctx);
      if (c->ssl == nullptr || SSL_set_fd(c->ssl, fd) != 1) {
        open.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      SSL_set_accept_state(c->ssl);
      c->handshaking = true;
    }
    wait_for_request(std::move(c));
  }
}

// Takes `c` into the waiting set and moves it as far as its bytes allow.
void ConnectionGuard::Impl::wait_for_request(std::unique_ptr<Connection> c) {
  const int fd = c->fd;
  next_check = std::min(next_check, c->deadline);
  Connection& ref = *c;
  waiting.emplace(fd, std::move(c));
  if (!advance(ref)) {
    close_waiting(fd);
    return;
  }
  if (!ref.handshaking && has_complete_header(ref.in, ref.consumed)) {
    auto node = waiting.extract(fd);
    if (ref.events != 0) ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    ref.events = 0;
    dispatch(std::move(node.mapped()));
  }
}

void ConnectionGuard::Impl::on_ready(int fd) {
  const auto it = waiting.find(fd);
  if (it == waiting.end()) return;
  Connection& c = *it->second;
  if (!advance(c)) {
    close_waiting(fd);
    return;
  }
  if (!c.handshaking && has_complete_header(c.in, c.consumed)) {
    auto node = waiting.extract(it);
    ::epoll_ctl(epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
    c.events = 0;
    dispatch(std::move(node.mapped()));
  }
}

bool ConnectionGuard::Impl::advance(Connection& c) {
  if (c.handshaking) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(c.ssl);
    if (rc != 1) {
      const int error = SSL_get_error(c.ssl, rc);
      if (error == SSL_ERROR_WANT_READ) {
        watch(c, EPOLLIN);
        return true;
      }
      if (error == SSL_ERROR_WANT_WRITE) {
        watch(c, EPOLLOUT);
        return true;
      }
      ERR_clear_error();
      return false;  // a refused handshake (version, client certificate): the client saw the alert
    }
    c.handshaking = false;
  }
  watch(c, EPOLLIN | EPOLLRDHUP);
  const bool was_empty = c.buffered() == 0;
  char chunk[kReadChunk];
  bool peer_closed = false;
  while (c.buffered() <= limits.max_header_bytes) {
    ssize_t n = 0;
    if (c.ssl != nullptr) {
      ERR_clear_error();
      n = SSL_read(c.ssl, chunk, sizeof chunk);
      if (n <= 0) {
        const int error = SSL_get_error(c.ssl, static_cast<int>(n));
        if (error == SSL_ERROR_WANT_READ) break;
        if (error == SSL_ERROR_WANT_WRITE) {
          watch(c, EPOLLOUT);
          break;
        }
        peer_closed = true;
        ERR_clear_error();
        break;
      }
    } else {
      n = ::recv(c.fd, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n <= 0) {
        peer_closed = true;
        break;
      }
    }
    c.compact();
    c.in.append(chunk, static_cast<std::size_t>(n));
  }
  const bool complete = has_complete_header(c.in, c.consumed);
  if (complete) return true;  // answered even if the client already shut down its side
  if (peer_closed || c.buffered() > limits.max_header_bytes) return false;
  if (was_empty && c.buffered() > 0 && c.requests > 0) {
    // The first byte of a kept-alive connection's next request: its header has a deadline now.
    c.deadline = Clock::now() + limits.header_timeout;
    next_check = std::min(next_check, c.deadline);
  }
  return true;
}

void ConnectionGuard::Impl::dispatch(std::unique_ptr<Connection> c) {
  in_flight_requests.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lock(queue_mutex);
    work.push_back(std::move(c));
  }
  queue_cv.notify_one();
}

void ConnectionGuard::Impl::check_deadlines(Clock::time_point now) {
  next_check = Clock::time_point::max();
  std::vector<int> expired;
  for (const auto& [fd, c] : waiting) {
    if (c->deadline <= now) {
      expired.push_back(fd);
    } else {
      next_check = std::min(next_check, c->deadline);
    }
  }
  for (const int fd : expired) close_waiting(fd);
}

void ConnectionGuard::Impl::event_loop() {
  std::vector<epoll_event> events(256);
  while (!stopping.load()) {
    int timeout = -1;
    Clock::time_point now = Clock::now();
    Clock::time_point wake = next_check;
    if (listeners_paused) wake = std::min(wake, resume_listeners_at);
    if (wake != Clock::time_point::max()) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;
      timeout = static_cast<int>(std::clamp<long long>(ms, 0, 60'000));
    }
    const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), timeout);
    if (n < 0 && errno != EINTR) {
      log(std::string("epoll_wait failed: ") + std::strerror(errno));
      break;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == wake_fd) {
        std::uint64_t count = 0;
        [[maybe_unused]] const ssize_t r = ::read(wake_fd, &count, sizeof count);
        std::deque<std::unique_ptr<Connection>> back;
        {
          std::lock_guard lock(queue_mutex);
          back.swap(returned);
        }
        for (auto& c : back) wait_for_request(std::move(c));
      } else if (std::find(listeners.begin(), listeners.end(), fd) != listeners.end()) {
        accept_from(fd);
      } else {
        on_ready(fd);
      }
    }
    now = Clock::now();
    if (listeners_paused && now >= resume_listeners_at) {
      listeners_paused = false;
      for (const int l : listeners) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = l;
        ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, l, &ev);
      }
    }
    if (now >= next_check) check_deadlines(now);
  }
  // Stopping: waiting connections have no request to finish.
  while (!waiting.empty()) close_waiting(waiting.begin()->first);
}

void ConnectionGuard::Impl::worker_loop() {
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::unique_lock lock(queue_mutex);
      queue_cv.wait(lock, [this] { return workers_exit || !work.empty(); });
      if (work.empty()) return;
      c = std::move(work.front());
      work.pop_front();
    }
    serve(std::move(c));
  }
}

void ConnectionGuard::Impl::serve(std::unique_ptr<Connection> c) {
  const bool plain = c->ssl == nullptr;
  bool keep = true;
  for (;;) {
    ++c->requests;
    const bool last = stopping.load() || c->requests >= limits.keep_alive_max_requests;
    bool client_closes = false;
    // Headers and body leave in full segments: corked while httplib writes them, which it does
    // in several send() calls.
    if (plain) set_cork(c->fd, true);
    {
      ConnectionStream stream(*c, Clock::now() + limits.io_timeout);
      try {
        keep = processor(stream, last, client_closes) && !client_closes && !last;
      } catch (...) {
        keep = false;
      }
    }
    if (plain) set_cork(c->fd, false);
    in_flight_requests.fetch_sub(1, std::memory_order_relaxed);
    if (!keep) break;
    if (!has_complete_header(c->in, c->consumed)) break;
    in_flight_requests.fetch_add(1, std::memory_order_relaxed);  // a pipelined request, in order
  }
  if (!keep || stopping.load()) {
    if (c->ssl != nullptr && keep) SSL_shutdown(c->ssl);
    c.reset();
    open.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  // Back to the event thread to wait for the next request.
  c->compact();
  const Clock::time_point now = Clock::now();
  c->waiting_since = now;
  c->deadline = now + (c->buffered() > 0 ? limits.header_timeout : limits.idle_timeout);
  {
    std::lock_guard lock(queue_mutex);
    returned.push_back(std::move(c));
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t w = ::write(wake_fd, &one, sizeof one);
}

ConnectionGuard::ConnectionGuard(GuardLimits limits, std::vector<int> listeners, Processor processor, TlsSource tls,
                                 ErrorLog log_error)
    : impl_(std::make_unique<Impl>()) {
  impl_->limits = limits;
  impl_->listeners = std::move(listeners);
  impl_->processor = std::move(processor);
  impl_->tls = std::move(tls);
  impl_->log_error = std::move(log_error);
}

ConnectionGuard::~ConnectionGuard() { stop(); }

std::string ConnectionGuard::start() {
  Impl& d = *impl_;
  if (d.started) return "";
  // Like Go's runtime, raise the soft descriptor limit to the hard one, then keep the
  // connection bound below it.
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    if (limit.rlim_cur < limit.rlim_max) {
      rlimit raised = limit;
      raised.rlim_cur = limit.rlim_max;
      if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    const std::size_t usable = limit.rlim_cur > 2 * kReservedDescriptors ? limit.rlim_cur - kReservedDescriptors : kReservedDescriptors;
    d.bound = std::min(d.limits.max_connections, usable);
  } else {
    d.bound = d.limits.max_connections;
  }
  d.bound = std::max<std::size_t>(d.bound, 1);
  d.epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  d.wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (d.epoll_fd < 0 || d.wake_fd < 0) return std::string("cannot start serving: ") + std::strerror(errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = d.wake_fd;
  ::epoll_ctl(d.epoll_fd, EPOLL_CTL_ADD, d.wake_fd, &ev);
  for (const int l : d.listeners) {
    const int flags = ::fcntl(l, F_GETFL);
    ::fcntl(l, F_SETFL, flags | O_NONBLOCK);
    ev.data.fd = l;
    ::epoll_ctl(d.epoll_fd, EPOLL_CTL_ADD, l, &ev);
  }
  try {
    for (std::size_t i = 0; i < std::max<std::size_t>(d.limits.workers, 1); ++i) {
      d.workers.emplace_back([&d] { d.worker_loop(); });
    }
    d.event_thread = std::thread([&d] { d.event_loop(); });
  } catch (const std::exception& e) {
    d.started = true;
    stop();
    return std::string("cannot start serving: ") + e.what();
  }
  d.started = true;
  return "";
}

void ConnectionGuard::stop() {
  Impl& d = *impl_;
  if (d.stopped) return;
  d.stopped = true;
  d.stopping.store(true);
  if (d.wake_fd >= 0) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t w = ::write(d.wake_fd, &one, sizeof one);
  }
  if (d.event_thread.joinable()) d.event_thread.join();
  for (const int l : d.listeners) ::close(l);
  d.listeners.clear();
  {
    std::lock_guard lock(d.queue_mutex);
    d.workers_exit = true;
  }
  d.queue_cv.notify_all();
  for (std::thread& t : d.workers) {
    if (t.joinable()) t.join();
  }
  d.returned.clear();
  if (d.epoll_fd >= 0) ::close(d.epoll_fd);
  if (d.wake_fd >= 0) ::close(d.wake_fd);
  d.epoll_fd = d.wake_fd = -1;
}

std::size_t ConnectionGuard::in_flight() const { return impl_->in_flight_requests.load(std::memory_order_relaxed); }

std::size_t ConnectionGuard::max_connections() const { return impl_->bound; }

}  // namespace nle
