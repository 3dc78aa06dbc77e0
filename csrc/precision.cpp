// See chronos_precision.h.
#include "chronos_precision.h"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>

#include "shim.h"

namespace {

at::DeviceType device_type(int32_t cuda) {
  return cuda != 0 ? at::kCUDA : at::kCPU;
}

} // namespace

extern "C" {

char* chronos_autocast_enter(int32_t cuda, int32_t bfloat16, chronos_autocast_state* previous) {
  return chronos_shim::guarded([&] {
    auto device = device_type(cuda);
    previous->enabled = at::autocast::is_autocast_enabled(device) ? 1 : 0;
    previous->bfloat16 = at::autocast::get_autocast_dtype(device) == at::kBFloat16 ? 1 : 0;
    at::autocast::set_autocast_dtype(device, bfloat16 != 0 ? at::kBFloat16 : at::kHalf);
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::increment_nesting();
  });
}

char* chronos_autocast_exit(int32_t cuda, chronos_autocast_state previous) {
  return chronos_shim::guarded([&] {
    auto device = device_type(cuda);
    if (at::autocast::decrement_nesting() == 0) {
      at::autocast::clear_cache();
    }
    at::autocast::set_autocast_enabled(device, previous.enabled != 0);
    at::autocast::set_autocast_dtype(device, previous.bfloat16 != 0 ? at::kBFloat16 : at::kHalf);
  });
}

char* chronos_set_tf32(int32_t enabled) {
  return chronos_shim::guarded([&] {
    at::globalContext().setAllowTF32CuBLAS(enabled != 0);
    at::globalContext().setAllowTF32CuDNN(enabled != 0);
  });
}

} // extern "C"
