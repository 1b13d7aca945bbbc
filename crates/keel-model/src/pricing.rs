//! What tokens cost. One table, per model family, in US dollars per million tokens, so the cost
//! shown to the user is computed in exactly one place; settings may override or add prices
//! ([`Pricing`]). Unknown models have no price: keel reports their tokens and says the cost is
//! unknown rather than guessing.

use keel_protocol::Usage;

use crate::ConfigError;

/// Prices of one model family, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Uncached input.
    pub input: f64,
    /// Output (including thinking).
    pub output: f64,
    /// Input written to the prompt cache.
    pub cache_write: f64,
    /// Input read from the prompt cache.
    pub cache_read: f64,
}

impl Price {
    const fn new(input: f64, output: f64, cache_write: f64, cache_read: f64) -> Self {
        Self {
            input,
            output,
            cache_write,
            cache_read,
        }
    }

    /// The cost of `usage` at these prices.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let per_token = |tokens: u64, per_million: f64| tokens as f64 * per_million / 1_000_000.0;
        per_token(usage.input_tokens, self.input)
            + per_token(usage.output_tokens, self.output)
            + per_token(usage.cache_creation_input_tokens, self.cache_write)
            + per_token(usage.cache_read_input_tokens, self.cache_read)
    }
}

/// Model-name fragments and their prices; the first fragment found in the name wins, so more
/// specific fragments come first. Anthropic's cache writes cost 1.25x input and reads 0.1x;
/// OpenAI bills cached input at its own rate and has no separate write price.
const TABLE: &[(&str, Price)] = &[
    ("claude-opus-4-5", Price::new(5.0, 25.0, 6.25, 0.50)),
    ("claude-opus-4", Price::new(15.0, 75.0, 18.75, 1.50)),
    ("claude-3-opus", Price::new(15.0, 75.0, 18.75, 1.50)),
    ("claude-sonnet-4", Price::new(3.0, 15.0, 3.75, 0.30)),
    ("claude-3-7-sonnet", Price::new(3.0, 15.0, 3.75, 0.30)),
    ("claude-3-5-sonnet", Price::new(3.0, 15.0, 3.75, 0.30)),
    ("claude-haiku-4", Price::new(1.0, 5.0, 1.25, 0.10)),
    ("claude-3-5-haiku", Price::new(0.80, 4.0, 1.0, 0.08)),
    ("claude-3-haiku", Price::new(0.25, 1.25, 0.30, 0.03)),
    ("gpt-4o-mini", Price::new(0.15, 0.60, 0.15, 0.075)),
    ("gpt-4o", Price::new(2.50, 10.0, 2.50, 1.25)),
    ("gpt-4.1-nano", Price::new(0.10, 0.40, 0.10, 0.025)),
    ("gpt-4.1-mini", Price::new(0.40, 1.60, 0.40, 0.10)),
    ("gpt-4.1", Price::new(2.0, 8.0, 2.0, 0.50)),
    ("gpt-5-nano", Price::new(0.05, 0.40, 0.05, 0.005)),
    ("gpt-5-mini", Price::new(0.25, 2.0, 0.25, 0.025)),
    ("gpt-5", Price::new(1.25, 10.0, 1.25, 0.125)),
    ("o4-mini", Price::new(1.10, 4.40, 1.10, 0.275)),
    ("o3", Price::new(2.0, 8.0, 2.0, 0.50)),
];

/// The built-in price of `model`, if keel knows it. Provider prefixes such as
/// `anthropic/claude-sonnet-4-5` (OpenRouter) are matched too.
pub fn price_of(model: &str) -> Option<Price> {
    let name = model.to_ascii_lowercase();
    let name = name.rsplit('/').next().unwrap_or(&name);
    TABLE
        .iter()
        .find(|(fragment, _)| name.starts_with(fragment) || name.contains(&format!(".{fragment}")))
        .map(|(_, price)| *price)
}

/// The cost of `usage` on `model` in US dollars at built-in prices, or `None` if the model's
/// price is unknown. [`Pricing::cost`] also applies the user's overrides.
pub fn cost_usd(model: &str, usage: &Usage) -> Option<f64> {
    price_of(model).map(|price| price.cost(usage))
}

pub use keel_protocol::PriceOverride;

/// The full price of an override: cache prices default to Anthropic's ratios, 1.25x input for
/// writes and 0.1x for reads (providers that bill no cache writes report no cache-write
/// tokens, so that default costs them nothing).
pub fn override_price(price: &PriceOverride) -> Price {
    Price::new(
        price.input,
        price.output,
        price.cache_write.unwrap_or(price.input * 1.25),
        price.cache_read.unwrap_or(price.input * 0.1),
    )
}

/// Prices for a session: the built-in table plus the user's overrides, which win. An override
/// applies to the model it names and to names that start with it (`"qwen2.5-coder"` prices
/// `qwen2.5-coder:32b`), ignoring case and a provider prefix; the longest matching name wins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pricing {
    /// Lowercased model names and their prices, longest name first.
    overrides: Vec<(String, Price)>,
}

