//! Cost from a bundle's pricing and the usage figures the adapter normalized. Amounts are in
//! micro-dollars; every line says where its quantity came from.

use crate::format::Pricing;
use executor_lifecycle::{Cost, CostLine, ProviderResult};
use serde_json::Value;

fn num(usage: &Value, key: &str) -> f64 {
    usage.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn line(unit: &str, quantity: f64, unit_price_usd: f64, source: &str) -> CostLine {
    CostLine {
        unit: unit.to_string(),
        quantity,
        unit_price_usd,
        amount_usd_micros: (quantity * unit_price_usd * 1e6).round() as i64,
        source: source.to_string(),
    }
}

/// A number an input field holds: a number, or a string that starts with one (`"5s"`, `"8"`).
fn number_in(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let end = s
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
                .map_or(s.len(), |(i, _)| i);
            s[..end].parse().ok()
        }
        _ => None,
    }
}

fn first_number(input: &Value, keys: &[&str]) -> Option<(f64, String)> {
    keys.iter()
        .find_map(|k| number_in(input.get(*k)?).map(|n| (n, format!("input.{k}"))))
}

fn text_chars(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(text_chars).sum(),
        Value::Object(o) => o.values().map(text_chars).sum(),
        _ => 0,
    }
}

/// Output tokens assumed when the input sets no limit.
pub const DEFAULT_ESTIMATE_OUTPUT_TOKENS: f64 = 4096.0;
/// Seconds (of compute or of output) assumed when neither the input nor `estimate:` says.
pub const DEFAULT_ESTIMATE_SECONDS: f64 = 10.0;

/// The expected cost of running `input`: the pricing applied to the usage the input implies.
/// Each figure comes from, first, the input (`n`/`num_outputs`/... outputs; the duration field;
/// `max_tokens`/...; the text's length, 4 characters a token), then the model's `estimate:`
/// (typical usage: `audio_seconds: 600`), then a default (1 output, 10 s, 4,096 output
/// tokens, 1 unit). Each line's source says which.
pub fn estimate(
    pricing: &Pricing,
    input: &Value,
    duration_input: Option<&str>,
    typical: &std::collections::BTreeMap<String, f64>,
) -> Cost {
    let pick = |from_input: Option<(f64, String)>, field: &str, default: f64| {
        from_input
            .or_else(|| {
                typical
                    .get(field)
                    .map(|v| (*v, format!("estimate.{field}")))
            })
            .unwrap_or((default, format!("default {field}")))
    };
    let outputs = || {
        pick(
            first_number(
                input,
                &[
                    "n",
                    "num_outputs",
                    "num_images",
                    "number_of_images",
                    "samples",
                    "count",
                    "batch_size",
                ],
            ),
            "outputs",
            1.0,
        )
    };
    let duration = || {
        let mut keys = vec!["duration", "duration_seconds", "seconds"];
        if let Some(d) = duration_input {
            keys.insert(0, d);
        }
        pick(
            first_number(input, &keys),
            "duration_seconds",
            DEFAULT_ESTIMATE_SECONDS,
        )
    };
    let mut usage = serde_json::Map::new();
    let mut sources = Vec::new();
    let mut n_outputs = 0usize;
    let mut put =
        |usage: &mut serde_json::Map<String, Value>, field: &str, (v, src): (f64, String)| {
            usage.insert(field.into(), serde_json::json!(v));
            sources.push((format!("usage.{field}"), src));
        };
    match pricing {
        Pricing::PerToken { .. } => {
            let chars = text_chars(input) as f64;
            let tokens = typical
                .get("input_tokens")
                .map(|v| (*v, "estimate.input_tokens".to_string()))
                .unwrap_or(((chars / 4.0).ceil(), "input text / 4".to_string()));
            put(&mut usage, "input_tokens", tokens);
            put(
                &mut usage,
                "output_tokens",
                pick(
                    first_number(
                        input,
                        &["max_tokens", "max_output_tokens", "max_completion_tokens"],
                    ),
                    "output_tokens",
                    DEFAULT_ESTIMATE_OUTPUT_TOKENS,
                ),
            );
        }
        Pricing::PerOutput { .. } | Pricing::PerOutputCredits { .. } => {
            let (n, src) = outputs();
            n_outputs = n.max(0.0) as usize;
            sources.push(("outputs".into(), src));
        }
        Pricing::PerSecond { .. } => put(
            &mut usage,
            "predict_time",
            pick(None, "predict_time", DEFAULT_ESTIMATE_SECONDS),
        ),
        Pricing::PerCredit { .. } | Pricing::PerOutputSecond { .. } => {
            put(&mut usage, "duration_seconds", duration());
        }
        Pricing::PerCharacter { .. } => {
            let text = ["text", "input", "prompt"]
                .iter()
                .find_map(|k| input.get(*k).and_then(Value::as_str).map(|t| (t, *k)));
            let from_input =
                text.map(|(t, k)| (t.chars().count() as f64, format!("input.{k} length")));
            put(
                &mut usage,
                "characters",
                pick(from_input, "characters", 0.0),
            );
        }
        Pricing::PerUsage { field, .. } => {
            let from_input = first_number(input, &[field.as_str()]);
            put(&mut usage, field, pick(from_input, field, 1.0));
        }
    }
    let output: Option<executor_lifecycle::Output> =
        serde_json::from_value(serde_json::json!({"kind": "image"})).ok();
    let synthetic = ProviderResult {
        outputs: output.map(|o| vec![o; n_outputs]).unwrap_or_default(),
        usage: Value::Object(usage),
        raw: Value::Null,
    };
    let mut cost = compute(pricing, &synthetic);
    for line in &mut cost.lines {
        if let Some((_, src)) = sources.iter().find(|(k, _)| *k == line.source) {
            line.source = format!("estimate from {src}");
        } else {
            line.source = format!("estimate ({})", line.source);
        }
    }
    cost
}

