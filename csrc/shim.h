// What the shim's C++ files share: the error convention of its C APIs (chronos_c10d.h,
// chronos_optim.h, ...), where a function returns NULL on success or an error message allocated
// with malloc, which the caller frees with chronos_shim_free_error (C++ exceptions never cross
// the C boundary), and the multiversioning of hot loops.
#pragma once

#include <exception>

#include <c10/util/Exception.h>

extern "C" void chronos_shim_free_error(char* error);

// For the shim's hot loops: compiled for AVX-512 and AVX2 besides the baseline, one chosen at
// load time (GCC's function multiversioning).
#define CHRONOS_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))

namespace chronos_shim {

// A malloc'd copy of message (NULL if out of memory).
char* copy_message(const char* message);

// Runs f, turning any exception into a malloc'd message (NULL when f returns normally).
template <typename F>
char* guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return copy_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception");
  }
}

} // namespace chronos_shim
