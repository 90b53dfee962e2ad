// The run-time transformer stack (nn/transformer.hpp): its VJP against central finite differences in
// float64 (attention and DEER blocks, an n-dependent scale policy), a self-attention layer against a naive
// loop implementation, causality, the errors for bad shapes, and the layers recorded into a caller's record.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <xtensor/xarray.hpp>

#include "exprgrad/exprgrad.hpp"
#include "exprgrad/nn/transformer.hpp"

using namespace exprgrad;

namespace fields_test {
enum class mode { a, b };
enum class named { first, second };
const char* to_string(named n) { return n == named::first ? "first" : "second"; }
struct inner {
    bool on = true;
    double rate = 0.1;
};
struct outer {
    std::size_t n = 3;
    inner in{};
    std::vector<double> xs{1.5, -2.0};
    std::string name = "x y";
    mode m = mode::b;
    float tiny = 1e-8f;
    named k = named::second;
};
}  // namespace fields_test
BOOST_HANA_ADAPT_STRUCT(fields_test::inner, on, rate);
BOOST_HANA_ADAPT_STRUCT(fields_test::outer, n, in, xs, name, m, tiny, k);

namespace {

xt::xarray<double> randn(std::initializer_list<std::size_t> shape, rng& gen) {
    xt::xarray<double> a = xt::xarray<double>::from_shape(shape);
    nn::init::normal(a, gen, 0.0, 1.0);
    return a;
}

// Two blocks of width 8 with 2 heads; DEER blocks of state width 4.
nn::transformer_options small(bool causal, std::vector<std::size_t> deer_layers) {
    nn::transformer_options o;
    o.layers = 2;
    o.width = 8;
    o.heads = 2;
    o.attention.causal = causal;
    o.deer_layers = std::move(deer_layers);
    o.deer_state = 4;
    return o;
}

}  // namespace

TEST_CASE("transformer stack: VJP of input and every parameter equals central differences (float64)") {
    rng gen(3);
    nn::parameter_set<double> params;
    nn::transformer_options o = small(true, {1});
    o.attention.scale = scale::gradient_max();
    auto s = nn::transformer<double>(params, "tf", o, gen);
    REQUIRE(s.deer.size() == 1);
    const xt::xarray<double> x = randn({2, 5, 8}, gen), w = randn({2, 5, 8}, gen);
    s.blocks->forward(x);
    params.zero_grad();
    s.blocks->backward(w);
    CHECK(s.deer[0]->last_report().converged);
    CHECK_FALSE(s.deer[0]->last_report().fallback);
    // check::vjp_check over the input and every parameter: every element (the hand-written loop took every
    // element of x and every third of each parameter), random directions, and NaN propagation.
    using arrays = std::vector<xt::xarray<double>>;
    auto set_params = [&](const arrays& in) {
        std::size_t k = 1;
        for (auto& p : params) p.value = in[k++];
    };
    auto f = [&](const arrays& in) {
        set_params(in);
        return xt::xarray<double>(s.blocks->forward(in[0]));
    };
    auto vjp = [&](const arrays& in, const xt::xarray<double>& dout) {
        set_params(in);
        s.blocks->forward(in[0]);
        params.zero_grad();
        arrays g = {s.blocks->backward(dout)};
        for (auto& p : params) g.push_back(p.grad);
        return g;
    };
    arrays in = {x};
    for (auto& p : params) in.push_back(p.value);
    check::vjp_check_options c;
    c.rtol = 1e-6;
    c.max_elements = std::size_t(-1);
    // no gradient reads the last bias (y = ... + b2): only the gradient entries that read a NaN must be NaN
    c.nan_grad = check::nan_gradient::affected_nonfinite;
    const auto r = check::vjp_check(f, vjp, in, c);
    INFO(r.message());
    CHECK(r);
    set_params(in);
}

