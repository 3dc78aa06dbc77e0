// The C API of chronos_c10d.h: c10d's TCPStore and process groups on tch tensors.
#include "chronos_c10d.h"

#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "backend.h"
#include "shim.h"

struct chronos_c10d_group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  int world_size;
  // -1 for Gloo (CPU), the CUDA device index for NCCL.
  int device_index;
  std::chrono::milliseconds timeout;
};

namespace {

using chronos_shim::guarded;

std::vector<at::Tensor> tensors_of(void* const* tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (tensors[i] == nullptr) {
      throw std::invalid_argument("null tensor handle");
    }
    out.push_back(*static_cast<at::Tensor*>(tensors[i]));
  }
  return out;
}

// Gloo collectives are started under this process-wide lock. Every start records into c10d's
// FlightRecorder, a process-wide singleton that (torch 2.11) inserts a group into its
// `all_pg_status_` map before taking its own mutex: two Gloo groups of one process (ranks as
// threads, as the tests run them) starting their first collectives together corrupt the map
// and crash. Starting Gloo work only queues it for the group's own threads, so the lock is held
// briefly and never across a wait. NCCL is left out: its first collective creates the
// communicator and blocks until every rank joins, which under a shared lock would deadlock
// ranks that share a process; our NCCL ranks are one per process.
std::mutex gloo_start_mutex;

std::unique_lock<std::mutex> start_lock(const chronos_c10d_group* group) {
  return group->device_index < 0 ? std::unique_lock<std::mutex>(gloo_start_mutex)
                                 : std::unique_lock<std::mutex>();
}

// Starts one collective per tensor (start(list) on a one-tensor list), then waits for all.
template <typename Start>
void each_in_flight(
    chronos_c10d_group* group,
    std::vector<at::Tensor>& tensors,
    Start&& start) {
  std::vector<std::vector<at::Tensor>> lists;
  lists.reserve(tensors.size());
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  works.reserve(tensors.size());
  {
    auto lock = start_lock(group);
    for (auto& tensor : tensors) {
      lists.push_back({tensor});
      works.push_back(start(lists.back()));
    }
  }
  for (auto& work : works) {
    work->wait(group->timeout);
  }
}

} // namespace

extern "C" {

int chronos_c10d_has_nccl(void) {
  return chronos_c10d::has_nccl() ? 1 : 0;
}

char* chronos_c10d_group_new(
    const char* master_addr,
    uint16_t master_port,
    int host_store,
    const char* store_prefix,
    int rank,
    int world_size,
    int device_index,
    int64_t timeout_ms,
    chronos_c10d_group** out) {
  return guarded([&] {
    if (master_addr == nullptr || store_prefix == nullptr || out == nullptr) {
      throw std::invalid_argument("null argument");
    }
    if (world_size < 1 || rank < 0 || rank >= world_size) {
      throw std::invalid_argument(
          "rank " + std::to_string(rank) + " of world size " +
          std::to_string(world_size));
    }
    std::chrono::milliseconds timeout(timeout_ms);
    c10d::TCPStoreOptions store_options;
    store_options.port = master_port;
    store_options.isServer = host_store != 0 && rank == 0;
    store_options.numWorkers = static_cast<size_t>(world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>(
        std::string(store_prefix),
        c10::make_intrusive<c10d::TCPStore>(
            std::string(master_addr), store_options));
    c10::intrusive_ptr<c10d::Backend> backend;
    if (device_index < 0) {
      auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
      backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
          store, rank, world_size, options);
    } else {
      backend = chronos_c10d::make_nccl(
          store, rank, world_size, device_index, timeout);
    }
    *out = new chronos_c10d_group{
        store, backend, world_size, device_index, timeout};
  });
}

char* chronos_c10d_group_shutdown(chronos_c10d_group* group) {
  return guarded([&] { group->backend->shutdown(); });
}

void chronos_c10d_group_free(chronos_c10d_group* group) {
  try {
    delete group;
  } catch (...) {
    // a destructor that throws: nothing left to report to
  }
}

char* chronos_c10d_allreduce(
    chronos_c10d_group* group,
    void* const* tensors,
    size_t n,
    int average) {
  return guarded([&] {
    auto list = tensors_of(tensors, n);
    // Gloo has no AVG: sum, then divide.
    bool native_average = average != 0 && group->device_index >= 0;
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp(
        native_average ? c10d::ReduceOp::AVG : c10d::ReduceOp::SUM);
    options.timeout = group->timeout;
    each_in_flight(group, list, [&](std::vector<at::Tensor>& one) {
      return group->backend->allreduce(one, options);
    });
    if (average != 0 && !native_average) {
      for (auto& tensor : list) {
        tensor.div_(group->world_size);
      }
    }
  });
}

char* chronos_c10d_broadcast(
    chronos_c10d_group* group,
    void* const* tensors,
    size_t n,
    int root) {
  return guarded([&] {
    auto list = tensors_of(tensors, n);
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.timeout = group->timeout;
    each_in_flight(group, list, [&](std::vector<at::Tensor>& one) {
      return group->backend->broadcast(one, options);
    });
  });
}

char* chronos_c10d_barrier(chronos_c10d_group* group) {
  return guarded([&] {
    c10d::BarrierOptions options;
    options.timeout = group->timeout;
    if (group->device_index >= 0) {
      options.device_ids = {group->device_index};
    }
    c10::intrusive_ptr<c10d::Work> work;
    {
      auto lock = start_lock(group);
      work = group->backend->barrier(options);
    }
    work->wait(group->timeout);
  });
}

} // extern "C"
