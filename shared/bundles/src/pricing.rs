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
}
