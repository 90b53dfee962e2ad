// expect: flex_attention: mask_mod may not read attn::param<I>
#include <exprgrad/ops/flex_attention.hpp>
using namespace exprgrad::sym::literals;
namespace attn = exprgrad::ops::attn;
int main() {
    xt::xtensor<double, 4> q = xt::zeros<double>({1, 1, 2, 2});
    const auto bad_mask = attn::q_idx - attn::param<0>;  // a mask of a learnable parameter: refused
    auto r = exprgrad::ops::flex_attention_forward(q, q, q, attn::score, bad_mask, {});
    (void)r;
}
