// Dropout masks from a counter-based generator, shared by the dropout and attention shims:
// element n of a mask drawn with key K is kept when its 32-bit half (n odd: the high half) of
// SplitMix64(K, n / 2) is at least `threshold` (probability 1 - threshold / 2^32). Any range of
// elements can be drawn on its own, so masks are the same for any split into tasks or threads.
#pragma once

#include <stdint.h>

namespace chronos_mask {

struct Draw {
  uint64_t key;
  uint64_t threshold;
};

// A draw of probability p with a fresh key from libtorch's default CPU generator (so
// `manual_seed` fixes it).
Draw next_draw(double p);

// keep[i] for elements first .. first + count of the mask (keep points at element `first`).
void draw_mask(uint8_t* keep, int64_t first, int64_t count, Draw draw);

// y[i] = x[i] * scale where keep[i], else 0, for i in [0, count). x may equal y.
void scale_kept(const float* x, const uint8_t* keep, float* y, int64_t count, float scale);

} // namespace chronos_mask