TEST_CASE("self-attention layer equals a naive loop implementation") {
    rng gen(5);
    nn::parameter_set<double> params;
    const std::size_t B = 2, T = 4, D = 6, H = 3, dh = D / H;
    for (bool causal : {false, true}) {
        nn::parameter_set<double> ps;
        attention_options ao;
        ao.causal = causal;
        auto layer = nn::self_attention_layer<double>(ps, "a", D, H, ao, gen);
        auto& g = ps.at("a.norm").value;
        for (std::size_t i = 0; i < D; ++i) g(i) = 0.5 + 0.1 * static_cast<double>(i);
        const auto& Wqkv = ps.at("a.qkv").value;
        const auto& Wo = ps.at("a.out").value;
        const xt::xarray<double> x = randn({B, T, D}, gen);
        const xt::xarray<double> y = layer->forward(x);
        for (std::size_t b = 0; b < B; ++b) {
            // rms_norm then the projection
            xt::xarray<double> qkv = xt::zeros<double>({T, 3 * D});
            for (std::size_t t = 0; t < T; ++t) {
                double ms = 0;
                for (std::size_t i = 0; i < D; ++i) ms += x(b, t, i) * x(b, t, i) / D;
                const double r = 1.0 / std::sqrt(ms + 1e-6);
                for (std::size_t j = 0; j < 3 * D; ++j)
                    for (std::size_t i = 0; i < D; ++i) qkv(t, j) += x(b, t, i) * r * g(i) * Wqkv(i, j);
            }
            xt::xarray<double> o = xt::zeros<double>({T, D});
            for (std::size_t hh = 0; hh < H; ++hh)
                for (std::size_t t = 0; t < T; ++t) {
                    std::vector<double> p(T, 0.0);
                    double mx = -1e300, z = 0;
                    const std::size_t last = causal ? t : T - 1;
                    for (std::size_t u = 0; u <= last; ++u) {
                        double sc = 0;
                        for (std::size_t i = 0; i < dh; ++i) sc += qkv(t, hh * dh + i) * qkv(u, D + hh * dh + i);
                        p[u] = sc / std::sqrt(static_cast<double>(dh));
                        mx = std::max(mx, p[u]);
                    }
                    for (std::size_t u = 0; u <= last; ++u) z += (p[u] = std::exp(p[u] - mx));
                    for (std::size_t u = 0; u <= last; ++u)
                        for (std::size_t i = 0; i < dh; ++i)
                            o(t, hh * dh + i) += p[u] / z * qkv(u, 2 * D + hh * dh + i);
                }
            for (std::size_t t = 0; t < T; ++t)
                for (std::size_t j = 0; j < D; ++j) {
                    double want = 0;
                    for (std::size_t i = 0; i < D; ++i) want += o(t, i) * Wo(i, j);
                    CHECK(y(b, t, j) == doctest::Approx(want).epsilon(1e-12));
                }
        }
    }
}

TEST_CASE("causal blocks: outputs before position t do not depend on inputs at t") {
    rng gen(9);
    nn::parameter_set<double> params;
    auto s = nn::transformer<double>(params, "tf", small(true, {0}), gen);
    xt::xarray<double> x = randn({1, 6, 8}, gen);
    const xt::xarray<double> y0 = s.blocks->forward(x);
    for (std::size_t i = 0; i < 8; ++i) x(0, 3, i) += 1.0;
    const xt::xarray<double> y1 = s.blocks->forward(x);
    for (std::size_t t = 0; t < 6; ++t) {
        double diff = 0;
        for (std::size_t i = 0; i < 8; ++i) diff = std::max(diff, std::abs(y1(0, t, i) - y0(0, t, i)));
        if (t < 3) {
            CHECK(diff == 0.0);
        } else {
            CHECK(diff > 1e-3);
        }
    }
}

