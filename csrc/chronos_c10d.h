// chronos-rs c10d shim: a C API over libtorch's c10d (TCPStore, ProcessGroupGloo,
// ProcessGroupNCCL), used by the Rust module `chronos::distributed`.
//
// Every function that can fail returns NULL on success or an error message allocated with
// malloc (free it with chronos_shim_free_error, shim.h); C++ exceptions never cross this boundary.
// Tensors are tch's `at::Tensor*` handles (torch-sys's `tensor`), passed as opaque pointers.
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chronos_c10d_group chronos_c10d_group;

// Whether this build has ProcessGroupNCCL (1) or only Gloo (0).
int chronos_c10d_has_nccl(void);

// Connects to the TCPStore at master_addr:master_port (hosted by rank 0, which waits for the
// world_size - 1 others, unless host_store is 0: torchrun's agent hosts it), keys under
// store_prefix, and creates the process group: Gloo when device_index < 0 (CPU tensors), NCCL
// on cuda:device_index otherwise. timeout_ms bounds the rendezvous and every collective. On
// success *out owns the group (chronos_c10d_group_free).
char* chronos_c10d_group_new(
    const char* master_addr,
    uint16_t master_port,
    int host_store,
    const char* store_prefix,
    int rank,
    int world_size,
    int device_index,
    int64_t timeout_ms,
    chronos_c10d_group** out);

// Shuts the backend down cleanly (NCCL: finalizes its communicators) after the last
// collective. A group freed without it is aborted instead (NCCL warns).
char* chronos_c10d_group_shutdown(chronos_c10d_group* group);

void chronos_c10d_group_free(chronos_c10d_group* group);

// All-reduces each of the n tensors in place (one collective per tensor, all in flight
// together, then waited for): the sum over ranks, or the mean when average != 0.
char* chronos_c10d_allreduce(
    chronos_c10d_group* group,
    void* const* tensors,
    size_t n,
    int average);

// Overwrites each of the n tensors in place with root's.
char* chronos_c10d_broadcast(
    chronos_c10d_group* group,
    void* const* tensors,
    size_t n,
    int root);

// Returns once every rank has entered it.
char* chronos_c10d_barrier(chronos_c10d_group* group);

#ifdef __cplusplus
}
#endif
