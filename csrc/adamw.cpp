// See chronos_optim.h.
#include "chronos_optim.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace {

char* error_copy(const char* message) {
  size_t len = std::strlen(message) + 1;
  char* out = static_cast<char*>(std::malloc(len));
  if (out != nullptr) {
    std::memcpy(out, message, len);
  }
  return out;
}

at::Tensor& tensor(void* const* handles, size_t i) {
  return *static_cast<at::Tensor*>(handles[i]);
}

} // namespace

extern "C" {

char* chronos_adamw_step(
    void* const* params,
    void* const* exp_avgs,
    void* const* exp_avg_sqs,
    const int64_t* steps,
    size_t n,
    double lr,
    double beta1,
    double beta2,
    double eps) {
  try {
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < n; ++i) {
      at::Tensor& p = tensor(params, i);
      const at::Tensor& grad = p.grad();
      if (!grad.defined()) {
        continue;
      }
      at::Tensor& exp_avg = tensor(exp_avgs, i);
      at::Tensor& exp_avg_sq = tensor(exp_avg_sqs, i);
      auto step = static_cast<double>(steps[i]);
      auto bias_correction1 = 1 - std::pow(beta1, step);
      auto bias_correction2 = 1 - std::pow(beta2, step);
      exp_avg.mul_(beta1).add_(grad, 1 - beta1);
      exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      auto denom = (exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(eps);
      auto step_size = lr / bias_correction1;
      p.addcdiv_(exp_avg, denom, -step_size);
    }
  } catch (const std::exception& e) {
    return error_copy(e.what());
  } catch (...) {
    return error_copy("unknown C++ exception");
  }
  return nullptr;
}

char* chronos_clear_grads(void* const* params, size_t n) {
  try {
    for (size_t i = 0; i < n; ++i) {
      at::Tensor& grad = tensor(params, i).mutable_grad();
      if (grad.defined()) {
        grad.reset();
      }
    }
  } catch (const std::exception& e) {
    return error_copy(e.what());
  } catch (...) {
    return error_copy("unknown C++ exception");
  }
  return nullptr;
}

void chronos_optim_free_error(char* error) {
  std::free(error);
}

} // extern "C"
