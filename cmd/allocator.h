// How the process's allocator hands memory back, set once before any thread starts.
#pragma once

namespace nle {

// glibc keeps what threads free: one arena per thread (up to 8 per core) holds its freed chunks,
// and blocks above a threshold that keeps rising are carved from those arenas instead of mapped.
// A follow whose server threads render large pages then keeps several pages' worth of freed
// memory for good. This keeps one arena, so a snapshot's label strings freed by one server thread
// are reused by the next render on any thread (the hot paths reuse their buffers and hardly
// allocate, so there is no contention to speak of), and maps every block of 256 KiB or more on
// its own (pages, snapshots' arrays, gzip buffers), so freeing one returns it to the kernel.
// Environment variables (MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_) still win when set.
void bound_allocator_slack();

}  // namespace nle
