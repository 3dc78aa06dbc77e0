// See chronos_attention.h.
#include "chronos_attention.h"

#include <limits>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include "mask.h"
#include "shim.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr float kMasked = std::numeric_limits<float>::lowest();

// row[j] = row[j] * scale + bias[j] (bias may be NULL), then kMasked where !allowed[j]
// (allowed may be NULL) or j > last (causal; last < 0: none).
CHRONOS_MULTIVERSION
void finish_scores(float* row, int64_t len, float scale, const float* bias, const bool* allowed, int64_t last) {
  if (bias != nullptr) {
    for (int64_t j = 0; j < len; ++j) {
      row[j] = row[j] * scale + bias[j];
    }
  } else if (scale != 1.0f) {
    for (int64_t j = 0; j < len; ++j) {
      row[j] *= scale;
    }
  }
  if (allowed != nullptr) {
    for (int64_t j = 0; j < len; ++j) {
      row[j] = allowed[j] ? row[j] : kMasked;
    }
  }
  for (int64_t j = last + 1; last >= 0 && j < len; ++j) {
    row[j] = kMasked;
  }
}

// acc[j] += grad[j] where allowed[j] (allowed may be NULL: everywhere): a masked score does not
// depend on the bias.
CHRONOS_MULTIVERSION
void accumulate(float* acc, const float* grad, const bool* allowed, int64_t len) {
  if (allowed == nullptr) {
    for (int64_t j = 0; j < len; ++j) {
      acc[j] += grad[j];
    }
  } else {
    for (int64_t j = 0; j < len; ++j) {
      acc[j] += allowed[j] ? grad[j] : 0.0f;
    }
  }
}

// Everything one (batch, head) needs, for the forward and the backward pass.
struct Problem {
  at::Tensor query, key, value;  // (B, H, L, D)
  at::Tensor bias;               // expanded to (Bb, Hb, Lq, Lk), last stride 1, or undefined
  at::Tensor allowed;            // bool expanded to (Ab, Ah, Lq, Lk), last stride 1, or undefined
  // (The autograd function's inputs: an empty tensor for no bias or no mask.)
  bool causal;
  double scale;
  double keep_scale;

  int64_t heads() const { return query.size(1); }
  int64_t q_len() const { return query.size(2); }
  int64_t k_len() const { return key.size(2); }

  // Row i of (b, h) in `t`, `bias` or `allowed` (broadcast over batch and heads), or NULL when
  // `t` is undefined.
  template <typename T>
  static const T* row(const at::Tensor& t, int64_t b, int64_t h, int64_t i) {
    if (!t.defined()) {
      return nullptr;
    }
    return t.const_data_ptr<T>() + (b % t.size(0)) * t.stride(0) + (h % t.size(1)) * t.stride(1) + i * t.stride(2);
  }

  // Row i of (b, h)'s allowed keys, or NULL for all.
  const bool* allowed_row(int64_t b, int64_t h, int64_t i) const { return row<bool>(allowed, b, h, i); }

  // The weights softmax(scores) of (b, h) into `weights` (q_len, k_len), before dropout.
  void weights(int64_t b, int64_t h, at::Tensor& scores, at::Tensor& weights) const {
    at::mm_out(scores, query[b][h], key[b][h].t());
    const int64_t lq = q_len(), lk = k_len();
    float* s = scores.data_ptr<float>();
    for (int64_t i = 0; i < lq; ++i) {
      finish_scores(
          s + i * lk, lk, static_cast<float>(scale), row<float>(bias, b, h, i), allowed_row(b, h, i), causal ? i : -1);
    }
    at::_softmax_out(weights, scores, 1, false);
  }

  // The dropout mask of (b, h): elements of the (B, H, Lq, Lk) weights in order.
  void mask(int64_t b, int64_t h, chronos_mask::Draw draw, uint8_t* keep) const {
    const int64_t n = q_len() * k_len();
    chronos_mask::draw_mask(keep, (b * heads() + h) * n, n, draw);
  }
};