TEST_CASE("transformer and its layers refuse bad shapes with a message") {
    // In double like the other cases: the messages do not depend on the type, and a float instantiation of the
    // whole stack cost this unit a third of its compile time (50 -> 32 s of CPU; tiny_lm runs the float layers).
    rng gen(1);
    nn::parameter_set<double> params;
    CHECK_THROWS_WITH_AS(nn::transformer<double>(params, "a", {.layers = 1, .width = 10, .heads = 3}, gen),
                         doctest::Contains("heads = 3"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(
        nn::transformer<double>(params, "b", {.layers = 2, .width = 8, .heads = 2, .deer_layers = {2}}, gen),
        doctest::Contains("deer layer 2"), std::invalid_argument);
    auto s = nn::transformer<double>(params, "c", {.layers = 1, .width = 8, .heads = 2}, gen);
    CHECK_THROWS_WITH_AS(s.blocks->forward(xt::zeros<double>({2, 3, 6})), doctest::Contains("[B, T, 8]"),
                         std::invalid_argument);
    nn::residual<double> r(nn::feed_forward<double>(params, "ff", 4, 8, gen));
    CHECK(r.forward(xt::ones<double>({1, 2, 4})).shape(2) == 4);
    // The feed-forward adds x inside its block under the residual and 0 alone: the same f either way.
    const xt::xarray<double> x = randn({1, 2, 4}, gen), dy = randn({1, 2, 4}, gen);
    const xt::xarray<double> with = r.forward(x), dx_with = r.backward(dy);
    const xt::xarray<double> alone = r.inner().forward(x), dx_alone = r.inner().backward(dy);
    CHECK(xt::allclose(with - x, alone, 1e-14, 1e-15));
    CHECK(xt::allclose(dx_with - dy, dx_alone, 1e-14, 1e-15));
    CHECK(xt::amax(xt::abs(alone - with))() > 0.1);  // alone is not x + f(x)
}

TEST_CASE("key padding: real positions do not depend on the padded tokens, and equal the unpadded run") {
    rng gen(21);
    nn::parameter_set<double> params;
    // bidirectional: without key padding every position would see the pads
    auto s = nn::transformer<double>(params, "tf", small(false, {}), gen);
    REQUIRE(s.attention.size() == 2);
    const xt::xarray<double> real = randn({1, 4, 8}, gen);
    xt::xarray<double> padded = xt::zeros<double>({2, 6, 8});
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 6; ++t)
            for (std::size_t i = 0; i < 8; ++i) padded(b, t, i) = t < 4 ? real(0, t, i) : 5.0 * (double(b) + 1);
    s.set_key_lengths({});
    const xt::xarray<double> want = s.blocks->forward(real);
    s.set_key_lengths({4, 4});
    const xt::xarray<double> got = s.blocks->forward(padded);
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 4; ++t)
            for (std::size_t i = 0; i < 8; ++i) CHECK(got(b, t, i) == doctest::Approx(want(0, t, i)).epsilon(1e-12));
    // and the gradient with respect to the padded tokens of a loss on the real positions is zero
    xt::xarray<double> w = xt::zeros<double>({2, 6, 8});
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 0; t < 4; ++t)
            for (std::size_t i = 0; i < 8; ++i) w(b, t, i) = 1.0 + double(i);
    const xt::xarray<double> dx = s.blocks->backward(w);
    double pad_grad = 0;
    for (std::size_t b = 0; b < 2; ++b)
        for (std::size_t t = 4; t < 6; ++t)
            for (std::size_t i = 0; i < 8; ++i) pad_grad = std::max(pad_grad, std::abs(dx(b, t, i)));
    CHECK(pad_grad == 0.0);
}

