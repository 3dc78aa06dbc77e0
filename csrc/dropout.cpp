// See chronos_dropout.h.
#include "chronos_dropout.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <type_traits>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "shim.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Pairs of elements per task of at::parallel_for (one 64-bit draw serves a pair).
constexpr int64_t kGrainPairs = 1 << 14;

// SplitMix64's output for position `counter` of the stream of `key`: keys differ per call and
// positions per pair of elements, so no two draws of a run share an input.
inline uint64_t splitmix64(uint64_t key, uint64_t counter) {
  uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t next_key() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get<at::CPUGeneratorImpl>()->random64();
}

// A new mask: element i kept when its 32-bit half of draw i / 2 is at least `threshold`.
struct Draw {
  uint64_t key;
  uint64_t threshold;
};

// The hot loops, compiled for AVX-512 and AVX2 besides the baseline and chosen at load time
// (GCC's function multiversioning): the baseline has no vector 64-bit multiply.
#define CHRONOS_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))

// keep[i] for the elements of pairs [begin, end) (element 2 * end excluded when it is n).
CHRONOS_MULTIVERSION
void draw_mask(uint8_t* keep, int64_t begin, int64_t end, int64_t n, Draw draw) {
  const int64_t full_end = std::min(end, n / 2);
  for (int64_t pair = begin; pair < full_end; ++pair) {
    const uint64_t bits = splitmix64(draw.key, static_cast<uint64_t>(pair));
    keep[2 * pair] = (bits & 0xFFFFFFFFULL) >= draw.threshold;
    keep[2 * pair + 1] = (bits >> 32) >= draw.threshold;
  }
  if (full_end < end) {  // the last element of an odd count
    keep[n - 1] = (splitmix64(draw.key, static_cast<uint64_t>(full_end)) & 0xFFFFFFFFULL) >= draw.threshold;
  }
}

// y[i] = x[i] * scale where keep[i], else 0, for i in [begin, end). Branch-free (the dropped
// elements fall at random), so vectorisable.
CHRONOS_MULTIVERSION
void scale_kept_f32(const float* x, const uint8_t* keep, float* y, int64_t begin, int64_t end, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    y[i] = x[i] * (scale * static_cast<float>(keep[i]));
  }
}

template <typename scalar_t>
void scale_kept(const scalar_t* x, const uint8_t* keep, scalar_t* y, int64_t begin, int64_t end, double scale) {
  if constexpr (std::is_same_v<scalar_t, float>) {
    scale_kept_f32(x, keep, y, begin, end, static_cast<float>(scale));
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
at::Tensor masked_scale(const at::Tensor& src, const at::Tensor& mask, double scale, const Draw* draw) {
  auto out = at::empty_like(src);
  const int64_t n = src.numel();
  uint8_t* keep = reinterpret_cast<uint8_t*>(mask.data_ptr<bool>());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, src.scalar_type(), "dropout", [&] {
    const scalar_t* x = src.const_data_ptr<scalar_t>();
    scalar_t* y = out.mutable_data_ptr<scalar_t>();
    at::parallel_for(0, (n + 1) / 2, kGrainPairs, [&](int64_t begin, int64_t end) {
      if (draw != nullptr) {
        draw_mask(keep, begin, end, n, *draw);
      }
      scale_kept(x, keep, y, 2 * begin, std::min(2 * end, n), scale);
    });
  });
  return out;
}

struct Dropout : public torch::autograd::Function<Dropout> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, double p) {
    auto src = input.contiguous();
    auto mask = at::empty(src.sizes(), src.options().dtype(at::kBool));
    // A draw's half below `threshold` drops its element: probability threshold / 2^32.
    const Draw draw{next_key(), static_cast<uint64_t>(std::llround(p * 4294967296.0))};
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
