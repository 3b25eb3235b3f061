// ByteReader: a plain file, stdin or a gzip stream, read in large chunks for replay.
//
// Gzip is recognised by its magic bytes (1f 8b), not by the name: rotated logs are often
// compressed under names like app.log.2 or piped in. The first two bytes are read once with
// read(2), so detection also works on pipes; in plain mode those bytes are handed out first.
// Members are decoded one after the other (logrotate's delaycompress + `cat a.gz b.gz` produce
// multi-member files, and gzip(1) decodes those as one stream).
#include "source/byte_reader.h"

#include <zlib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <new>
#include <vector>

#include "source/fd.h"

namespace nle {
namespace {

constexpr unsigned char kGzipMagic0 = 0x1f;
constexpr unsigned char kGzipMagic1 = 0x8b;
constexpr std::size_t kGzipInputBytes = 256 * 1024;

std::string os_error(const std::string& name, int err) { return name + ": " + std::strerror(err); }

// read(2) retrying EINTR. Returns -1 with errno set on error.
ssize_t read_retry(int fd, void* buffer, std::size_t capacity) {
  for (;;) {
    const ssize_t n = ::read(fd, buffer, capacity);
    if (n >= 0 || errno != EINTR) return n;
  }
}

class PlainReader final : public ByteReader {
 public:
  PlainReader(std::string name, Fd fd, bool regular, std::string prefix)
      : name_(std::move(name)), fd_(std::move(fd)), regular_(regular), prefix_(std::move(prefix)) {}

  std::optional<std::size_t> read(char* buffer, std::size_t capacity) override {
    if (capacity == 0) return 0;
    std::size_t got = 0;
    if (prefix_used_ < prefix_.size()) {  // the bytes read to look for the gzip magic
      got = std::min(capacity, prefix_.size() - prefix_used_);
      std::memcpy(buffer, prefix_.data() + prefix_used_, got);
      prefix_used_ += got;
      offset_ += got;
      if (got == capacity) return got;
    }
    const ssize_t n = read_retry(fd_.get(), buffer + got, capacity - got);
    if (n < 0) {
      if (got > 0) return got;  // the error comes again on the next call
      error_ = os_error(name_, errno);
      return std::nullopt;
    }
    offset_ += static_cast<std::uint64_t>(n);
    return got + static_cast<std::size_t>(n);
  }
  const std::string& error() const override { return error_; }
  bool is_compressed() const override { return false; }
  int plain_file_descriptor() const override { return regular_ ? fd_.get() : -1; }
  std::uint64_t input_offset() const override { return offset_; }

 private:
  std::string name_;
  Fd fd_;
  bool regular_;
  std::string prefix_;
  std::size_t prefix_used_ = 0;
  std::uint64_t offset_ = 0;
  std::string error_;
};

class GzipReader final : public ByteReader {
 public:
  GzipReader(std::string name, Fd fd, std::string prefix)
      : name_(std::move(name)), fd_(std::move(fd)), input_(kGzipInputBytes) {
    // The peeked magic bytes are the start of the input.
    std::memcpy(input_.data(), prefix.data(), prefix.size());
    stream_.next_in = input_.data();
    stream_.avail_in = static_cast<uInt>(prefix.size());
    input_read_ = prefix.size();
  }
  ~GzipReader() override {
    if (initialized_) inflateEnd(&stream_);
  }
  GzipReader(const GzipReader&) = delete;
  GzipReader& operator=(const GzipReader&) = delete;

  // 15 + 32: a 32 KiB window and automatic gzip/zlib header detection (we only get here after
  // seeing the gzip magic).
  bool init(std::string& error) {
    const int rc = inflateInit2(&stream_, 15 + 32);
    if (rc != Z_OK) {
      error = name_ + ": cannot start gzip decoder: " + (stream_.msg ? stream_.msg : zError(rc));
      return false;
    }
    initialized_ = true;
    return true;
  }

  std::optional<std::size_t> read(char* buffer, std::size_t capacity) override {
    if (failed_) return std::nullopt;
    if (done_ || capacity == 0) return 0;
    // zlib counts in uInt; a larger buffer is simply filled in part.
    const uInt out_capacity = static_cast<uInt>(std::min<std::size_t>(capacity, 1u << 30));
    stream_.next_out = reinterpret_cast<Bytef*>(buffer);
    stream_.avail_out = out_capacity;
    std::string error;
    while (stream_.avail_out > 0 && error.empty()) {
      if (stream_.avail_in == 0 && !input_eof_ && !refill(error)) break;
      if (between_members_) {
        if (!start_next_member(error)) break;
        continue;
      }
      if (stream_.avail_in == 0 && input_eof_) {
        error = name_ + ": unexpected end of gzip data (the file is truncated)";
        break;
      }
      const int rc = inflate(&stream_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        between_members_ = true;
      } else if (rc == Z_BUF_ERROR) {
        // No progress possible with this input: more input is read at the top of the loop.
        if (input_eof_ && stream_.avail_in == 0) error = name_ + ": unexpected end of gzip data (the file is truncated)";
      } else if (rc != Z_OK) {
        error = name_ + ": corrupt gzip data: " + (stream_.msg ? stream_.msg : zError(rc));
      }
    }
    const std::size_t produced = out_capacity - stream_.avail_out;
    if (!error.empty()) {
      // The bytes decoded before the corruption go out first; the error on the next call.
      error_ = std::move(error);
      failed_ = true;
      if (produced == 0) return std::nullopt;
    }
    return produced;
  }
  const std::string& error() const override { return error_; }
  bool is_compressed() const override { return true; }
  int plain_file_descriptor() const override { return -1; }
  std::uint64_t input_offset() const override { return input_read_ - stream_.avail_in; }

