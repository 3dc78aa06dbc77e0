// ProcessGroupNCCL for the shim. Compiled with CHRONOS_WITH_NCCL (and USE_C10D_NCCL) when
// libtorch has CUDA and CUDA's crt/cccl headers are present (build.rs); otherwise make_nccl
// throws, which the C API returns as an error.
#include "backend.h"

#include <stdexcept>

#ifdef CHRONOS_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace chronos_c10d {

#ifdef CHRONOS_WITH_NCCL

bool has_nccl() {
  return true;
}

c10::intrusive_ptr<c10d::Backend> make_nccl(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world_size,
    int device_index,
    std::chrono::milliseconds timeout) {
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(device_index));
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(
      store, rank, world_size, options);
}

#else

bool has_nccl() {
  return false;
}

c10::intrusive_ptr<c10d::Backend> make_nccl(
    const c10::intrusive_ptr<c10d::Store>&,
    int,
    int,
    int,
    std::chrono::milliseconds) {
  throw std::runtime_error(
      "this build has no ProcessGroupNCCL (libtorch without CUDA, or CUDA's crt/cccl "
      "headers missing at build time: run scripts/setup.sh)");
}

#endif

} // namespace chronos_c10d
