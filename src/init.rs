//! Random initialisation of a fresh model, as transformers' `_init_weights` gives it: T5
//! (`T5PreTrainedModel._init_weights`, scaled by `initializer_factor`), Chronos-Bolt (T5's plus
//! the residual blocks and `shared` of upstream `ChronosBoltModelForForecasting._init_weights`)
//! and GPT-2 (`GPT2PreTrainedModel._init_weights`: `initializer_range`, residual projections
//! scaled by `1/sqrt(2 n_layer)`).
//!
//! Rules go by HF state-dict name, so they apply to the variables the model constructors create
//! (`ChronosT5::new`, `ChronosBolt::new`, `ChronosGpt2::new`); a variable without a rule is an
//! error, not silently left at zero. Values are drawn on the CPU in float32 from libtorch's
//! global generator, variable by variable in name order, after seeding it: the same seed gives
//! the same weights on any device and dtype. The draws are not transformers' (its order and
//! extra draws differ); the distributions are.
//!
//! One deliberate difference from the pinned transformers 5: for Chronos-Bolt it skips
//! chronos_bolt.py's residual-block rule (the class is "custom code" to transformers 5, which
//! then marks modules without parameters of their own, like `ResidualBlock`, initialised without
//! calling `_init_weights`), leaving those linear layers at N(0, initializer_factor). This module
//! follows upstream's rule, which transformers 4 applied (see fixtures/generate_train.py).

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::config::{ChronosBoltConfig, Gpt2Config, T5Config};
use crate::error::{ChronosError, Result};

/// The initial distribution of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InitRule {
    /// Zero-mean normal with this standard deviation.
    Normal(f64),
    /// Every element this value.
    Constant(f64),
}

/// Last two components of a dotted name (`"...q.weight"` → `("q", "weight")`).
fn leaf(name: &str) -> (&str, &str) {
    let mut parts = name.rsplit('.');
    let last = parts.next().unwrap_or("");
    (parts.next().unwrap_or(""), last)
}

/// T5's rule for `name` (`T5PreTrainedModel._init_weights`, factor f = `initializer_factor`):
/// `shared` and an untied `lm_head` N(0, f); layer norms f; attention `q` N(0, f (d_model
/// d_kv)^-1/2), `k`/`v` N(0, f d_model^-1/2), `o` N(0, f (heads d_kv)^-1/2); relative attention
/// bias N(0, f d_model^-1/2); feed-forward `wi`/`wi_0`/`wi_1` N(0, f d_model^-1/2), `wo` N(0, f
/// d_ff^-1/2).
pub fn t5_rule(name: &str, config: &T5Config) -> Option<InitRule> {
    let f = config.initializer_factor;
    let d = config.d_model as f64;
    let (module, param) = leaf(name);
    if name == "shared.weight" || name == "lm_head.weight" {
        return Some(InitRule::Normal(f));
    }
    if param != "weight" {
        return None;
    }
    if module == "layer_norm" || module == "final_layer_norm" {
        return Some(InitRule::Constant(f));
    }
    if module == "relative_attention_bias" {
        return Some(InitRule::Normal(f * d.powf(-0.5)));
    }
    let fan = match module {
        "q" => d * config.d_kv as f64,
        "k" | "v" | "wi" | "wi_0" | "wi_1" => d,
        "o" => (config.num_heads * config.d_kv) as f64,
        "wo" => config.d_ff as f64,
        _ => return None,
    };
    Some(InitRule::Normal(f * fan.powf(-0.5)))
}