/// The provider cost of a result.
pub fn compute(pricing: &Pricing, result: &ProviderResult) -> Cost {
    let u = &result.usage;
    let lines = match pricing {
        Pricing::PerToken {
            input_usd_per_million,
            output_usd_per_million,
            image_input_usd_per_million,
        } => {
            let mut lines = match image_input_usd_per_million {
                None => vec![line(
                    "input_token",
                    num(u, "input_tokens"),
                    input_usd_per_million / 1e6,
                    "usage.input_tokens",
                )],
                Some(image_price) => {
                    let image = num(u, "input_image_tokens");
                    // Without the split, every input token is a text token.
                    let (text, source) = match u.get("input_text_tokens").and_then(Value::as_f64) {
                        Some(t) => (t, "usage.input_text_tokens"),
                        None => (
                            (num(u, "input_tokens") - image).max(0.0),
                            "usage.input_tokens - usage.input_image_tokens",
                        ),
                    };
                    vec![
                        line(
                            "input_text_token",
                            text,
                            input_usd_per_million / 1e6,
                            source,
                        ),
                        line(
                            "input_image_token",
                            image,
                            image_price / 1e6,
                            "usage.input_image_tokens",
                        ),
                    ]
                }
            };
            lines.push(line(
                "output_token",
                num(u, "output_tokens"),
                output_usd_per_million / 1e6,
                "usage.output_tokens",
            ));
            lines
        }
        Pricing::PerOutput { usd_per_output } => {
            vec![line(
                "output",
                result.outputs.len() as f64,
                *usd_per_output,
                "outputs",
            )]
        }
        Pricing::PerSecond { usd_per_second } => {
            vec![line(
                "second",
                num(u, "predict_time"),
                *usd_per_second,
                "usage.predict_time",
            )]
        }
        Pricing::PerCredit {
            credits_per_second,
            usd_per_credit,
        } => {
            let seconds = num(u, "duration_seconds");
            vec![line(
                "credit",
                seconds * credits_per_second,
                *usd_per_credit,
                "usage.duration_seconds",
            )]
        }
        Pricing::PerCharacter { usd_per_thousand } => {
            vec![line(
                "character",
                num(u, "characters"),
                usd_per_thousand / 1000.0,
                "usage.characters",
            )]
        }
        Pricing::PerOutputCredits {
            credits_per_output,
            usd_per_credit,
        } => vec![line(
            "credit",
            result.outputs.len() as f64 * credits_per_output,
            *usd_per_credit,
            "outputs",
        )],
        Pricing::PerOutputSecond { usd_per_second } => vec![line(
            "output_second",
            num(u, "duration_seconds"),
            *usd_per_second,
            "usage.duration_seconds",
        )],
        Pricing::PerUsage {
            field,
            usd_per_unit,
        } => vec![line(
            field,
            num(u, field),
            *usd_per_unit,
            &format!("usage.{field}"),
        )],
    };
    Cost {
        provider_usd_micros: lines.iter().map(|l| l.amount_usd_micros).sum(),
        billable: false,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(usage: Value) -> ProviderResult {
        ProviderResult {
            outputs: vec![],
            usage,
            raw: Value::Null,
        }
    }

    #[test]
    fn image_input_tokens_are_priced_apart_when_the_bundle_says_so() {
        let split = Pricing::PerToken {
            input_usd_per_million: 5.0,
            output_usd_per_million: 40.0,
            image_input_usd_per_million: Some(10.0),
        };
        let usage = json!({"input_tokens": 1050, "input_text_tokens": 50, "input_image_tokens": 1000, "output_tokens": 100});
        let c = compute(&split, &result(usage.clone()));
        assert_eq!(c.provider_usd_micros, 250 + 10_000 + 4_000);
        // No split in the answer: every input token is a text token.
        let c = compute(
            &split,
            &result(json!({"input_tokens": 1050, "output_tokens": 100})),
        );
        assert_eq!(c.provider_usd_micros, 5_250 + 4_000);
        assert_eq!(
            c.lines[0].source,
            "usage.input_tokens - usage.input_image_tokens"
        );
        // A bundle without an image price prices all input alike.
        let flat = Pricing::PerToken {
            input_usd_per_million: 5.0,
            output_usd_per_million: 40.0,
            image_input_usd_per_million: None,
        };
        let c = compute(&flat, &result(usage));
        assert_eq!(c.provider_usd_micros, 5_250 + 4_000);
        assert_eq!(c.lines.len(), 2);
    }

    #[test]
    fn estimates_read_the_input_then_the_declared_usage_then_defaults() {
        let none = std::collections::BTreeMap::new();
        // Per output: `n` outputs.
        let p = Pricing::PerOutput {
            usd_per_output: 0.04,
        };
        let c = estimate(&p, &json!({"prompt": "x", "n": 3}), None, &none);
        assert_eq!(c.provider_usd_micros, 120_000);
        assert_eq!(c.lines[0].source, "estimate from input.n");
        assert_eq!(
            estimate(&p, &json!({"prompt": "x"}), None, &none).provider_usd_micros,
            40_000
        );
        // Credits per output second: the model's duration field, a string such as "8s" too.
        let p = Pricing::PerCredit {
            credits_per_second: 5.0,
            usd_per_credit: 0.01,
        };
        let c = estimate(&p, &json!({"length": "8s"}), Some("length"), &none);
        assert_eq!(c.provider_usd_micros, 400_000);
        assert_eq!(c.lines[0].source, "estimate from input.length");
        let c = estimate(&p, &json!({}), None, &none);
        assert_eq!(c.provider_usd_micros, 500_000, "10 s by default");
        assert_eq!(c.lines[0].source, "estimate from default duration_seconds");
        // A usage field: the input, else `estimate:`, else one unit.
        let p = Pricing::PerUsage {
            field: "audio_seconds".into(),
            usd_per_unit: 0.0001,
        };
        let typical = std::collections::BTreeMap::from([("audio_seconds".to_string(), 600.0)]);
        let c = estimate(&p, &json!({"audio": "https://x/a.mp3"}), None, &typical);
        assert_eq!(c.provider_usd_micros, 60_000);
        assert_eq!(c.lines[0].source, "estimate from estimate.audio_seconds");
        // Tokens: the text at 4 characters a token, the output limit asked for.
        let p = Pricing::PerToken {
            input_usd_per_million: 1.0,
            output_usd_per_million: 10.0,
            image_input_usd_per_million: None,
        };
        let input =
            json!({"messages": [{"role": "user", "content": "x".repeat(396)}], "max_tokens": 1000});
        let c = estimate(&p, &input, None, &none);
        // (396 + 4 for "user") / 4 = 100 input tokens, 1,000 output tokens.
        assert_eq!(c.provider_usd_micros, 100 + 10_000);
        let c = estimate(&p, &json!({"prompt": "hi"}), None, &none);
        assert_eq!(c.lines[1].quantity, DEFAULT_ESTIMATE_OUTPUT_TOKENS);
        // Characters: the text's length.
        let p = Pricing::PerCharacter {
            usd_per_thousand: 0.30,
        };
        let c = estimate(&p, &json!({"text": "a".repeat(2000)}), None, &none);
        assert_eq!(c.provider_usd_micros, 600_000);
    }
}
