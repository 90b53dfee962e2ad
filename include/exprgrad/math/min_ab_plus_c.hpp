// The exact minimum of a + b + c over non-negative integers with a·b + c = n, after kexue.fm post 9775
// ("自然数集中 N = ab + c 时 a + b + c 的最小值"). Post: https://kexue.fm/archives/9775; the
// algorithm, its bounds and its measured cost: docs/abc.md. Standard headers only.
#pragma once

#include "exprgrad/require_cxx20.hpp"  // first: refuses a standard older than C++20

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace exprgrad::math {

/// A triple of non-negative integers with a·b + c = n; destructure it with `auto [a, b, c] = ...`.
struct abc_result {
    std::uint64_t a;
    std::uint64_t b;
    std::uint64_t c;

    /// a + b + c. Never wraps for a triple returned by the functions below: their sum is at most n (the
    /// triple (0, 0, n) is always a candidate), so it fits in 64 bits even for n = 2^64 − 1. A hand-built
    /// triple's sum is taken modulo 2^64.
    constexpr std::uint64_t sum() const noexcept { return a + b + c; }

    friend constexpr bool operator==(const abc_result&, const abc_result&) = default;
};

/// The loops behind min_ab_plus_c_counted.
enum class abc_method {
    cut,    ///< the (p, q) scan, stopped once p alone exceeds the best sum: what min_ab_plus_c runs
    scan,   ///< the (p, q) scan over the post's whole range, about 2 + 2·n^{1/4} values of p
    brute,  ///< every a in [2, ⌊√n⌋] with b = ⌊n/a⌋: Θ(√n) divisions
};

/// A result and the number of loop iterations that produced it (values of p, or of a for brute).
struct abc_run {
    abc_result result;
    std::uint64_t iterations;
};

namespace detail {

__extension__ typedef __int128 i128;  // __extension__: 128-bit integers are a GNU extension (-Wpedantic)

/// ⌊√x⌋ with integers only (Newton's iteration from above): the constant-evaluation path and a test oracle.
constexpr std::uint64_t isqrt_newton(std::uint64_t x) noexcept {
    if (x < 2) return x;
    // 2^⌈bits/2⌉ ≥ √x, and from any start at or above ⌊√x⌋ the integer iteration decreases strictly until it
    // reaches ⌊√x⌋, where the next step no longer decreases. r + x/r ≤ 2^33 cannot overflow.
    std::uint64_t r = std::uint64_t{1} << ((std::bit_width(x) + 1) / 2);
    for (;;) {
        const std::uint64_t next = (r + x / r) / 2;
        if (next >= r) return r;
        r = next;
    }
}

/// ⌊√x⌋, exact for every 64-bit x. At run time a double square root seeds it: x rounds to 53 bits and
/// the root rounds once, so the seed is within 1 of the answer, and the two loops correct it.
constexpr std::uint64_t isqrt(std::uint64_t x) noexcept {
    if (std::is_constant_evaluated()) return isqrt_newton(x);
    constexpr std::uint64_t max_root = 0xFFFFFFFF;  // ⌊√(2^64 − 1)⌋; a larger r would overflow r·r
    std::uint64_t r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(x)));
    if (r > max_root) r = max_root;
    while (r * r > x) --r;
    while (r < max_root && (r + 1) * (r + 1) <= x) ++r;
    return r;
}

/// ⌈√x⌉, exact for every 64-bit x (at most 2^32).
constexpr std::uint64_t ceil_sqrt(std::uint64_t x) noexcept {
    const std::uint64_t r = isqrt(x);
    return r * r < x ? r + 1 : r;
}

/// ⌈√x⌉ for x < 2^53, the inner loop's square root. Such x converts to double exactly, and the correctly
/// rounded root lies between ⌊√x⌋ and ⌈√x⌉ (both representable), so one comparison fixes it: about 30%
/// faster per iteration than the general ceil_sqrt.
constexpr std::uint64_t ceil_sqrt_53(std::uint64_t x) noexcept {
    if (std::is_constant_evaluated()) return ceil_sqrt(x);
    const std::uint64_t r = static_cast<std::uint64_t>(std::sqrt(static_cast<double>(x)));
    return r * r < x ? r + 1 : r;
}