/// Chronos-Bolt's rule for `name`: T5's, plus (upstream `_init_weights`) `shared` N(0, f) and in
/// both residual blocks (`input_patch_embedding`, `output_patch_embedding`) `hidden_layer` and
/// `residual_layer` weights N(0, f (2 input_patch_size)^-1/2) (also in the output block, whose
/// input is d_model wide: upstream's formula), `output_layer` N(0, f d_ff^-1/2), biases 0.
pub fn bolt_rule(name: &str, config: &T5Config, chronos: &ChronosBoltConfig) -> Option<InitRule> {
    let f = config.initializer_factor;
    let block = name.split('.').next().unwrap_or("");
    if block == "input_patch_embedding" || block == "output_patch_embedding" {
        let (layer, param) = leaf(name);
        return match (layer, param) {
            (_, "bias") => Some(InitRule::Constant(0.0)),
            ("hidden_layer" | "residual_layer", "weight") => Some(InitRule::Normal(
                f * ((2 * chronos.input_patch_size) as f64).powf(-0.5),
            )),
            ("output_layer", "weight") => {
                Some(InitRule::Normal(f * (config.d_ff as f64).powf(-0.5)))
            }
            _ => None,
        };
    }
    t5_rule(name, config)
}

/// GPT-2's rule for `name` (r = `initializer_range`, 0.02 when absent): embeddings `wte`/`wpe`,
/// `c_attn`, `c_fc` (and an untied `lm_head`) N(0, r); both `c_proj` N(0, r / sqrt(2 n_layer));
/// biases 0; layer norms weight 1, bias 0.
pub fn gpt2_rule(name: &str, config: &Gpt2Config) -> Option<InitRule> {
    let r = config
        .extra
        .get("initializer_range")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.02);
    let (module, param) = leaf(name);
    if matches!(module, "ln_1" | "ln_2" | "ln_f") {
        return match param {
            "weight" => Some(InitRule::Constant(1.0)),
            "bias" => Some(InitRule::Constant(0.0)),
            _ => None,
        };
    }
    match (module, param) {
        ("c_attn" | "c_proj" | "c_fc", "bias") => Some(InitRule::Constant(0.0)),
        ("c_proj", "weight") => Some(InitRule::Normal(r / ((2 * config.n_layer) as f64).sqrt())),
        ("wte" | "wpe" | "c_attn" | "c_fc" | "lm_head", "weight") => Some(InitRule::Normal(r)),
        _ => None,
    }
}

/// Seeds libtorch's global generator with `seed` (`tch::manual_seed`, as transformers'
/// `set_seed` before building a model), then sets every variable of `vs` to a draw from
/// `rule(name)`, in name order. Errors naming the first variable without a rule.
pub fn initialize(vs: &VarStore, seed: i64, rule: impl Fn(&str) -> Option<InitRule>) -> Result<()> {
    let mut variables: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    variables.sort_by(|a, b| a.0.cmp(&b.0));
    let rules = variables
        .iter()
        .map(|(name, _)| {
            rule(name).ok_or_else(|| {
                ChronosError::InvalidInput(format!("no initialisation rule for variable '{name}'"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    tch::manual_seed(seed);
    tch::no_grad(|| -> Result<()> {
        for ((_, var), rule) in variables.iter().zip(rules) {
            let values = match rule {
                InitRule::Normal(std) => {
                    let mut t = Tensor::empty(var.size(), (Kind::Float, tch::Device::Cpu));
                    t.f_normal_(0.0, std)?
                }
                InitRule::Constant(value) => {
                    Tensor::full(var.size(), value, (Kind::Float, tch::Device::Cpu))
                }
            };
            let mut var = var.shallow_clone();
            var.f_copy_(&values)?;
        }
        Ok(())
    })
}

/// [`initialize`] with [`t5_rule`], for a `ChronosT5` built in `vs`.
pub fn init_t5(vs: &VarStore, config: &T5Config, seed: i64) -> Result<()> {
    initialize(vs, seed, |name| t5_rule(name, config))
}

/// [`initialize`] with [`bolt_rule`], for a `ChronosBolt` built in `vs`.
pub fn init_bolt(
    vs: &VarStore,
    config: &T5Config,
    chronos: &ChronosBoltConfig,
    seed: i64,
) -> Result<()> {
    initialize(vs, seed, |name| bolt_rule(name, config, chronos))
}

/// [`initialize`] with [`gpt2_rule`], for a `ChronosGpt2` built in `vs`.
pub fn init_gpt2(vs: &VarStore, config: &Gpt2Config, seed: i64) -> Result<()> {
    initialize(vs, seed, |name| gpt2_rule(name, config))
}
