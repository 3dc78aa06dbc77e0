// See chronos_dropout.h.
#include "chronos_dropout.h"

#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "mask.h"
#include "shim.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Elements per task of at::parallel_for.
constexpr int64_t kGrain = 1 << 15;

template <typename scalar_t>
void scale_kept(const scalar_t* x, const uint8_t* keep, scalar_t* y, int64_t begin, int64_t end, double scale) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    chronos_mask::scale_kept(x + begin, keep + begin, y + begin, end - begin, static_cast<float>(scale));
  } else {
    using opmath_t = at::opmath_type<scalar_t>;
    const auto s = static_cast<opmath_t>(scale);
    for (int64_t i = begin; i < end; ++i) {
      y[i] = static_cast<scalar_t>(static_cast<opmath_t>(x[i]) * (s * static_cast<opmath_t>(keep[i])));
    }
  }
}

// out[i] = src[i] * scale where mask[i], else 0, over contiguous tensors of one floating type
// (mask: bool). With `draw`, mask is drawn first, chunk by chunk in the same pass.
at::Tensor masked_scale(
    const at::Tensor& src,
    const at::Tensor& mask,
    double scale,
    const chronos_mask::Draw* draw) {
  auto out = at::empty_like(src);
  const int64_t n = src.numel();
  uint8_t* keep = reinterpret_cast<uint8_t*>(mask.data_ptr<bool>());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, src.scalar_type(), "dropout", [&] {
    const scalar_t* x = src.const_data_ptr<scalar_t>();
    scalar_t* y = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, n, kGrain, [&](int64_t begin, int64_t end) {
      if (draw != nullptr) {
        chronos_mask::draw_mask(keep + begin, begin, end - begin, *draw);
      }
      scale_kept(x, keep, y, begin, end, scale);
    });
  });
  return out;
}

struct Dropout : public torch::autograd::Function<Dropout> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, double p) {
    auto src = input.contiguous();
    auto mask = at::empty(src.sizes(), src.options().dtype(at::kBool));
    const chronos_mask::Draw draw = chronos_mask::next_draw(p);
    const double scale = 1.0 / (1.0 - p);
    ctx->save_for_backward({mask});
    ctx->saved_data["scale"] = scale;
    return masked_scale(src, mask, scale, &draw);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto mask = ctx->get_saved_variables()[0];
    const double scale = ctx->saved_data["scale"].toDouble();
    return {masked_scale(grads[0].contiguous(), mask, scale, nullptr), at::Tensor()};
  }
};

} // namespace

extern "C" char* chronos_dropout(void* input, double p, void** out) {
  return chronos_shim::guarded([&] {
    const at::Tensor& x = *static_cast<at::Tensor*>(input);
    TORCH_CHECK(x.device().is_cpu(), "chronos_dropout: a CPU tensor is needed, got ", x.device());
    TORCH_CHECK(at::isFloatingType(x.scalar_type()), "chronos_dropout: a floating-point tensor is needed, got ", x.scalar_type());
    TORCH_CHECK(p >= 0.0 && p < 1.0, "chronos_dropout: p must be in [0, 1), got ", p);
    *out = new at::Tensor(Dropout::apply(x, p));
  });
}
