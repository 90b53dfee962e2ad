// Attention over strided views (the heads inside a fused QKV projection) and the heads-attention node: equal to the
// kernels on contiguous copies of the heads, forward and VJP, with row padding (d not a multiple of the tile
// width), causal masks, key padding, cosine attention and query blocks past 64 rows; every entry of the
// projection's gradient written; gradcheck of the node; its shape errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xtensor.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/kernels/avx512_dispatch.hpp"
#include "exprgrad/ops/heads_attention_node.hpp"

using namespace exprgrad;
using namespace exprgrad::ops;

namespace {

template <class T>
xt::xtensor<T, 3> random_qkv(std::size_t B, std::size_t Tn, std::size_t width, std::uint64_t seed) {
    xt::xtensor<T, 3> a = xt::xtensor<T, 3>::from_shape({B, Tn, width});
    rng g(seed);
    for (auto& v : a) v = static_cast<T>(2 * g.uniform() - 1);
    return a;
}

// Part which (0 q, 1 k, 2 v) of qkv [B, T, 3·H·d] as a contiguous [B, H, T, d] array.
template <class T>
xt::xtensor<T, 4> heads_of(const xt::xtensor<T, 3>& qkv, std::size_t H, std::size_t which) {
    const std::size_t B = qkv.shape(0), Tn = qkv.shape(1), d = qkv.shape(2) / (3 * H);
    xt::xtensor<T, 4> r = xt::xtensor<T, 4>::from_shape({B, H, Tn, d});
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < Tn; ++t)
                for (std::size_t x = 0; x < d; ++x) r(b, h, t, x) = qkv(b, t, which * H * d + h * d + x);
    return r;
}

template <class T>
void check_strided(std::size_t B, std::size_t H, std::size_t Tn, std::size_t d, const attention_options& o) {
    CAPTURE(B);
    CAPTURE(H);
    CAPTURE(Tn);
    CAPTURE(d);
    CAPTURE(o.causal);
    CAPTURE(o.normalize_qk);
    const std::size_t w = H * d;
    const auto qkv = random_qkv<T>(B, Tn, 3 * w, 17 + d + Tn);
    const auto q = heads_of(qkv, H, 0), k = heads_of(qkv, H, 1), v = heads_of(qkv, H, 2);
    const attention_rows in{Tn * 3 * w, d, 3 * w}, merged{Tn * w, d, w};
    const attention_view<T, 4> qv{qkv.data(), {B, H, Tn, d}, in}, kv{qkv.data() + w, {B, H, Tn, d}, in},
        vv{qkv.data() + 2 * w, {B, H, Tn, d}, in};
    CHECK(!qv.contiguous());

    const auto ref = attention_forward(q, k, v, o);
    std::vector<T> y(B * Tn * w, std::numeric_limits<T>::quiet_NaN()), lse(B * H * Tn);
    attention_workspace<T> ws;
    attention_forward_into(qv, kv, vv, o, y.data(), merged, lse.data(), ws);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < Tn; ++t) {
                CHECK(lse[(b * H + h) * Tn + t] == ref.lse(b, h, t));
                for (std::size_t x = 0; x < d; ++x) CHECK(y[(b * Tn + t) * w + h * d + x] == ref.out(b, h, t, x));
            }

    // dout in the merged layout; the gradient of qkv written through the strided rows
    const auto dout_m = random_qkv<T>(B, Tn, w, 99 + d);
    xt::xtensor<T, 4> dout = xt::xtensor<T, 4>::from_shape({B, H, Tn, d});
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < Tn; ++t)
                for (std::size_t x = 0; x < d; ++x) dout(b, h, t, x) = dout_m(b, t, h * d + x);
    const auto g = attention_vjp(q, k, v, ref.out, ref.lse, dout, o);
    std::vector<T> dqkv(B * Tn * 3 * w, std::numeric_limits<T>::quiet_NaN());
    const attention_view<T, 4> outv{y.data(), {B, H, Tn, d}, merged}, doutv{dout_m.data(), {B, H, Tn, d}, merged};
    const attention_view<T, 3> lsev{lse.data(), {B, H, Tn}};
    const auto s = attention_vjp_into(qv, kv, vv, outv, lsev, doutv, o, dqkv.data(), in, dqkv.data() + w, in,
                                      dqkv.data() + 2 * w, in, ws, attention_reuse::forward);
    CHECK(ws.problem.reused);
    CHECK(s.dscale == doctest::Approx(g.dscale).epsilon(1e-12));
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < Tn; ++t)
                for (std::size_t x = 0; x < d; ++x) {
                    const T* row = dqkv.data() + (b * Tn + t) * 3 * w + h * d + x;
                    CHECK(row[0] == g.dq(b, h, t, x));
                    CHECK(row[w] == g.dk(b, h, t, x));
                    CHECK(row[2 * w] == g.dv(b, h, t, x));
                }
}

}  // namespace

