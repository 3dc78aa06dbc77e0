// libtorch's CPU threads, per calling thread (see runtime::serial_tensor_ops in src/runtime.rs).
#include <ATen/Parallel.h>
#include <omp.h>

// Makes libtorch's parallel CPU ops that this thread calls run on this thread alone: its
// OpenMP thread count (a per-thread setting) becomes 1, after libtorch's own lazy per-thread
// initialisation, which would otherwise set it back on the first op. Other threads keep theirs.
extern "C" void chronos_threads_serial_ops(void) {
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(1);
}
