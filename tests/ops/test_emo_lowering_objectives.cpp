// A lowered EMO definition (the EmoDefinition node) against the same program compiled as written, for every
// objective the lowering takes (emo_lowering_check.hpp gives the comparison and its tolerance). Its own
// translation unit: five objectives are ten programs to compile (the recognizer and the other programs are
// test_emo_lowering.cpp).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>

#include <xtensor/xarray.hpp>

#include "emo_lowering_check.hpp"
#include "random_arrays.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;
using namespace emo_lowering_check;
using test_util::random_array;

namespace {

// every objective the lowering takes, on logits [B, T, V] with an ignored position and a −inf logit; gradients
// with respect to Z, Y and E (Y's and E's are zero on both sides)
template <emo_objective O, class Cap = sym::Const<3>>
void check_objective(std::uint64_t seed) {
    CAPTURE(to_string(O));
    auto z = random_array({2, 3, 11}, seed, -4, 4);
    const auto e = random_array({11, 6}, seed + 1);
    z(1, 2, 9) = -INFINITY;
    const xt::xarray<double> y = {{1, 5, 10}, {-100, 7, 0}};
    same_as_written<0, 1, 2>(emo_definition<O, -100, Cap>(Z, Y, E), z, y, e);
}

}  // namespace

TEST_CASE("a lowered EMO definition equals the definition as written, for every objective it lowers") {
    check_objective<emo_objective::emo>(10);
    check_objective<emo_objective::mode1>(20);
    check_objective<emo_objective::mode1_capped>(30);
    check_objective<emo_objective::mode1_capped, half>(40);  // a cap that binds (test_emo_definition.cpp)
    check_objective<emo_objective::mode2>(50);
}
