#include "cmd/allocator.h"

#include <malloc.h>

#include <cstdlib>

namespace nle {

void bound_allocator_slack() {
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
  // Setting the threshold also turns off glibc's raising of it, which would otherwise follow the
  // largest block ever freed (up to 32 MiB) and bring large pages back into the arenas.
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
}

}  // namespace nle