TEST_CASE("attention over strided heads equals attention on contiguous copies, forward and VJP") {
    // float on both instruction-set paths (on a CPU without AVX-512F both runs take the 256-bit one)
    for (const bool wide : {false, true}) {
        CAPTURE(wide);
        kernels::force_avx512(wide);
        for (const std::size_t d : {std::size_t{16}, std::size_t{5}}) {
            check_strided<float>(2, 3, 70, d, {.causal = true});
            check_strided<double>(2, 3, 70, d, {.causal = true});
            check_strided<float>(1, 2, 9, d, {});
            check_strided<float>(2, 2, 65, d, {.causal = true, .key_lengths = {40, 65}});
            check_strided<double>(2, 2, 12, d, {.normalize_qk = true});
        }
        // one head per batch entry: fewer heads than threads takes the key-block-parallel backward
        check_strided<float>(1, 1, 130, 8, {.causal = true, .threads = 2});
        kernels::reset_avx512();
    }
}

TEST_CASE("a VJP given the forward's pointers and shapes but other strides packs again") {
    const std::size_t B = 1, H = 2, Tn = 9, d = 4, w = H * d;
    const auto qkv = random_qkv<float>(B, Tn, 3 * w, 3);
    const auto q = heads_of(qkv, H, 0), k = heads_of(qkv, H, 1), v = heads_of(qkv, H, 2);
    const attention_rows in{Tn * 3 * w, d, 3 * w};
    attention_workspace<float> ws;
    std::vector<float> out(B * H * Tn * d), lse(B * H * Tn);
    // the forward on the strided heads ...
    const attention_view<float, 4> qs{qkv.data(), {B, H, Tn, d}, in}, ks{qkv.data() + w, {B, H, Tn, d}, in},
        vs{qkv.data() + 2 * w, {B, H, Tn, d}, in};
    attention_forward_into(qs, ks, vs, {}, out.data(), lse.data(), ws);
    // ... then a VJP on the same pointers read row-major (other values): it must not take the forward's packing
    const attention_view<float, 4> qr{qkv.data(), {B, H, Tn, d}}, kr{qkv.data() + w, {B, H, Tn, d}},
        vr{qkv.data() + 2 * w, {B, H, Tn, d}};
    xt::xtensor<float, 4> qc = xt::xtensor<float, 4>::from_shape({B, H, Tn, d}), kc = qc, vc = qc;
    std::copy(qkv.data(), qkv.data() + qc.size(), qc.data());
    std::copy(qkv.data() + w, qkv.data() + w + kc.size(), kc.data());
    std::copy(qkv.data() + 2 * w, qkv.data() + 2 * w + vc.size(), vc.data());
    const auto f = attention_forward(qc, kc, vc);
    xt::xtensor<float, 4> dout = xt::ones<float>({B, H, Tn, d});
    const auto g = attention_vjp(qc, kc, vc, f.out, f.lse, dout);
    std::vector<float> dq(qc.size()), dk(qc.size()), dv(qc.size());
    attention_vjp_into(qr, kr, vr, view_of(f.out), view_of(f.lse), view_of(dout), {}, dq.data(), dk.data(),
                       dv.data(), ws, attention_reuse::forward);
    CHECK(!ws.problem.reused);
    for (std::size_t i = 0; i < dq.size(); ++i) {
        CHECK(dq[i] == g.dq.data()[i]);
        CHECK(dk[i] == g.dk.data()[i]);
        CHECK(dv[i] == g.dv.data()[i]);
    }
}

