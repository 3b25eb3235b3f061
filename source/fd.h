// Private to source/: an owned file descriptor, closed exactly once (RAII). A borrowed
// descriptor (stdin) is never closed.
#pragma once

#include <unistd.h>

#include <utility>

namespace nle {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd), owned_(true) {}
  static Fd borrow(int fd) {
    Fd f;
    f.fd_ = fd;
    f.owned_ = false;
    return f;
  }
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)), owned_(std::exchange(other.owned_, false)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
      owned_ = std::exchange(other.owned_, false);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // close(2) is not retried on EINTR: on Linux the descriptor is released either way.
  void reset() {
    if (fd_ >= 0 && owned_) ::close(fd_);
    fd_ = -1;
    owned_ = false;
  }

 private:
  int fd_ = -1;
  bool owned_ = false;
};

}  // namespace nle
