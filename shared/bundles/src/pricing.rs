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
        } => vec![
            line(
                "input_token",
                num(u, "input_tokens"),
                input_usd_per_million / 1e6,
                "usage.input_tokens",
            ),
            line(
                "output_token",
                num(u, "output_tokens"),
                output_usd_per_million / 1e6,
                "usage.output_tokens",
            ),
        ],
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
    };
    Cost {
        provider_usd_micros: lines.iter().map(|l| l.amount_usd_micros).sum(),
        billable: false,
        lines,
    }
}
