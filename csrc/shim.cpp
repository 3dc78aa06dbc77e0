// See shim.h.
#include "shim.h"

#include <cstdlib>
#include <cstring>

namespace chronos_shim {

char* copy_message(const char* message) {
  size_t len = std::strlen(message);
  char* out = static_cast<char*>(std::malloc(len + 1));
  if (out != nullptr) {
    std::memcpy(out, message, len + 1);
  }
  return out;
}

} // namespace chronos_shim

extern "C" void chronos_shim_free_error(char* error) {
  std::free(error);
}
