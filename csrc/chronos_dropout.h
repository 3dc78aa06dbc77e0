// chronos-rs dropout shim: dropout for CPU tensors whose mask is drawn on all of libtorch's
// intra-op threads by a counter-based generator, in one pass with the scaling, used by the Rust
// module `chronos::dropout`. libtorch's CPU `bernoulli_` draws every element in turn from one
// mt19937 on one thread; in a T5 training step that was about a fifth of the wall time.
//
// Element i of the mask is a function of (key, i) only, the key drawn from libtorch's default
// CPU generator: masks follow `manual_seed` and are the same for any thread count.
//
// Returns NULL on success or an error message allocated with malloc (free it with
// chronos_shim_free_error, shim.h). Tensors are tch's `at::Tensor*` handles.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// *out = a new handle: input with each element zeroed with probability p and the others scaled
// by 1 / (1 - p), differentiable (the backward pass applies the same mask and scale). input: a
// floating-point CPU tensor; 0 <= p < 1.
char* chronos_dropout(void* input, double p, void** out);

#ifdef __cplusplus
}
#endif