TEST_CASE("layers record into a caller's record: forward/backward's values and gradients; the hook sees them") {
    rng gen(31);
    nn::parameter_set<double> params;
    auto s = nn::transformer<double>(params, "tf", small(true, {1}), gen);
    const xt::xarray<double> x = randn({2, 3, 8}, gen), dy = randn({2, 3, 8}, gen);
    params.zero_grad();
    const xt::xarray<double> y = s.blocks->forward(x);
    const xt::xarray<double> dx = s.blocks->backward(dy);
    std::vector<xt::xarray<double>> grads;
    for (const auto& p : params) grads.push_back(p.grad);

    params.zero_grad();
    tensors::record<double> rec;
    std::size_t ready = 0;
    rec.on_gradient_ready([&](tensors::handle, xt::xarray<double>&) { ++ready; });
    xt::xarray<double> xin = x, dxr = xt::zeros_like(x);
    const tensors::handle h = s.blocks->record_into(rec, rec.leaf(xin, dxr));
    CHECK(rec.calls() < 4 * 4);  // a few entries per layer: 4 layers (attention, ff, DEER, ff)
    rec.backward(h, dy);
    CHECK(xt::allclose(rec.value(h), y, 1e-12, 1e-14));
    CHECK(xt::allclose(dxr, dx, 1e-12, 1e-14));
    std::size_t i = 0;
    for (const auto& p : params) {
        CHECK_MESSAGE(xt::allclose(p.grad, grads[i], 1e-12, 1e-14), p.name);
        CHECK_MESSAGE(xt::amax(xt::abs(p.grad))() > 0.0, p.name);  // every parameter reached
        ++i;
    }
    CHECK(ready == params.size() + 1);  // every parameter is a leaf of the record, and the input
}

TEST_CASE("docs/nn.md: a stack and a loss block in one record; one backward gives every parameter's gradient") {
    rng gen(33);
    nn::parameter_set<double> params;
    auto stack = nn::transformer<double>(params, "tf", small(true, {}), gen);
    auto& w = params.add("head", randn({8, 5}, gen));
    const xt::xarray<double> x = randn({2, 3, 8}, gen);
    const xt::xarray<std::int32_t> targets = {{0, 4, 2}, {1, 1, 3}};
    auto head_loss = tensors::compile<double>(
        tensors::cross_entropy(tensors::matmul(tensors::Input<0>{}, tensors::Input<1>{}), tensors::Input<2>{}),
        tensors::wrt<0, 1>);
    params.zero_grad();
    // docs-begin docs/nn.md
    tensors::record<double> rec;
    rec.clear();
    auto h = rec.constant(x);                    // [B, T, d]
    h = stack.blocks->record_into(rec, h);       // a few entries per layer
    auto loss = rec.call(head_loss, h, nn::leaf(rec, w), targets);
    rec.backward(loss);                          // every parameter's grad += dL/dθ
    // docs-end
    std::vector<xt::xarray<double>> grads;
    for (const auto& p : params) grads.push_back(p.grad);

    // The same by hand: the stack's own forward and backward around the loss block's VJP.
    params.zero_grad();
    const xt::xarray<double> y = stack.blocks->forward(x);
    CHECK(head_loss.forward(y, w.value, targets).data[0] == doctest::Approx(rec.value(loss)(0)).epsilon(1e-12));
    const double seed = 1.0;
    head_loss.vjp(&seed);
    w.grad += head_loss.grad<1>();
    stack.blocks->backward(xt::xarray<double>(head_loss.grad<0>()));
    std::size_t i = 0;
    for (const auto& p : params) {
        CHECK_MESSAGE(xt::allclose(p.grad, grads[i], 1e-12, 1e-14), p.name);
        CHECK_MESSAGE(xt::amax(xt::abs(p.grad))() > 0.0, p.name);  // every parameter reached
        ++i;
    }
}

TEST_CASE("self-attention: the scale policy is read at run time; fixed(1/√dh) equals inv_sqrt_d") {
    rng gen(32);
    const std::size_t D = 8, H = 2;
    nn::parameter_set<double> ps;
    auto a = nn::self_attention_layer<double>(ps, "a", D, H, {.causal = true}, gen);
    auto& g = ps.at("a.norm");
    auto& wqkv = ps.at("a.qkv");
    auto& wo = ps.at("a.out");
    nn::self_attention<double> fixed(g, wqkv, wo, H, {.causal = true, .scale = scale::fixed(1.0 / std::sqrt(4.0))});
    nn::self_attention<double> gm(g, wqkv, wo, H, {.causal = true, .scale = scale::gradient_max()});
    const xt::xarray<double> x = randn({2, 5, D}, gen), dy = randn({2, 5, D}, gen);
    const xt::xarray<double> y = a->forward(x);
    CHECK(xt::allclose(fixed.forward(x), y, 1e-12, 1e-14));
    CHECK_FALSE(xt::allclose(gm.forward(x), y, 1e-3, 1e-3));  // another policy, another output
    ps.zero_grad();
    const xt::xarray<double> dx = a->backward(dy);
    const xt::xarray<double> dw = wqkv.grad;
    ps.zero_grad();
    CHECK(xt::allclose(fixed.backward(dy), dx, 1e-12, 1e-14));
    CHECK(xt::allclose(wqkv.grad, dw, 1e-12, 1e-14));
}

