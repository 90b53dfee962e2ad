// Subnormal floats flushed to zero inside the attention kernels. Intel cores take a microcode assist for every
// floating-point operation that reads or produces a subnormal number; softmax probabilities of far-away keys
// (ALiBi's bias −m·(i − j) at T = 512) are that small, and the products of the tiles that read P and dS then
// ran at a fraction of their speed: flex attention with ALiBi took 12.7 ms against 7.9 ms for no modification
// (Emerald Rapids, 7 Dec 2026; AMD cores showed no such cost). The scope sets the calling thread's MXCSR
// flush-to-zero and denormals-are-zero bits and restores the caller's MXCSR when it ends, so code outside the
// kernels keeps IEEE subnormals (the mode bits only: exception flags raised in the scope are kept). The values changed are below 1.2e-38 in magnitude.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace exprgrad::kernels {

/// While alive: subnormal float and double inputs read as 0 and subnormal results are 0 on this thread (x86
/// MXCSR FTZ and DAZ); the thread's previous mode comes back at the end of the scope. Elsewhere a no-op.
/// NaN and infinities are unaffected. Example: `{ flush_subnormals_scope fz; run_tiles(); }`.
class flush_subnormals_scope {
  public:
#if defined(__x86_64__) || defined(__i386__)
    flush_subnormals_scope() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
    // only FTZ and DAZ come back: exception flags raised inside the scope stay visible to the caller
    ~flush_subnormals_scope() { _mm_setcsr((_mm_getcsr() & ~0x8040u) | (saved_ & 0x8040u)); }
#else
    flush_subnormals_scope() = default;
#endif
    flush_subnormals_scope(const flush_subnormals_scope&) = delete;
    flush_subnormals_scope& operator=(const flush_subnormals_scope&) = delete;

  private:
#if defined(__x86_64__) || defined(__i386__)
    unsigned saved_;
#endif
};

}  // namespace exprgrad::kernels