struct AttentionDropout : public torch::autograd::Function<AttentionDropout> {
  static at::Tensor forward(
      AutogradContext* ctx,
      const at::Tensor& query,
      const at::Tensor& key,
      const at::Tensor& value,
      const at::Tensor& bias,
      const at::Tensor& allowed,
      bool causal,
      double scale,
      double p) {
    auto problem = make_problem(query, key, value, bias, allowed, causal, scale, p);
    const auto draw = chronos_mask::next_draw(p);
    const int64_t batch = query.size(0), heads = query.size(1);
    const int64_t lq = problem.q_len(), lk = problem.k_len();
    auto out = at::empty({batch, heads, lq, value.size(3)}, query.options());
    // Kept for the backward pass: the weights before dropout and the dropout mask, (B, H, Lq, Lk)
    // each (as much as PyTorch's unfused attention keeps, less its dropped copy of the weights).
    auto weights = at::empty({batch, heads, lq, lk}, query.options());
    auto keep = at::empty({batch, heads, lq, lk}, query.options().dtype(at::kByte));
    at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
      auto scores = at::empty({lq, lk}, query.options());
      auto dropped = at::empty({lq, lk}, query.options());
      for (int64_t index = begin; index < end; ++index) {
        const int64_t b = index / heads, h = index % heads;
        auto weights_bh = weights[b][h];
        problem.weights(b, h, scores, weights_bh);
        uint8_t* k = keep[b][h].data_ptr<uint8_t>();
        problem.mask(b, h, draw, k);
        chronos_mask::scale_kept(
            weights_bh.const_data_ptr<float>(), k, dropped.data_ptr<float>(), lq * lk,
            static_cast<float>(problem.keep_scale));
        auto out_bh = out[b][h];
        at::mm_out(out_bh, dropped, problem.value[b][h]);
      }
    });
    ctx->save_for_backward({query, key, value, bias, allowed, weights, keep});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["p"] = p;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &query = saved[0], &key = saved[1], &value = saved[2];
    const at::Tensor &bias = saved[3], &allowed = saved[4], &weights = saved[5], &keep = saved[6];
    auto problem = make_problem(
        query,
        key,
        value,
        bias,
        allowed,
        ctx->saved_data["causal"].toBool(),
        ctx->saved_data["scale"].toDouble(),
        ctx->saved_data["p"].toDouble());
    const int64_t batch = query.size(0), heads = query.size(1);
    const int64_t lq = problem.q_len(), lk = problem.k_len();
    auto grad_out = grads[0].detach().contiguous();
    auto grad_query = at::empty(query.sizes(), query.options());
    auto grad_key = at::empty(key.sizes(), key.options());
    auto grad_value = at::empty(value.sizes(), value.options());
    const bool bias_grad = problem.bias.defined() && ctx->needs_input_grad(3);
    // Per thread: the bias gradient of its (batch, head) pairs, summed afterwards.
    at::Tensor bias_acc;
    if (bias_grad) {
      bias_acc = at::zeros(
          {at::get_num_threads(), problem.bias.size(0), problem.bias.size(1), lq, lk}, query.options());
    }
    at::parallel_for(0, batch * heads, 1, [&](int64_t begin, int64_t end) {
      auto scores = at::empty({lq, lk}, query.options());
      auto dropped = at::empty({lq, lk}, query.options());
      auto grad_weights = at::empty({lq, lk}, query.options());
      const auto keep_scale = static_cast<float>(problem.keep_scale);
      for (int64_t index = begin; index < end; ++index) {
        const int64_t b = index / heads, h = index % heads;
        const auto weights_bh = weights[b][h];
        const uint8_t* k = keep[b][h].const_data_ptr<uint8_t>();
        chronos_mask::scale_kept(weights_bh.const_data_ptr<float>(), k, dropped.data_ptr<float>(), lq * lk, keep_scale);
        auto grad_out_bh = grad_out[b][h];
        auto grad_value_bh = grad_value[b][h];
        at::mm_out(grad_value_bh, dropped.t(), grad_out_bh);
        at::mm_out(grad_weights, grad_out_bh, problem.value[b][h].t());
        float* gw = grad_weights.data_ptr<float>();
        chronos_mask::scale_kept(gw, k, gw, lq * lk, keep_scale);
        // Gradient of the scores (masked ones get 0: their weight is 0).
        at::_softmax_backward_data_out(scores, grad_weights, weights_bh, 1, at::kFloat);
        if (bias_grad) {
          auto acc = bias_acc[at::get_thread_num()][b % problem.bias.size(0)][h % problem.bias.size(1)];
          float* a = acc.data_ptr<float>();
          const float* g = scores.const_data_ptr<float>();
          for (int64_t i = 0; i < lq; ++i) {
            accumulate(a + i * lk, g + i * lk, problem.allowed_row(b, h, i), lk);
          }
        }
        if (problem.scale != 1.0) {
          scores.mul_(problem.scale);
        }
        auto grad_query_bh = grad_query[b][h];
        auto grad_key_bh = grad_key[b][h];
        at::mm_out(grad_query_bh, scores, problem.key[b][h]);
        at::mm_out(grad_key_bh, scores.t(), problem.query[b][h]);
      }
    });
    at::Tensor grad_bias;
    if (bias_grad) {
      grad_bias = bias_acc.sum(0).sum_to_size(bias.sizes());
    } else if (ctx->needs_input_grad(3)) {
      grad_bias = at::zeros_like(bias);
    }
    return {grad_query, grad_key, grad_value, grad_bias, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }

  static Problem make_problem(
      const at::Tensor& query,
      const at::Tensor& key,
      const at::Tensor& value,
      const at::Tensor& bias,
      const at::Tensor& allowed,
      bool causal,
      double scale,
      double p) {
    // Detached: the (batch, head) pieces are computed on libtorch's worker threads, which do
    // not inherit the autograd function's dispatch state.
    Problem problem{
        query.detach(), key.detach(), value.detach(), at::Tensor(), at::Tensor(), causal, scale, 1.0 / (1.0 - p)};
    // (Bt, Ht, *, *) expanded to (Bt, Ht, Lq, Lk) with a last stride of 1; undefined if empty.
    auto over_scores = [&](const at::Tensor& t) {
      if (t.numel() == 0) {
        return at::Tensor();
      }
      auto expanded = t.detach().expand({t.size(0), t.size(1), query.size(2), key.size(2)});
      return expanded.stride(3) == 1 ? expanded : expanded.contiguous();
    };
    problem.bias = over_scores(bias);
    problem.allowed = over_scores(allowed);
    return problem;
  }
};

