// Heap allocation counting for tests (see alloc_counter.cpp).
#pragma once

namespace exprgrad_test {
/// False where the counter cannot work (under AddressSanitizer).
bool alloc_counting_enabled();
/// Allocations made by the process so far (malloc, calloc, realloc, posix_memalign, and so new).
long allocation_count();
}  // namespace exprgrad_test