/// Version B of the post: p = a + b and q = b − a. With Cut, stops once p exceeds the best sum (S ≥ p);
/// otherwise scans the post's whole range. Either way p never passes p_end, since S(p0 + 1) < p_end.
template <bool Cut>
constexpr abc_run search_pq(std::uint64_t n) noexcept {
    // With p ≡ q (mod 2) and 0 ≤ q ≤ p: a·b = (p² − q²)/4, so with m = p² − 4n, c = n − a·b = (q² − m)/4
    // and S = p + c. For a fixed p the smallest admissible q is best (S grows with q): the least
    // q ≡ p (mod 2) with q² ≥ m. Every p gives a triple, and S(p) ≥ p since c ≥ 0.
    //
    // p = 0 is (0, 0, n), S = n. p = 1, 2 give S = n + 1. For 3 ≤ p ≤ p0 = ⌊2√n⌋, m ≤ 0, q = p mod 2 and
    // S = n + p − ⌊p²/4⌋, strictly decreasing in p; so below p0 only p = 0 can matter, and the loop starts
    // at p0. Ties keep the smallest a (a tie with p = 0 keeps a = 0).
    abc_result best{0, 0, n};
    std::uint64_t best_sum = n;

    const std::uint64_t r = isqrt(n);
    // p0 = 2r or 2r + 1, and (2r + 1)² ≤ 4n ⟺ r² + r < n; r < 2^32 keeps r² + r below 2^64.
    const std::uint64_t p0 = 2 * r + (r * r + r < n ? 1 : 0);
    // The post's bound, made exact: S(p0 + 1) < 2√n + 2 + √(1 + 4√n) ≤ p0 + 3 + ⌈√(4r + 5)⌉ (docs/abc.md),
    // and p ≤ S for the optimum, so no optimal p lies beyond p_end.
    const std::uint64_t p_end = p0 + 3 + ceil_sqrt(4 * r + 5);

    // m = p² − 4n needs 128 bits once (4n overflows at n ≥ 2^62); afterwards it moves by 2p + 1 per step
    // and stays in (−2^35, 2^53), as ceil_sqrt_53 needs: 4n − p0² ≤ 2·p0, and with k = p − p0 < 2^18
    // (p ≤ p_end in both loops), p² − 4n ≤ 2·p0·k + k² < 2^52 + 2^36.
    std::int64_t m = static_cast<std::int64_t>(static_cast<i128>(p0) * p0 - static_cast<i128>(n) * 4);
    std::uint64_t iterations = 0;
    for (std::uint64_t p = p0; Cut ? p <= best_sum : p <= p_end; ++p) {
        ++iterations;
        std::uint64_t q = m <= 0 ? 0 : ceil_sqrt_53(static_cast<std::uint64_t>(m));
        q += (q ^ p) & 1;  // match p's parity
        // q < √m + 2 < 2^27, so q² fits; q² − m ≥ 0 is a multiple of 4 since p ≡ q (mod 2).
        const std::uint64_t c = static_cast<std::uint64_t>(static_cast<std::int64_t>(q * q) - m) / 4;
        const std::uint64_t s = p + c;
        const std::uint64_t a = (p - q) / 2;
        if (s < best_sum || (s == best_sum && a < best.a)) {
            best = {a, (p + q) / 2, c};
            best_sum = s;
        }
        m += static_cast<std::int64_t>(2 * p + 1);
    }
    return {best, iterations};
}

