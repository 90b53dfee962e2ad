// The self-pretraining experiment's model (model.hpp).
#include "model.hpp"

#include <algorithm>

#include <exprgrad/exprgrad.hpp>
#include <exprgrad/nn/init.hpp>
#include <exprgrad/nn/transformer.hpp>
#include <exprgrad/tensors/record.hpp>

#include "listops.hpp"

namespace spt {

using namespace exprgrad;

namespace {
// Embedding: (tokens [B,T], E [V,D], P [Tmax,D], positions [T]) -> [B,T,D].
constexpr auto embed_expr = embedding(tensor<1>, tensor<0>) + embedding(tensor<2>, tensor<3>);
// Classifier: (h [B,T,D], mask [B,T,1], g [D], W [D,C], b [C]) -> logits [B,C]; masked mean pooling.
constexpr auto H = tensor<0>;
constexpr auto M = tensor<1>;
constexpr auto cls_logits = matmul(sum<1>(rms_norm(H, tensor<2>) * M) / sum<1>(M), tensor<3>) + tensor<4>;
// Masked prediction: (h [B,T,D], g [D], W [D,V], b [V], targets [B,T], -1 where not masked).
constexpr auto mlm_logits = matmul(rms_norm(H, tensor<1>), tensor<2>) + tensor<3>;
}  // namespace

struct model::blocks {
    nn::transformer_stack<float> tf;
    decltype(tensors::compile<float>(embed_expr, wrt<1, 2>)) embed;
    decltype(tensors::compile<float>(cls_logits, wrt<0>)) cls_forward;
    decltype(tensors::compile<float>(cross_entropy(cls_logits, tensor<5>), wrt<0, 2, 3, 4>)) cls_loss;
    decltype(tensors::compile<float>(cross_entropy<-1>(mlm_logits, tensor<4>), wrt<0, 1, 2, 3>)) mlm_loss;
    tensors::record<float> rec;  // a training step's calls: embedding, transformer stack, loss
    xt::xarray<float> x;

    // One training step of a head: the embedding, the stack and the loss recorded, then one backward that
    // adds every parameter's gradient (zeroed here first); no VJP called by hand. The head's arguments after
    // the stack's output: parameters (leaves, gradients accumulated), float arrays (constants) or integer
    // arrays (read in place). Returns the loss.
    template <class Loss, class... Head>
    double train_step(model& m, Loss& loss, const batch& b, const Head&... head) {
        m.params.zero_grad();
        rec.clear();  // handles are made after this: a handle of an earlier step is refused
        tf.set_key_lengths(b.lengths);
        const auto e = rec.call(embed, b.tokens, leaf(m.tok), leaf(m.pos), b.positions);
        const auto h = tf.blocks->record_into(rec, e);  // the stack's blocks, its parameters as leaves
        const auto l = rec.call(loss, h, arg(head)...);
        rec.backward(l);
        return static_cast<double>(rec.value(l)(0));
    }
    tensors::handle leaf(nn::parameter<float>* p) { return nn::leaf(rec, *p); }
    tensors::handle arg(nn::parameter<float>* p) { return leaf(p); }
    tensors::handle arg(const xt::xarray<float>& a) { return rec.constant(a); }
    const xt::xarray<long>& arg(const xt::xarray<long>& a) { return a; }
};

model::model(const model_shape& s, std::uint64_t seed) : b_(std::make_unique<blocks>()) {
    rng g(seed);
    const std::size_t D = s.width, V = listops::vocab_size, C = listops::num_classes;
    tok = &params.add("tok", xt::xarray<float>::from_shape({V, D}));
    pos = &params.add("pos", xt::xarray<float>::from_shape({s.max_len, D}));
    nn::init::normal(tok->value, g, 0.0, 0.02);
    nn::init::normal(pos->value, g, 0.0, 0.02);
    b_->tf = nn::transformer<float>(
        params, "tf",
        {.layers = s.layers, .width = D, .heads = s.heads, .mlp_hidden = s.mlp_hidden, .attention = {.causal = false}},
        g);
    cls_g = &params.add("cls.norm", xt::ones<float>({D}));
    cls_w = &params.add("cls.w", xt::xarray<float>::from_shape({D, C}));
    cls_b = &params.add("cls.b", xt::zeros<float>({C}));
    nn::init::xavier_uniform(cls_w->value, g);
    mlm_g = &params.add("mlm.norm", xt::ones<float>({D}));
    mlm_w = &params.add("mlm.w", xt::xarray<float>::from_shape({D, V}));
    mlm_b = &params.add("mlm.b", xt::zeros<float>({V}));
    nn::init::xavier_uniform(mlm_w->value, g);
}

model::~model() = default;

double model::train_mlm(const batch& b) {
    return b_->train_step(*this, b_->mlm_loss, b, mlm_g, mlm_w, mlm_b, b.targets);
}

double model::train_cls(const batch& b) {
    return b_->train_step(*this, b_->cls_loss, b, b.mask, cls_g, cls_w, cls_b, b.labels);
}

const float* model::classify(const batch& b) {
    // The blocks' output [B,T,D], then the classifier.
    const auto& e = b_->embed.forward(b.tokens, tok->value, pos->value, b.positions);
    b_->x.resize({e.shape[0], e.shape[1], e.shape[2]});
    std::copy(e.data, e.data + e.size(), b_->x.data());
    b_->tf.set_key_lengths(b.lengths);
    const auto& h = b_->tf.blocks->forward(b_->x);
    return b_->cls_forward.forward(h, b.mask, cls_g->value, cls_w->value, cls_b->value).data;
}

}  // namespace spt
