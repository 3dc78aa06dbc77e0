// See chronos_optim.h.
#include "chronos_optim.h"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "shim.h"

namespace {

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
  return chronos_shim::guarded([&] {
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
  });
}

char* chronos_clear_grads(void* const* params, size_t n) {
  return chronos_shim::guarded([&] {
    for (size_t i = 0; i < n; ++i) {
      at::Tensor& grad = tensor(params, i).mutable_grad();
      if (grad.defined()) {
        grad.reset();
      }
    }
  });
}

} // extern "C"
