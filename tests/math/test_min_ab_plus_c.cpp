// Tests of math::min_ab_plus_c against brute force and the reference values of kexue.fm post 9775
// (../shared/research/articles_part2.md §4.4). Optima are not unique, so reference values compare the
// sum and check a·b + c = n; the brute force applies the same smallest-a rule, so it compares whole triples.
//
// The test case "random n up to 1e12, 10^4 values (slow)" is skipped by default: run it with
// `test_math --test-suite=slow --no-skip` (doctest test suite "slow", as in test_deer).
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <exprgrad/math/min_ab_plus_c.hpp>
#include <ostream>

namespace exprgrad::math {
// doctest prints a failing CHECK's operands with this.
inline std::ostream& operator<<(std::ostream& os, const abc_result& r) {
    return os << '(' << r.a << ", " << r.b << ", " << r.c << ')';
}
}  // namespace exprgrad::math

namespace {

using exprgrad::math::abc_method;
using exprgrad::math::abc_result;
using exprgrad::math::min_ab_plus_c;
using exprgrad::math::min_ab_plus_c_brute;
using exprgrad::math::min_ab_plus_c_counted;
using exprgrad::math::min_ab_plus_c_scan;
using u64 = std::uint64_t;
__extension__ typedef unsigned __int128 u128;
__extension__ typedef __int128 i128;

constexpr u64 u64_max = ~u64{0};

// splitmix64 (Steele, Lea, Flood 2014): a fixed-seed stream that is the same on every platform.
struct splitmix64 {
    u64 state;
    u64 next() {
        u64 z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // Uniform in [0, bound] by rejection (no modulo bias).
    u64 below_or_equal(u64 bound) {
        if (bound == u64_max) return next();
        const u64 range = bound + 1;
        const u64 limit = u64_max - u64_max % range;
        u64 x;
        do x = next();
        while (x >= limit);
        return x % range;
    }
};

bool valid(u64 n, const abc_result& r) {
    return static_cast<u128>(r.a) * r.b + r.c == n;  // 128 bits: a wrong triple must not pass by wrapping
}

// ⌈√x⌉ by bisection on 128-bit integers: independent of the library's square roots.
u128 ceil_sqrt_128(u128 x) {
    u128 lo = 0, hi = u128{1} << 64;  // hi² ≥ x for every x below 2^128
    while (lo < hi) {
        const u128 mid = lo + (hi - lo) / 2;
        if (mid * mid >= x) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

// Proves that r is the smallest-a optimum for n, without brute force over all a. Any rival triple with
// 2 ≤ a' ≤ b' and S' = a' + b' + c' ≤ S satisfies (a' − 1)(b' − 1) = n − S' + 1 ≥ K := n − S + 1 and
// b' − 1 ≤ S − a' − 1, so x = a' − 1 has x·(L − x) ≥ K with L = S − 2, that is x ≥ (L − √(L² − 4K))/2.
// Every a' from there to ⌊√n⌋ is tried with its best b' = ⌊n/a'⌋; a' = 0 gives n, a' = 1 gives n + 1, and a
// rival with a' > b' has the rival (b', a', c') with a smaller first member. Returns the a' it tried.
u64 check_smallest_optimum(u64 n, const abc_result& r) {
    CHECK(valid(n, r));
    const u64 s = r.sum();
    CHECK(s <= n);
    if (r.a == 0) {
        CHECK((r == abc_result{0, 0, n}));
    } else {
        CHECK(s < n);  // (0, 0, n) would tie and win on the smaller a
    }
    u128 a_lo = 2;
    const i128 k = static_cast<i128>(n) - static_cast<i128>(s) + 1;
    if (k > 0 && s >= 2) {
        const i128 l = static_cast<i128>(s) - 2;
        const i128 d = l * l - 4 * k;
        REQUIRE(d >= 0);  // r itself is such a triple (when r.a ≥ 2), so the quadratic has roots
        const i128 root = static_cast<i128>(ceil_sqrt_128(static_cast<u128>(d)));
        if (l > root) a_lo = static_cast<u128>((l - root) / 2) + 1;
        if (a_lo < 2) a_lo = 2;
    }
    u128 root_n = ceil_sqrt_128(n);
    if (root_n * root_n > n) --root_n;
    u64 tried = 0;
    for (u128 a = a_lo; a <= root_n; ++a) {
        ++tried;
        const u64 a64 = static_cast<u64>(a);
        const u64 rival = a64 + n / a64 + n % a64;
        if (a64 < r.a) {
            CHECK_MESSAGE(rival > s, "n=", n, " a'=", a64);
            if (rival <= s) break;
        } else {
            CHECK_MESSAGE(rival >= s, "n=", n, " a'=", a64);
            if (rival < s) break;
        }
    }
    return tried;
}

// The smallest-a optimum by enumerating every pair with a·b ≤ n: no assumption about the best b.
abc_result enumerate_all(u64 n) {
    abc_result best{0, 0, n};
    for (u64 a = 0; a <= n; ++a) {
        for (u64 b = 0; a * b <= n; ++b) {
            const abc_result t{a, b, n - a * b};
            if (t.sum() < best.sum() || (t.sum() == best.sum() && t.a < best.a)) best = t;
            if (a == 0) break;  // b does not change a·b; b = 0 is the best of them
        }
    }
    return best;
}

// The smallest-a optimum written here without the header's square roots: an optimum with a ≤ b exists (swap),
// so a·a ≤ n; for a ≥ 2 the sum n + a − b(a − 1) falls with b, so b = ⌊n/a⌋; a ∈ {0, 1} gives at least n.
abc_result loop_brute(u64 n) {
    abc_result best{0, 0, n};
    for (u64 a = 2; a * a <= n; ++a) {
        const abc_result t{a, n / a, n % a};
        if (t.sum() < best.sum()) best = t;
    }
    return best;
}

void check_against_brute(u64 n) {
    const abc_result brute = min_ab_plus_c_brute(n);
    REQUIRE(valid(n, brute));
    CHECK_MESSAGE((loop_brute(n) == brute), "n=", n);
    CHECK_MESSAGE((min_ab_plus_c(n) == brute), "n=", n);
    CHECK_MESSAGE((min_ab_plus_c_scan(n) == brute), "n=", n);
}

}  // namespace

TEST_CASE("isqrt and ceil_sqrt are exact over the whole 64-bit range") {
    using exprgrad::math::detail::ceil_sqrt;
    using exprgrad::math::detail::isqrt;
    using exprgrad::math::detail::isqrt_newton;
    auto check = [](u64 x) {
        const u64 r = isqrt(x);
        CHECK_MESSAGE(static_cast<u128>(r) * r <= x, "x=", x);
        CHECK_MESSAGE(static_cast<u128>(r + 1) * (r + 1) > x, "x=", x);
        CHECK_MESSAGE(isqrt_newton(x) == r, "x=", x);
        const u64 c = ceil_sqrt(x);
        CHECK_MESSAGE(static_cast<u128>(c) * c >= x, "x=", x);
        CHECK_MESSAGE((c == 0 || static_cast<u128>(c - 1) * (c - 1) < x), "x=", x);
    };
    for (u64 x = 0; x < 5000; ++x) check(x);
    // Around squares, where a rounded double root is off by one: small ones, those near 2^26 (where
    // doubles stop resolving k² − 1 from k²), and near 2^32 (where x itself rounds).
    for (const u64 base : {u64{2}, u64{1} << 26, (u64{1} << 32) - 4096}) {
        for (u64 k = base; k < base + 4096; ++k) {
            for (const u64 x : {k * k - 1, k * k, k * k + 1}) check(x);
        }
    }
    check(u64_max);
    check(u64_max - 1);

    // ceil_sqrt_53, the inner loop's root, for x < 2^53: around squares up to the largest below 2^53.
    using exprgrad::math::detail::ceil_sqrt_53;
    for (const u64 base : {u64{1}, u64{1} << 26, u64{94906265} - 4096}) {
        for (u64 k = base; k <= base + 4096; ++k) {
            for (const u64 x : {k * k - 1, k * k, k * k + 1}) CHECK_MESSAGE(ceil_sqrt_53(x) == ceil_sqrt(x), "x=", x);
        }
    }
    for (u64 x = 0; x < 5000; ++x) CHECK(ceil_sqrt_53(x) == ceil_sqrt(x));
    splitmix64 rng{1};
    for (int i = 0; i < 20000; ++i) check(rng.next() >> (i % 64));
    for (int i = 0; i < 20000; ++i) {
        const u64 x = rng.next() >> (11 + i % 53);
        CHECK_MESSAGE(ceil_sqrt_53(x) == ceil_sqrt(x), "x=", x);
    }
    static_assert(exprgrad::math::detail::isqrt(u64_max) == 0xFFFFFFFF);  // the integer-only path
    static_assert(exprgrad::math::detail::isqrt(99) == 9 && exprgrad::math::detail::ceil_sqrt(99) == 10);
}

TEST_CASE("small n: every pair (a, b) enumerated, including the smallest-a tie rule") {
    for (u64 n = 0; n <= 400; ++n) {
        const abc_result want = enumerate_all(n);
        CHECK_MESSAGE((min_ab_plus_c(n) == want), "n=", n);
        CHECK_MESSAGE((min_ab_plus_c_scan(n) == want), "n=", n);
        CHECK_MESSAGE((min_ab_plus_c_brute(n) == want), "n=", n);
    }
    // n < 4: nothing beats a = b = 0. n = 4, 5: (2, 2, n − 4) ties with (0, 0, n), which has the smaller a.
    for (u64 n = 0; n <= 5; ++n) CHECK((min_ab_plus_c(n) == abc_result{0, 0, n}));
    CHECK((min_ab_plus_c(6) == abc_result{2, 3, 0}));
}

TEST_CASE("exact against brute force for every n up to 200000") {
    for (u64 n = 0; n <= 200000; ++n) check_against_brute(n);
}

TEST_CASE("exact against brute force for 1000 random n up to 1e12") {
    splitmix64 rng{20230920};  // the post's date
    for (int i = 0; i < 1000; ++i) check_against_brute(rng.below_or_equal(1000000000000ULL));
}

TEST_CASE("random n up to 1e12, 10^4 values (slow)" * doctest::test_suite("slow") * doctest::skip()) {
    splitmix64 rng{9775};
    for (int i = 0; i < 10000; ++i) check_against_brute(rng.below_or_equal(1000000000000ULL));
}

TEST_CASE("the smallest-a rule among optima that are not unique") {
    // §4.4: both (25, 40, 0) and (27, 37, 1) reach 65 for n = 1000; the smaller a is returned.
    CHECK((min_ab_plus_c(1000) == abc_result{25, 40, 0}));
    // Across many n several a reach the optimum; list them all and check the smallest is returned.
    int ties = 0;
    for (u64 n = 6; n <= 20000; ++n) {
        const abc_result r = min_ab_plus_c(n);
        u64 smallest = 0, count = 0;
        for (u64 a = 2; a * a <= n; ++a) {
            if (a + n / a + n % a != r.sum()) continue;
            if (count++ == 0) smallest = a;
        }
        CHECK_MESSAGE(r.a == smallest, "n=", n);
        if (count > 1) ++ties;
    }
    CHECK(ties > 1000);  // so the brute-force comparisons above exercise the rule too
}

TEST_CASE("reference sums: n = 1..40 and 100..140 (notes §4.4)") {
    constexpr std::array<u64, 40> first = {1,  2,  3,  4,  5,  5,  6,  6,  6,  7,  8,  7,  8,  9,
                                           8,  8,  9,  9,  10, 9,  10, 11, 12, 10, 10, 11, 12, 11,
                                           12, 11, 12, 12, 13, 14, 12, 12, 13, 14, 15, 13};
    constexpr std::array<u64, 41> hundred = {20, 21, 22, 23, 21, 22, 23, 24, 21, 22, 21, 22, 22, 23,
                                             24, 25, 26, 22, 23, 24, 22, 22, 23, 24, 25, 26, 23, 24,
                                             24, 25, 23, 24, 23, 24, 25, 24, 25, 26, 27, 28, 24};
    for (u64 i = 0; i < first.size(); ++i) {
        const u64 n = i + 1;
        const abc_result r = min_ab_plus_c(n);
        CHECK_MESSAGE(r.sum() == first[i], "n=", n);
        CHECK(valid(n, r));
    }
    for (u64 i = 0; i < hundred.size(); ++i) {
        const u64 n = i + 100;
        const abc_result r = min_ab_plus_c(n);
        CHECK_MESSAGE(r.sum() == hundred[i], "n=", n);
        CHECK(valid(n, r));
    }
}

TEST_CASE("reference table of notes §4.4") {
    struct row {
        u64 n, s;
        abc_result one_optimum;  // as listed in the notes: checked for a·b + c = n and its sum, not compared
    };
    constexpr row table[] = {
        {101, 21, {10, 10, 1}},
        {128, 24, {8, 16, 0}},
        {129, 25, {8, 16, 1}},
        {130, 23, {10, 13, 0}},
        {1000, 65, {25, 40, 0}},
        {30129, 370, {121, 249, 0}},
        {999983, 2008, {995, 1005, 8}},
        {1000000, 2000, {1000, 1000, 0}},
        {1000001, 2001, {1000, 1000, 1}},
        {100000007, 20007, {10000, 10000, 7}},
        {123456789, 22230, {10821, 11409, 0}},
        {987654321, 62871, {31382, 31472, 17}},
        {1000000007, 63257, {31250, 32000, 7}},
        {2147483647, 92711, {46030, 46654, 27}},
        {999999999989, 2000005, {999996, 1000004, 5}},
        {31415926535897, 11210175, {5595658, 5614340, 177}},
        {99999999999973, 20000009, {9999994, 10000006, 9}},
        {100000000000031, 20000016, {9990005, 10010005, 6}},
        {123456789012345, 22222411, {11079206, 11143108, 97}},
        {1000000000000000003, 2000000003, {1000000000, 1000000000, 3}},
        {(u64{1} << 61) - 1, 3037003296, {1518444813, 1518555689, 2794}},
    };
    for (const row& t : table) {
        CAPTURE(t.n);
        CHECK(valid(t.n, t.one_optimum));
        CHECK(t.one_optimum.sum() == t.s);
        const abc_result r = min_ab_plus_c(t.n);
        CHECK(valid(t.n, r));
        CHECK(r.sum() == t.s);
        CHECK((min_ab_plus_c_scan(t.n) == r));
        if (t.n <= 1000000000000ULL) {
            CHECK((min_ab_plus_c_brute(t.n) == r));
        } else {
            check_smallest_optimum(t.n, r);  // cheaper than brute force; the notes lack it for the last two rows
        }
    }
}

TEST_CASE("n = 2^64 - 1 and the largest perfect square below it") {
    // S ≥ 2√(ab) + c ≥ ⌈2√n⌉ whenever ab ≥ 1 (notes §4.2); reaching that bound proves optimality.
    auto lower_bound = [](u64 n) { return static_cast<u64>(ceil_sqrt_128(static_cast<u128>(n) * 4)); };

    // 2^64 − 1 = (2^32 − 1)(2^32 + 1): S = 2^33 = ⌈2√n⌉. The pair is the only one with c = 0 and that sum,
    // and the window check below rules out any other a.
    const abc_result top = min_ab_plus_c(u64_max);
    CHECK((top == abc_result{0xFFFFFFFF, 0x100000001, 0}));
    CHECK(top.sum() == lower_bound(u64_max));
    CHECK(check_smallest_optimum(u64_max, top) <= 2);
    CHECK((min_ab_plus_c_scan(u64_max) == top));

    // (2^32 − 1)² = 2^64 − 2^33 + 1: a = b = √n, c = 0 meets the bound 2√n, and AM–GM is strict otherwise.
    constexpr u64 square = 0xFFFFFFFE00000001;
    const abc_result sq = min_ab_plus_c(square);
    CHECK((sq == abc_result{0xFFFFFFFF, 0xFFFFFFFF, 0}));
    CHECK(sq.sum() == lower_bound(square));
    CHECK(check_smallest_optimum(square, sq) <= 1);
    CHECK((min_ab_plus_c_scan(square) == sq));
    CHECK((min_ab_plus_c(square + 1) == abc_result{0xFFFFFFFF, 0xFFFFFFFF, 1}));
    CHECK(min_ab_plus_c(square - 1).sum() == lower_bound(square - 1));  // (2^32 − 2)·2^32, c = 0
}

TEST_CASE("large random n: optimality proved by the window argument") {
    splitmix64 rng{42};
    for (int i = 0; i < 6; ++i) {
        const u64 n = rng.next() >> (i % 3 * 8);  // around 2^64, 2^56 and 2^48
        CAPTURE(n);
        const abc_result r = min_ab_plus_c(n);
        check_smallest_optimum(n, r);
        CHECK((min_ab_plus_c_scan(n) == r));
    }
}

TEST_CASE("iteration counts: the scan is about 2 + 2·n^{1/4}, the cut never does more") {
    CHECK(min_ab_plus_c_counted(u64_max, abc_method::scan).iterations == 131077);
    CHECK(min_ab_plus_c_counted(u64_max, abc_method::cut).iterations == 2);  // p = 2^33 − 1, then 2^33 = S
    CHECK(min_ab_plus_c_counted(1000000, abc_method::brute).iterations == 999);
    splitmix64 rng{7};
    for (int i = 0; i < 300; ++i) {
        const u64 n = rng.next() >> (i % 40);
        const auto cut = min_ab_plus_c_counted(n, abc_method::cut);
        const auto scan = min_ab_plus_c_counted(n, abc_method::scan);
        CHECK((cut.result == min_ab_plus_c(n)));
        CHECK((scan.result == cut.result));
        CHECK(cut.iterations <= scan.iterations);
        CHECK(cut.iterations >= 1);
    }
}

TEST_CASE("constant evaluation gives the same answers") {
    static_assert(min_ab_plus_c(130) == abc_result{10, 13, 0});
    static_assert(min_ab_plus_c(129).sum() == 25);
    static_assert(min_ab_plus_c(1000000007).sum() == 63257);
    static_assert(min_ab_plus_c(~std::uint64_t{0}) == abc_result{0xFFFFFFFF, 0x100000001, 0});
    constexpr auto destructured = [] {
        auto [a, b, c] = min_ab_plus_c(1000);
        return a * b + c;
    }();
    static_assert(destructured == 1000);
    CHECK(true);
}

TEST_CASE("the post's O(sqrt N) middle version is not exact (docs/abc.md)") {
    // Version 2 of the post scans a in (√(N/2), √N] with b = ⌊N/a⌋. For N = 129 the optimum (8, 16, 1),
    // S = 25, has a = 8 < √64.5, and the range gives 26 at best, with the interval open or closed.
    auto middle = [](u64 n, bool closed) {
        u64 best = ~u64{0};
        for (u64 a = 1; a * a <= n; ++a) {
            if (closed ? 2 * a * a >= n : 2 * a * a > n) {
                const u64 s = a + n / a + n % a;
                if (s < best) best = s;
            }
        }
        return best;
    };
    CHECK(min_ab_plus_c(129).sum() == 25);
    CHECK(middle(129, false) == 26);
    CHECK(middle(129, true) == 26);
    CHECK(middle(128, false) == 25);  // 128 = 2·8²: only the open interval misses a = 8
    CHECK(middle(128, true) == 24);
}