/// Every a in [2, ⌊√n⌋] with its best b = ⌊n/a⌋ (S = n + a − (a − 1)·b falls as b grows), plus a = 0.
constexpr abc_run search_brute(std::uint64_t n) noexcept {
    // a = 1 gives S = n + 1 > n; an optimum with a > b has the optimum (b, a, c) with a smaller first
    // member, so the smallest optimal a is at most ⌊√n⌋. Strict < keeps the smallest a among ties.
    abc_result best{0, 0, n};
    std::uint64_t best_sum = n;
    const std::uint64_t r = isqrt(n);
    std::uint64_t iterations = 0;
    for (std::uint64_t a = 2; a <= r; ++a) {
        ++iterations;
        const std::uint64_t b = n / a;
        const std::uint64_t c = n % a;
        if (a + b + c < best_sum) {
            best = {a, b, c};
            best_sum = a + b + c;
        }
    }
    return {best, iterations};
}

}  // namespace detail

/// The triple (a, b, c) of non-negative integers with a·b + c = n and the least S = a + b + c; among
/// optimal triples, the one with the smallest a (then b = ⌊n/a⌋ for a ≥ 2, and a ≤ b). Exact for every n
/// in [0, 2^64 − 1]; S is at most n, and at least ⌈2√n⌉ when a·b ≥ 1, with equality for perfect squares.
///
/// Formula: with p = a + b and q = b − a, c = (q² − (p² − 4n))/4 and S = p + c; for each p from ⌊2√n⌋ up,
/// q is the least integer of p's parity with q² ≥ p² − 4n (an exact integer square root), and the scan
/// stops as soon as p exceeds the best S found, since S ≥ p. That takes O(n^{1/4}) steps at worst and far
/// fewer for most n (docs/abc.md); no floating-point value reaches the answer. Usable in constant
/// expressions, where the square roots are integer-only.
///
/// Small n: for n ≤ 5 the answer is (0, 0, n) with S = n. For n = 4 and 5, (2, 2, n − 4) ties with it and
/// loses on the smaller a.
///
/// Examples: min_ab_plus_c(130) == {10, 13, 0} (S = 23, whereas a = b = 11, c = 9 gives 31);
/// min_ab_plus_c(2^64 − 1) == {2^32 − 1, 2^32 + 1, 0}; `auto [a, b, c] = min_ab_plus_c(1000);` gives
/// (25, 40, 0), S = 65, though (27, 37, 1) is optimal too.
constexpr abc_result min_ab_plus_c(std::uint64_t n) noexcept { return detail::search_pq<true>(n).result; }

/// The same answer as min_ab_plus_c(n) from the post's plain scan over p in (2√n, 2√n + 2 + √(1 + 4√n)]
/// (padded to integer bounds), about 2 + 2·n^{1/4} steps: 131077 at n = 2^64 − 1. For comparison and tests.
constexpr abc_result min_ab_plus_c_scan(std::uint64_t n) noexcept { return detail::search_pq<false>(n).result; }

/// The same answer as min_ab_plus_c(n) by brute force: S = min(n, min over 2 ≤ a ≤ ⌊√n⌋ of a + ⌊n/a⌋ +
/// n mod a), keeping the smallest a. Θ(√n) divisions: about 2.5 ms at n = 10^12 and 10 s near 2^64 on the
/// machine of docs/abc.md. The reference for tests and benchmarks.
constexpr abc_result min_ab_plus_c_brute(std::uint64_t n) noexcept { return detail::search_brute(n).result; }

/// The answer of `method` (cut = min_ab_plus_c, scan = min_ab_plus_c_scan, brute = min_ab_plus_c_brute)
/// and the number of loop iterations it took, for benchmarks: e.g. min_ab_plus_c_counted(2^64 − 1,
/// abc_method::scan).iterations == 131077.
constexpr abc_run min_ab_plus_c_counted(std::uint64_t n, abc_method method) noexcept {
    switch (method) {
        case abc_method::scan:
            return detail::search_pq<false>(n);
        case abc_method::brute:
            return detail::search_brute(n);
        case abc_method::cut:
        default:
            return detail::search_pq<true>(n);
    }
}

}  // namespace exprgrad::math
