// The tokenizer's random generator is the library's: exprgrad::rng (xoshiro256** seeded through
// splitmix64, `uniform()` = (x >> 11)·2^-53, `state()` / `set_state()`), defined in random.hpp. This
// header only forwards to it so that text/ code names its dependency in one place. The samplers rely on
// exactly two properties, both tested in tests/text/test_random.cpp: uniform() is a multiple of 2^-53 in
// [0, 1) (so `uniform() < 1.0` always holds), and a saved state replays the same draws.
#pragma once

#include "exprgrad/random.hpp"
