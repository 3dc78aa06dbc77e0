// chronos-rs optimiser shim: libtorch's AdamW update on tensors whose state the caller owns,
// used by the Rust module `chronos::train::adamw` (tch 0.24 gives no access to the moments of
// its `torch::optim::AdamW`, so checkpoints could not hold them).
//
// Returns NULL on success or an error message allocated with malloc (free it with
// chronos_shim_free_error, shim.h); C++ exceptions never cross this boundary. Tensors are tch's
// `at::Tensor*` handles, passed as opaque pointers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// For each i < n whose params[i] has a gradient: the update of libtorch's
// torch::optim::AdamW::step (torch/csrc/api/src/optim/adamw.cpp, weight decay 0, no amsgrad)
// at step number steps[i] (counted from 1), op for op, so the result is bitwise the same.
char* chronos_adamw_step(
    void* const* params,
    void* const* exp_avgs,
    void* const* exp_avg_sqs,
    const int64_t* steps,
    size_t n,
    double lr,
    double beta1,
    double beta2,
    double eps);

// Drops the gradients of the n tensors (libtorch's Optimizer::zero_grad, set_to_none).
char* chronos_clear_grads(void* const* params, size_t n);

#ifdef __cplusplus
}
#endif
