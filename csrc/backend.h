// Internal to the shim: the process-group backends, created by c10d.cpp (Gloo) and nccl.cpp
// (NCCL, or a stub that throws when the build has no CUDA headers).
#pragma once

#include <chrono>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace chronos_c10d {

// Whether make_nccl works in this build.
bool has_nccl();

// ProcessGroupNCCL on cuda:device_index (made current).
c10::intrusive_ptr<c10d::Backend> make_nccl(
    const c10::intrusive_ptr<c10d::Store>& store,
    int rank,
    int world_size,
    int device_index,
    std::chrono::milliseconds timeout);

} // namespace chronos_c10d
