// Optimizers (SGD with momentum, Adam, AdamW) and gradient clipping over a parameter_set.
//
//   nn::adamw<float> opt({.lr = 1e-3, .weight_decay = 0.01});
//   for (...) { compute grads; nn::clip_grad_norm(params, 1.0); opt.set_lr(sched.lr()); opt.step(params);
//               sched.step(); params.zero_grad(); }
//
// The update rules are those of the PyTorch documentation (torch.optim.SGD, Adam, AdamW, maximize =
// false, amsgrad = false, foreach/fused off), written out at each class. Per-element arithmetic is in
// the parameter type T, in the order PyTorch's single-tensor implementation uses; the scalar
// coefficients (bias corrections, step size) are computed in double and rounded once to T. The loops
// run in SIMD batches over the thread pool, on blocks whose cut depends only on the parameters' sizes
// (nn/parameter_blocks.hpp), so a run is bit-for-bit reproducible and the same at every thread count.
//
// NaN/Inf policy: non-finite gradients are not checked and propagate into the moments and parameters,
// as in PyTorch (check the norm returned by clip_grad_norm to skip such steps). Invalid hyperparameters
// throw std::invalid_argument at construction; a gradient whose shape differs from its value's, or a
// parameter set that differs from the one the optimizer state belongs to, throws std::invalid_argument
// naming the parameter before anything is modified.
//
// State: the step count t and per-parameter buffers (SGD: momentum_buffer; Adam/AdamW: exp_avg,
// exp_avg_sq), bound to the parameter names at the first step(). state() and load_state() save and
// restore it (nn/checkpoint.hpp writes it to disk). Hyperparameters other than lr are fixed at
// construction: load_state() checks that they equal the saved ones (so a resumed run cannot silently
// change its optimizer) and restores lr.
//
// The parts, one concept each: nn/optimizer_interface.hpp (the base class and its state), nn/sgd.hpp,
// nn/adam.hpp (adam and adamw), nn/clip_grad.hpp (gradient clipping). Including this header includes all.
#pragma once

#include "exprgrad/nn/adam.hpp"
#include "exprgrad/nn/clip_grad.hpp"
#include "exprgrad/nn/optimizer_interface.hpp"
#include "exprgrad/nn/sgd.hpp"