TEST_CASE("to_string(transformer_options) prints every field from the one Hana list") {
    nn::transformer_options o;
    o.layers = 3;
    o.width = 16;
    o.heads = 4;
    o.mlp_hidden = 5;
    o.deer_layers = {0, 2};
    o.deer_state = 7;
    o.attention.causal = true;
    o.attention.key_lengths = {3, 1};  // per batch, not a setting: not printed
    o.deer.method = ops::deer_method::quasi;
    o.deer.scan.chunks = 2;
    // expected: the struct's declaration order, as nn/transformer.hpp declares it; the nested attention and
    // DEER options (ops/attention_options.hpp, ops/deer_types.hpp) in theirs, with their defaults otherwise
    CHECK(to_string(o) ==
          "layers=3 width=16 heads=4 mlp_hidden=5 attention={causal=true normalize_qk=false "
          "scale=scale::inv_sqrt_d() qk_eps=1e-06 threads=0} deer_layers=[0,2] deer_state=7 deer={method=quasi "
          "max_iter=0 atol=-1 rtol=-1 guard=false fallback=true scan={chunks=2 min_chunk=1024}}");
    CHECK(field_count_v<nn::transformer_options> == 8);
}

TEST_CASE("fields_to_string: bools, shortest exact numbers, enums, strings, vectors, nested adapted structs") {
    fields_test::outer o;
    CHECK(fields_to_string(o) == "n=3 in={on=true rate=0.1} xs=[1.5,-2] name=x y m=1 tiny=1e-08 k=second");
    o.in.on = false;
    o.in.rate = std::numeric_limits<double>::infinity();
    o.xs.clear();
    CHECK(fields_to_string(o) == "n=3 in={on=false rate=inf} xs=[] name=x y m=1 tiny=1e-08 k=second");
    std::vector<std::string> names;
    for_each_field(o, [&](const char* n, const auto&) { names.emplace_back(n); });
    CHECK(names == std::vector<std::string>{"n", "in", "xs", "name", "m", "tiny", "k"});
    // for_each_field gives references: a field can be written through it
    for_each_field(o.in, [](const char*, auto& v) { v = {}; });
    CHECK(fields_to_string(o.in) == "on=false rate=0");
}

TEST_CASE("format_number and format_shape: the one form of numbers and shapes in messages and printouts") {
    // numbers show what was passed: shortest exact text, no rounding, no padding
    CHECK(format_number(std::numeric_limits<double>::quiet_NaN()) == "nan");
    CHECK(format_number(std::numeric_limits<double>::infinity()) == "inf");
    CHECK(format_number(-std::numeric_limits<double>::infinity()) == "-inf");
    CHECK(format_number(-1.0) == "-1");
    CHECK(format_number(0.9999) == "0.9999");
    CHECK(format_number(0.99990001) == "0.99990001");
    CHECK(format_number(1e-7) == "1e-07");
    CHECK(format_number(0.1f) == "0.1");  // a float as a float, not as the double 0.10000000149011612
    CHECK(format_number(std::size_t{42}) == "42");
    CHECK(format_number(-100L) == "-100");
    // shapes in Python's tuple form
    CHECK(format_shape(std::vector<std::size_t>{2, 3}) == "(2, 3)");
    CHECK(format_shape(std::vector<std::size_t>{3}) == "(3,)");
    CHECK(format_shape(std::vector<std::size_t>{}) == "()");
    CHECK(tensors::dims{3}.str() == "(3,)");
    CHECK(tensors::dims{4, 1, 2}.str() == "(4, 1, 2)");
}
