// Counts heap allocations of this test program by wrapping glibc's allocator entry points (malloc,
// calloc, realloc, posix_memalign — xsimd's aligned allocator uses the last one). Disabled under
// AddressSanitizer, which owns these symbols.
#include "alloc_counter.hpp"

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
namespace exprgrad_test {
bool alloc_counting_enabled() { return false; }
long allocation_count() { return 0; }
}  // namespace exprgrad_test
#else
#include <atomic>

namespace {
std::atomic<long> count{0};
}

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t n) {
    ++count;
    return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t s) {
    ++count;
    return __libc_calloc(n, s);
}
void* realloc(void* p, std::size_t n) {
    ++count;
    return __libc_realloc(p, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
    ++count;
    void* p = __libc_memalign(alignment, n);
    if (p == nullptr) return 12;  // ENOMEM
    *out = p;
    return 0;
}
}

namespace exprgrad_test {
bool alloc_counting_enabled() { return true; }
long allocation_count() { return count.load(); }
}  // namespace exprgrad_test
#endif