TEST_CASE("heads-attention node: value and gradient against the kernels on the split heads, and gradcheck") {
    const std::size_t B = 2, H = 2, Tn = 6, d = 3, w = H * d;
    const auto qkv = random_qkv<double>(B, Tn, 3 * w, 5);
    const auto wt = random_qkv<double>(B, Tn, w, 6);
    constexpr auto QKV = tensor<0>;
    constexpr auto Hn = tensor<1>;
    constexpr auto Wt = tensor<2>;
    auto prog = value_and_grad(sum(heads_attention_node<attention_config<true>>(QKV, Hn) * Wt), wrt<0>);
    const xt::xarray<double> qkv_a = qkv, wt_a = wt;
    auto [loss, grads] = prog(qkv_a, H, wt_a);
    const auto q = heads_of(qkv, H, 0), k = heads_of(qkv, H, 1), v = heads_of(qkv, H, 2);
    const attention_options o{.causal = true};
    const auto f = attention_forward(q, k, v, o);
    xt::xtensor<double, 4> dout = xt::xtensor<double, 4>::from_shape({B, H, Tn, d});
    double want = 0;
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < Tn; ++t)
                for (std::size_t x = 0; x < d; ++x) {
                    dout(b, h, t, x) = wt(b, t, h * d + x);
                    want += f.out(b, h, t, x) * wt(b, t, h * d + x);
                }
    CHECK(loss == doctest::Approx(want).epsilon(1e-12));
    const auto g = attention_vjp(q, k, v, f.out, f.lse, dout, o);
    const auto& gq = std::get<0>(grads);
    for (std::size_t b = 0; b < B; ++b)
        for (std::size_t h = 0; h < H; ++h)
            for (std::size_t t = 0; t < Tn; ++t)
                for (std::size_t x = 0; x < d; ++x) {
                    CHECK(gq(b, t, h * d + x) == doctest::Approx(g.dq(b, h, t, x)).epsilon(1e-12));
                    CHECK(gq(b, t, w + h * d + x) == doctest::Approx(g.dk(b, h, t, x)).epsilon(1e-12));
                    CHECK(gq(b, t, 2 * w + h * d + x) == doctest::Approx(g.dv(b, h, t, x)).epsilon(1e-12));
                }
    // qkv also read by another term: one of the two contributions is added to the other (the node writes into
    // scratch when it comes second)
    auto r = check::gradcheck(sum(square(heads_attention_node(QKV, Hn))) + sum(QKV * QKV), wrt<0>, qkv_a, 2.0);
    INFO(r.message());
    CHECK(r.ok);
}

TEST_CASE("heads-attention node: a head count that does not split qkv, or the wrong rank, is refused by name") {
    constexpr auto QKV = tensor<0>;
    constexpr auto Hn = tensor<1>;
    auto prog = value_and_grad(sum(heads_attention_node(QKV, Hn)), wrt<0>);
    const xt::xarray<double> qkv = xt::ones<double>({1, 4, 12});
    CHECK_THROWS_WITH_AS(prog(qkv, 3.0), doctest::Contains("heads_attention: heads = 3"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(prog(qkv, 0.0), doctest::Contains("heads = 0"), std::invalid_argument);
    const xt::xarray<double> flat = xt::ones<double>({4, 12});
    CHECK_THROWS_WITH_AS(prog(flat, 2.0), doctest::Contains("qkv must be [B, T, 3·H·d]"), std::invalid_argument);
    CHECK_NOTHROW(prog(qkv, 2.0));
}
