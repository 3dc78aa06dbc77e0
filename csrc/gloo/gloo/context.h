// Minimal declaration of gloo's Context for compiling against c10d/ProcessGroupGloo.hpp: the
// torch wheel ships libtorch_cpu with gloo inside but not gloo's headers. The shim never touches
// a gloo object; the header only needs the names, and `setTimeout` for an inline member.
#pragma once

#include <chrono>

namespace gloo {

class Context {
 public:
  virtual ~Context();
  void setTimeout(std::chrono::milliseconds timeout);
};

} // namespace gloo