impl Pricing {
    /// The built-in prices only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// The built-in prices with `overrides` (model name → price) on top. Negative or non-finite
    /// prices are refused, naming the model.
    pub fn with_overrides(
        overrides: impl IntoIterator<Item = (String, PriceOverride)>,
    ) -> Result<Self, ConfigError> {
        let mut list = Vec::new();
        for (model, price) in overrides {
            let full = override_price(&price);
            for (field, value) in [
                ("input", full.input),
                ("output", full.output),
                ("cacheWrite", full.cache_write),
                ("cacheRead", full.cache_read),
            ] {
                if !value.is_finite() || value < 0.0 {
                    return Err(ConfigError::Invalid {
                        setting: format!("pricing \"{model}\".{field}"),
                        problem: format!(
                            "{value} is not a price; give US dollars per million tokens, e.g. 3.0"
                        ),
                    });
                }
            }
            list.push((model.trim().to_ascii_lowercase(), full));
        }
        list.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
        Ok(Self { overrides: list })
    }

    /// The price of `model`: an override if one matches, else the built-in one.
    pub fn price(&self, model: &str) -> Option<Price> {
        let name = model.to_ascii_lowercase();
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        self.overrides
            .iter()
            .find(|(key, _)| name.starts_with(key.as_str()) || base.starts_with(key.as_str()))
            .map(|(_, price)| *price)
            .or_else(|| price_of(model))
    }

    /// The cost of `usage` on `model` in US dollars, or `None` if its price is unknown.
    pub fn cost(&self, model: &str, usage: &Usage) -> Option<f64> {
        self.price(model).map(|price| price.cost(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, output: u64, write: u64, read: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_creation_input_tokens: write,
            cache_read_input_tokens: read,
        }
    }

    #[test]
    fn sonnet_costs_three_and_fifteen_per_million() {
        let cost = cost_usd(
            "claude-sonnet-4-5-20250929",
            &usage(1_000_000, 1_000_000, 0, 0),
        );
        assert_eq!(cost, Some(18.0));
    }

    #[test]
    fn cache_tokens_are_priced_separately() {
        let cost = cost_usd("claude-sonnet-4-5", &usage(0, 0, 1_000_000, 1_000_000)).unwrap();
        assert!((cost - 4.05).abs() < 1e-9, "{cost}");
    }

    #[test]
    fn specific_families_win_over_general_ones() {
        assert_eq!(price_of("claude-opus-4-5").unwrap().input, 5.0);
        assert_eq!(price_of("claude-opus-4-1").unwrap().input, 15.0);
        assert_eq!(price_of("gpt-4o-mini").unwrap().input, 0.15);
        assert_eq!(price_of("gpt-4o-2024-08-06").unwrap().input, 2.5);
        assert_eq!(price_of("anthropic/claude-haiku-4-5").unwrap().input, 1.0);
    }

    #[test]
    fn overrides_win_match_by_prefix_and_fill_cache_prices() {
        let pricing = Pricing::with_overrides([
            (
                "qwen2.5-coder".to_string(),
                PriceOverride {
                    input: 0.2,
                    output: 0.6,
                    cache_write: None,
                    cache_read: None,
                },
            ),
            (
                "claude-sonnet-4-5".to_string(),
                serde_json::from_str(r#"{"input": 2, "output": 10, "cacheRead": 0.5}"#).unwrap(),
            ),
        ])
        .unwrap();
        let price = pricing.price("qwen2.5-coder:32b").unwrap();
        assert!(
            (price.cache_write - 0.25).abs() < 1e-12 && (price.cache_read - 0.02).abs() < 1e-12
        );
        assert_eq!(
            pricing.price("openrouter/Qwen2.5-Coder-32B").unwrap().input,
            0.2
        );
        let sonnet = pricing.price("claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(
            (sonnet.input, sonnet.cache_write, sonnet.cache_read),
            (2.0, 2.5, 0.5)
        );
        // Others keep the built-in table; unknown stays unknown.
        assert_eq!(pricing.price("claude-haiku-4-5").unwrap().input, 1.0);
        assert_eq!(pricing.cost("llama3.1", &usage(1, 1, 0, 0)), None);
        assert_eq!(
            Pricing::builtin().cost("claude-sonnet-4-5", &usage(1_000_000, 0, 0, 0)),
            Some(3.0)
        );
    }

    #[test]
    fn bad_override_prices_are_named() {
        let error = Pricing::with_overrides([(
            "m".to_string(),
            PriceOverride {
                input: -1.0,
                output: 1.0,
                cache_write: None,
                cache_read: None,
            },
        )])
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("pricing \"m\".input: -1 is not a price"),
            "{error}"
        );
        let parsed =
            serde_json::from_str::<PriceOverride>(r#"{"input": 1, "output": 2, "cache": 1}"#);
        assert!(
            parsed
                .unwrap_err()
                .to_string()
                .contains("unknown field `cache`")
        );
    }

    #[test]
    fn unknown_models_have_no_price() {
        assert_eq!(cost_usd("llama3.1:8b", &usage(10, 10, 0, 0)), None);
        assert_eq!(cost_usd("mock-model", &usage(10, 10, 0, 0)), None);
    }
}
