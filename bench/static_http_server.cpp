// nle_static_http_server: the baseline for follow_bench.py's scrape rates. It answers every
// request with one fixed body read from a file, doing nothing else, so the scrape rate wrk gets
// from it on the same machine, in the same run, is the most any server writing that body with
// send(2) could get there; the exporter's rate is quoted as a ratio of it.
//
//   nle_static_http_server raw BODY_FILE       sockets, a thread per connection, each response
//                                              in one writev(2)
//   nle_static_http_server httplib BODY_FILE   cpp-httplib with the settings of
//                                              server/metrics_server.cpp (4 threads, TCP_NODELAY,
//                                              1000 requests per connection, a content provider)
//                                              but without its cork: the library's own ceiling
//
// Listens on 127.0.0.1 on a port the kernel picks and prints that port on stdout. Runs until
// killed. Requests are not checked: any request gets the body.
#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <thread>

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool write_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    const ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto left = static_cast<std::size_t>(n);
    while (count > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

// Reads requests (headers only; the benchmark sends no bodies) and answers each one.
void serve_connection(int fd, const std::string& head, const std::string& body) {
  std::string pending;
  char buffer[16384];
  for (;;) {
    std::size_t end;
    while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n <= 0) {
        ::close(fd);
        return;
      }
      pending.append(buffer, static_cast<std::size_t>(n));
    }
    pending.erase(0, end + 4);
    iovec iov[2] = {{const_cast<char*>(head.data()), head.size()}, {const_cast<char*>(body.data()), body.size()}};
    if (!write_all(fd, iov, 2)) {
      ::close(fd);
      return;
    }
  }
}

int serve_raw(const std::string& body) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int yes = 1;
  ::setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);  // accepted sockets inherit it
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 || ::listen(listener, 128) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("nle_static_http_server: listen");
    return 1;
  }
  std::printf("%d\n", ntohs(address.sin_port));
  std::fflush(stdout);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread(serve_connection, fd, std::cref(head), std::cref(body)).detach();
  }
}

int serve_httplib(const std::string& body) {
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(4); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1000);
  server.Get(".*", [&body](const httplib::Request&, httplib::Response& res) {
    res.set_content_provider(body.size(), "text/plain; version=0.0.4; charset=utf-8",
                             [&body](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                               return sink.write(body.data() + offset, length);
                             });
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) {
    std::fprintf(stderr, "nle_static_http_server: cannot listen on 127.0.0.1\n");
    return 1;
  }
  std::printf("%d\n", port);
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string_view mode = argc == 3 ? argv[1] : "";
  if (mode != "raw" && mode != "httplib") {
    std::fprintf(stderr, "usage: nle_static_http_server raw|httplib BODY_FILE\n");
    return 2;
  }
  const std::string body = read_file(argv[2]);
  if (body.empty()) {
    std::fprintf(stderr, "nle_static_http_server: cannot read %s (or it is empty)\n", argv[2]);
    return 1;
  }
  return mode == "raw" ? serve_raw(body) : serve_httplib(body);
}
