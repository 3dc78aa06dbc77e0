// chronos-rs precision shim: autocast on a chosen device type and dtype, and TF32 matmuls, used
// by the Rust module `chronos::precision` (tch 0.24 only switches CUDA's float16 autocast).
//
// Returns NULL on success or an error message allocated with malloc (free it with
// chronos_shim_free_error, shim.h).
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Autocast state of one device type (cuda: 1 for CUDA, 0 for the CPU).
typedef struct {
  int32_t enabled;
  int32_t bfloat16;  // 1: bfloat16, 0: float16
} chronos_autocast_state;

// Enables autocast to bfloat16 (bfloat16 = 1) or float16 on the device type, one nesting level
// deeper; *previous receives the state to restore.
char* chronos_autocast_enter(int32_t cuda, int32_t bfloat16, chronos_autocast_state* previous);

// Leaves one nesting level (clearing autocast's cast cache at the outermost) and restores
// `previous`.
char* chronos_autocast_exit(int32_t cuda, chronos_autocast_state previous);

// TF32 for CUDA matmuls and cuDNN convolutions (torch.backends.cuda.matmul.allow_tf32 and
// torch.backends.cudnn.allow_tf32).
char* chronos_set_tf32(int32_t enabled);

#ifdef __cplusplus
}
#endif
