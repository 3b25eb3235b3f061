// Reads one input to its end in chunks: a plain file, a gzip file (detected by its magic bytes,
// whatever its name, multi-member as logrotate writes them), or stdin ("-"). For replay.
// Knows nothing of lines or of following a growing file (that is Follower's job).
// Errors are values: a message "NAME: reason" naming the file ("stdin" for "-") and the OS (or
// zlib) error; nothing throws.
//
// Gzip: members are decoded one after another; zero padding after the last one is ignored (as
// gzip(1) does); other trailing bytes, a corrupt or a truncated stream are errors -- the bytes
// decoded before the problem are returned first, the error by the next read(). Detection reads the
// first two bytes with read(2), so it works on pipes too. A directory is an error at open().
// Not thread-safe (one reader per thread); plain_file_descriptor() may be pread from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace nle {

class ByteReader {
 public:
  // Opens `path` ("-" is stdin). On failure returns nullptr and sets `error`.
  static std::unique_ptr<ByteReader> open(const std::string& path, std::string& error);
  virtual ~ByteReader() = default;

  // Reads up to `capacity` bytes into `buffer`. Returns the count, 0 at end of input, or nullopt
  // on error (then error() says why). Plain input: one read(2) (a pipe may return less). Gzip:
  // fills the buffer unless the input ends, so on a pipe it waits for enough compressed input.
  virtual std::optional<std::size_t> read(char* buffer, std::size_t capacity) = 0;
  virtual const std::string& error() const = 0;
  virtual bool is_compressed() const = 0;
  // A plain regular file's descriptor (for parallel pread; owned by the reader), else -1: stdin,
  // pipes and gzip input have none.
  virtual int plain_file_descriptor() const = 0;
  // Bytes of the input itself consumed so far (of a gzip file: the compressed bytes), for
  // showing progress against the file's size.
  virtual std::uint64_t input_offset() const = 0;
};

}  // namespace nle
