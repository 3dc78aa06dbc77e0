// chronos-rs attention shim: scaled dot-product attention with dropout on its weights, for
// training on the CPU, used by the Rust function `chronos::attention::scaled_dot_product`.
//
// libtorch's fused CPU attention has no dropout, and its unfused path writes every
// (batch, head, q_len, k_len) tensor of the computation to memory and reads it back, forward and
// backward. Here each (batch, head) is computed on its own, its scores staying in cache, and
// only the weights before dropout and the 1-byte dropout mask (chronos_mask) are kept for the
// backward pass: neither the scores nor the dropped weights are written out.
//
// Returns NULL on success or an error message allocated with malloc (free it with
// chronos_shim_free_error, shim.h). Tensors are tch's `at::Tensor*` handles.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// *out = a new handle to softmax(query · keyᵀ · scale + bias, masked) with dropout p on the
// weights, times value: (batch, heads, q_len, d). query (batch, heads, q_len, d), key and value
// (batch, heads, k_len, d), all float32 CPU; bias (optional, NULL): float32 broadcastable to
// (batch, heads, q_len, k_len), differentiable; allowed (optional): bool broadcastable to
// (batch, heads, q_len, k_len), true where a query may attend a key; causal: query i attends
// keys 0..=i. Masked scores are float32's lowest value (a row with every key masked attends
// uniformly). Differentiable in query, key, value and bias. The mask is drawn as
// chronos_dropout's over the (batch, heads, q_len, k_len) weights.
char* chronos_attention_dropout(
    void* query,
    void* key,
    void* value,
    void* bias,
    void* allowed,
    int32_t causal,
    double scale,
    double p,
    void** out);

#ifdef __cplusplus
}
#endif
