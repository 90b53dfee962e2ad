// expect: flex_attention: mask_mod may not read attn::score
#include <exprgrad/ops/flex_attention.hpp>
using namespace exprgrad::sym::literals;
namespace attn = exprgrad::ops::attn;
int main() {
    xt::xtensor<double, 4> q = xt::zeros<double>({1, 1, 2, 2});
    const auto bad_mask = attn::score + 1_c;  // a mask of the score: refused
    auto r = exprgrad::ops::flex_attention_forward(q, q, q, attn::score, bad_mask, {});
    (void)r;
}
