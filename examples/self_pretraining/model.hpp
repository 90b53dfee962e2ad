// The self-pretraining experiment's model (main.cpp): token + learned position embeddings, a bidirectional
// pre-norm transformer (nn::transformer, no causal mask) and two heads, masked prediction and classification.
// Compiled in model.cpp, apart from the experiment's driver: its blocks are most of the program's compile time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include <xtensor/xarray.hpp>

#include <exprgrad/nn/parameters.hpp>

namespace spt {

/// A batch of padded sequences.
struct batch {
    xt::xarray<long> tokens;   // [B,T], <pad> after each sequence
    xt::xarray<float> mask;    // [B,T,1], 1 at real tokens
    xt::xarray<long> labels;   // [B]
    xt::xarray<long> targets;  // [B,T] masked prediction targets, -1 where not predicted
    xt::xarray<long> positions;
    std::vector<std::size_t> lengths;  // real tokens per sequence: attention masks the pad keys
};

/// The model's sizes; max_len bounds the positions.
struct model_shape {
    std::size_t width = 64, layers = 2, heads = 4, mlp_hidden = 128, max_len = 64;
};

/// Parameters "tok" [V,D], "pos" [max_len,D], the stack's "tf.*", the classifier "cls.norm", "cls.w" [D,C],
/// "cls.b" and the masked-prediction head "mlm.norm", "mlm.w" [D,V], "mlm.b", initialized from `seed` (two
/// models of one seed and shape are equal). Not copyable: the stack's layers point into `params`.
class model {
  public:
    model(const model_shape& shape, std::uint64_t seed);
    ~model();
    model(const model&) = delete;
    model& operator=(const model&) = delete;

    exprgrad::nn::parameter_set<float> params;
    exprgrad::nn::parameter<float>*tok, *pos, *cls_g, *cls_w, *cls_b, *mlm_g, *mlm_w, *mlm_b;

    /// One training step of masked prediction (cross-entropy at the positions whose target is not -1): the
    /// embedding, the stack and the loss recorded, then one backward that sets every parameter's gradient
    /// (zeroed first). Returns the loss.
    double train_mlm(const batch& b);
    /// One training step of classification (masked mean pooling of the real positions, cross-entropy against
    /// b.labels), as train_mlm. Returns the loss.
    double train_cls(const batch& b);
    /// The classifier's logits [B, C] for a batch, row-major; valid until the next call on this model.
    const float* classify(const batch& b);

  private:
    struct blocks;
    std::unique_ptr<blocks> b_;
};

}  // namespace spt