void check_inputs(
    const at::Tensor& query,
    const at::Tensor& key,
    const at::Tensor& value,
    const at::Tensor* bias,
    const at::Tensor* allowed,
    double p) {
  for (const at::Tensor* t : {&query, &key, &value}) {
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == at::kFloat && t->dim() == 4,
                "attention: query, key and value must be 4-d float32 CPU tensors, got ", t->sizes(), " ", t->scalar_type());
    TORCH_CHECK(t->stride(3) == 1, "attention: the last dimension must be contiguous");
  }
  TORCH_CHECK(key.sizes() == value.sizes() && key.size(0) == query.size(0) && key.size(1) == query.size(1) &&
                  key.size(3) == query.size(3),
              "attention: shapes do not match: query ", query.sizes(), ", key ", key.sizes(), ", value ", value.sizes());
  // bias and allowed: 4-d CPU tensors of `type` that broadcast to the scores (B, H, Lq, Lk).
  auto check_scores_like = [&](const at::Tensor* t, at::ScalarType type, const char* name) {
    if (t == nullptr) {
      return;
    }
    TORCH_CHECK(t->device().is_cpu() && t->scalar_type() == type && t->dim() == 4,
                "attention: ", name, " must be a 4-d ", type, " CPU tensor, got ", t->sizes(), " ", t->scalar_type());
    TORCH_CHECK((t->size(0) == 1 || t->size(0) == query.size(0)) && (t->size(1) == 1 || t->size(1) == query.size(1)) &&
                    (t->size(2) == 1 || t->size(2) == query.size(2)) && (t->size(3) == 1 || t->size(3) == key.size(2)),
                "attention: ", name, " ", t->sizes(), " does not broadcast to the scores");
  };
  check_scores_like(bias, at::kFloat, "bias");
  check_scores_like(allowed, at::kBool, "allowed");
  TORCH_CHECK(p >= 0.0 && p < 1.0, "attention: p must be in [0, 1), got ", p);
}

} // namespace

extern "C" char* chronos_attention_dropout(
    void* query,
    void* key,
    void* value,
    void* bias,
    void* allowed,
    int32_t causal,
    double scale,
    double p,
    void** out) {
  return chronos_shim::guarded([&] {
    const auto& q = *static_cast<at::Tensor*>(query);
    const auto& k = *static_cast<at::Tensor*>(key);
    const auto& v = *static_cast<at::Tensor*>(value);
    const auto* b = static_cast<at::Tensor*>(bias);
    const auto* m = static_cast<at::Tensor*>(allowed);
    check_inputs(q, k, v, b, m, p);
    TORCH_CHECK(!causal || q.size(2) == k.size(2), "attention: causal needs q_len == k_len");
    // Autograd functions take no undefined tensors: an empty tensor stands for none.
    auto none = [&](at::ScalarType type) { return at::empty({0}, q.options().dtype(type)); };
    *out = new at::Tensor(AttentionDropout::apply(
        q, k, v, b != nullptr ? *b : none(at::kFloat), m != nullptr ? *m : none(at::kBool), causal != 0, scale, p));
  });
}