 private:
  // Reads more compressed input, keeping unconsumed bytes. Sets input_eof_ at end of file.
  bool refill(std::string& error) {
    const std::size_t keep = stream_.avail_in;
    if (keep > 0 && stream_.next_in != input_.data()) std::memmove(input_.data(), stream_.next_in, keep);
    const ssize_t n = read_retry(fd_.get(), input_.data() + keep, input_.size() - keep);
    if (n < 0) {
      error = os_error(name_, errno);
      return false;
    }
    if (n == 0) input_eof_ = true;
    input_read_ += static_cast<std::uint64_t>(n);
    stream_.next_in = input_.data();
    stream_.avail_in = static_cast<uInt>(keep + static_cast<std::size_t>(n));
    return true;
  }

  // After a member's end: end of file, another member, zero padding (ignored, as gzip(1) does),
  // or trailing garbage (an error). Returns false when reading stops (done_ or error).
  bool start_next_member(std::string& error) {
    if (zero_padding_) {
      while (stream_.avail_in > 0) {
        if (*stream_.next_in != 0) {
          error = name_ + ": trailing garbage after gzip data";
          return false;
        }
        ++stream_.next_in;
        --stream_.avail_in;
      }
      if (input_eof_) done_ = true;
      return !done_;
    }
    if (stream_.avail_in == 0) {
      if (input_eof_) done_ = true;
      return !done_;
    }
    if (stream_.avail_in < 2 && !input_eof_) return refill(error);
    if (stream_.next_in[0] == 0) {
      zero_padding_ = true;
      return true;
    }
    if (stream_.avail_in < 2 || stream_.next_in[0] != kGzipMagic0 || stream_.next_in[1] != kGzipMagic1) {
      error = name_ + ": trailing garbage after gzip data";
      return false;
    }
    const int rc = inflateReset(&stream_);
    if (rc != Z_OK) {
      error = name_ + ": corrupt gzip data: " + zError(rc);
      return false;
    }
    between_members_ = false;
    return true;
  }

  std::string name_;
  Fd fd_;
  std::vector<Bytef> input_;
  z_stream stream_{};
  bool initialized_ = false;
  bool input_eof_ = false;
  std::uint64_t input_read_ = 0;  // compressed bytes read from the file (or pipe) so far
  bool between_members_ = false;
  bool zero_padding_ = false;
  bool done_ = false;
  bool failed_ = false;
  std::string error_;
};

}  // namespace

std::unique_ptr<ByteReader> ByteReader::open(const std::string& path, std::string& error) {
  try {
    const bool is_stdin = path == "-";
    const std::string name = is_stdin ? std::string("stdin") : path;
    Fd fd;
    if (is_stdin) {
      fd = Fd::borrow(STDIN_FILENO);  // never closed by us: the process owns fd 0
    } else {
      const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
      if (raw < 0) {
        error = os_error(name, errno);
        return nullptr;
      }
      fd = Fd(raw);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
      error = os_error(name, errno);
      return nullptr;
    }
    if (S_ISDIR(st.st_mode)) {
      error = os_error(name, EISDIR);
      return nullptr;
    }
    // Peek at the first two bytes (a short read on a pipe is retried until 2 bytes or EOF).
    char magic[2];
    std::size_t got = 0;
    while (got < sizeof magic) {
      const ssize_t n = read_retry(fd.get(), magic + got, sizeof magic - got);
      if (n < 0) {
        error = os_error(name, errno);
        return nullptr;
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    std::string prefix(magic, got);
    if (got == 2 && static_cast<unsigned char>(magic[0]) == kGzipMagic0 &&
        static_cast<unsigned char>(magic[1]) == kGzipMagic1) {
      auto reader = std::make_unique<GzipReader>(name, std::move(fd), std::move(prefix));
      if (!reader->init(error)) return nullptr;
      return reader;
    }
    const bool regular = !is_stdin && S_ISREG(st.st_mode);
    return std::make_unique<PlainReader>(name, std::move(fd), regular, std::move(prefix));
  } catch (const std::bad_alloc&) {
    error = path + ": out of memory";
    return nullptr;
  }
}

}  // namespace nle
