// The unigram lattice as a node of a tensor program: log Z(α) summed over a batch of texts, as a
// function of the piece scores. Its gradient with respect to the scores is α times the expected
// piece counts (the marginals), which is what EM's E-step and subword-regularized training need.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "exprgrad/sym/expr.hpp"
#include "exprgrad/tensors/graph.hpp"
#include "exprgrad/text/unigram_model.hpp"

namespace exprgrad::text {

/// The texts whose log partition functions a log_partition node sums, and the model whose lattice
/// it uses. The node writes the scores it is given into the model (set_score) before each forward
/// pass, so the model must not be used concurrently.
struct lattice_batch {
    unigram_model* model = nullptr;
    std::vector<std::string> texts;
};

/// Σ_texts log Z(α) with the piece scores taken from the tensor Scores [V] (control pieces' entries
/// are ignored); Batch binds a lattice_batch. α ≥ 0 is a sym constant in the type.
template <class Alpha, class Scores, class Batch>
struct LogPartition {
    using children = tensors::meta::type_list<Scores, Batch>;
    static constexpr const char* name = "log_partition";
    template <class T>
    struct extra {
        std::vector<double> counts;  // Σ over texts of the expected piece counts
    };

    template <class Ctx>
    static void forward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        static_assert(Alpha::value >= 0, "exprgrad: log_partition needs alpha >= 0");
        const tensors::cview<T>& s = ctx.template in<Scores>();
        const auto& batch = ctx.template object<Batch, lattice_batch>();
        if (batch.model == nullptr) throw tensors::shape_error(name, "the lattice_batch has no model");
        unigram_model& m = *batch.model;
        const std::size_t V = m.size();
        if (s.shape.rank != 1 || s.shape[0] != V) {
            throw tensors::shape_error(name, "scores of shape " + s.shape.str() + " for a model of " + std::to_string(V) +
                                             " pieces (they must be [V])");
        }
        for (std::size_t i = 0; i < V; ++i) {
            const auto id = static_cast<piece_id>(i);
            if (m.vocab()[id].kind != piece_kind::control) m.set_score(id, static_cast<double>(s.data[i]));
        }
        auto& ex = ctx.template extra<LogPartition>();
        ex.counts.assign(V, 0.0);
        double total = 0;
        for (const auto& text : batch.texts) {
            const lattice_stats st = m.analyze(text, Alpha::value, true);
            total += st.log_partition;
            for (std::size_t i = 0; i < V; ++i) ex.counts[i] += st.marginals[i];
        }
        ctx.template out<LogPartition>(tensors::dims{})[0] = static_cast<T>(total);
    }

    template <class Ctx>
    static void backward(Ctx& ctx) {
        using T = typename Ctx::value_type;
        const tensors::adjoint_view<T> g = ctx.template adj<LogPartition>();
        const T gv = g.uniform ? g.value : g.data[0];
        const auto& counts = ctx.template extra<LogPartition>().counts;
        bool add = false;
        T* d = ctx.template grad<Scores>(add);
        for (std::size_t i = 0; i < counts.size(); ++i) {
            const T v = gv * static_cast<T>(Alpha::value * counts[i]);
            d[i] = add ? d[i] + v : v;
        }
    }
};

/// The lattice node: `log_partition(tensor<0>, tensor<1>, c<1, 2>)` with tensor<0> the scores [V] and
/// tensor<1> a lattice_batch. Its gradient is α · Σ_texts marginals.
template <tensors::TensorExpr Scores, tensors::TensorExpr Batch, sym::Constant Alpha = sym::Const<1>>
constexpr LogPartition<Alpha, Scores, Batch> log_partition(Scores, Batch, Alpha = {}) {
    return {};
}

}  // namespace exprgrad::text
