// See mask.h.
#include "mask.h"

#include <cmath>
#include <mutex>

#include <ATen/CPUGeneratorImpl.h>

#include "shim.h"

namespace chronos_mask {

namespace {

// SplitMix64's output for position `counter` of the stream of `key`.
inline uint64_t splitmix64(uint64_t key, uint64_t counter) {
  uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

} // namespace

Draw next_draw(double p) {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  const uint64_t key = generator.get<at::CPUGeneratorImpl>()->random64();
  return Draw{key, static_cast<uint64_t>(std::llround(p * 4294967296.0))};
}

// The hot loops are multiversioned (CHRONOS_MULTIVERSION, shim.h): the baseline has no vector
// 64-bit multiply.

CHRONOS_MULTIVERSION
void draw_mask(uint8_t* keep, int64_t first, int64_t count, Draw draw) {
  int64_t n = first;
  const int64_t end = first + count;
  if (n < end && (n & 1) != 0) {  // the high half of a pair
    keep[n - first] = (splitmix64(draw.key, static_cast<uint64_t>(n >> 1)) >> 32) >= draw.threshold;
    ++n;
  }
  for (; n + 1 < end; n += 2) {
    const uint64_t bits = splitmix64(draw.key, static_cast<uint64_t>(n >> 1));
    keep[n - first] = (bits & 0xFFFFFFFFULL) >= draw.threshold;
    keep[n + 1 - first] = (bits >> 32) >= draw.threshold;
  }
  if (n < end) {  // the low half of a last pair
    keep[n - first] = (splitmix64(draw.key, static_cast<uint64_t>(n >> 1)) & 0xFFFFFFFFULL) >= draw.threshold;
  }
}

// Branch-free (the dropped elements fall at random), so vectorisable.
CHRONOS_MULTIVERSION
void scale_kept(const float* x, const uint8_t* keep, float* y, int64_t count, float scale) {
  for (int64_t i = 0; i < count; ++i) {
    y[i] = x[i] * (scale * static_cast<float>(keep[i]));
  }
}

} // namespace chronos_mask
