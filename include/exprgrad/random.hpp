// The library's random generator, a base utility that every layer may use: xoshiro256** seeded
// through SplitMix64, with an explicit 53-bit conversion to doubles. std:: distributions are avoided on purpose: their
// output differs between standard-library versions, and checkpoints must resume bit-identically anywhere.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <stdexcept>

namespace exprgrad {

/// A seedable generator whose whole state can be saved and restored.
/// Example: `rng g(42); double u = g.uniform(); auto s = g.state(); ... g.set_state(s);`
class rng {
  public:
    using state_type = std::array<std::uint64_t, 4>;

    /// Seeds the four state words from `seed` with SplitMix64 (never all zero).
    explicit rng(std::uint64_t seed = 0) { reseed(seed); }

    void reseed(std::uint64_t seed) {
        std::uint64_t x = seed;
        for (auto& w : s_) {
            x += 0x9e3779b97f4a7c15ULL;
            std::uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            w = z ^ (z >> 31);
        }
    }

    /// The next 64 random bits (xoshiro256**).
    std::uint64_t next_u64() {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// A uniform double in [0, 1): the top 53 bits times 2^-53 (every value a multiple of 2^-53).
    double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

    /// A uniform double in (0, 1]: 1 - uniform(), safe to take the logarithm of.
    double uniform_open0() { return 1.0 - uniform(); }

    /// A uniform integer in [0, n) without modulo bias (rejection on the top range). n = 0 (an empty range,
    /// which would divide by zero) throws std::invalid_argument "exprgrad::rng::below: n must be > 0, got 0".
    std::uint64_t below(std::uint64_t n) {
        if (n == 0) throw std::invalid_argument("exprgrad::rng::below: n must be > 0, got 0");
        const std::uint64_t limit = -n % n;  // 2^64 mod n: values below it are rejected
        for (;;) {
            const std::uint64_t r = next_u64();
            if (r >= limit) return r % n;
        }
    }

    /// A standard normal variate by Box–Muller (one of the pair; deterministic for a state).
    double normal() {
        const double u1 = uniform_open0();
        const double u2 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925286766559 * u2);
    }

    const state_type& state() const { return s_; }
    void set_state(const state_type& s) { s_ = s; }

  private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    state_type s_{};
};

}  // namespace exprgrad
