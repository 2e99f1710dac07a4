//! Entry points of the fuzz targets (fuzz/, cargo-fuzz) and of the stable smoke test that
//! replays mutated seeds through the same functions (tests/fuzz_smoke.rs): each takes
//! arbitrary bytes and must return, never panic.

use crate::adapters::{self, CallbackKeys};
use serde_json::{Value, json};

/// The bundle loader: a YAML bundle file's text, parsed and validated.
pub fn bundle_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::catalog::check_text(std::path::Path::new("fuzz.yaml"), text);
}

/// The expression and template engine: the first line is a template (or an expression), the
/// rest a JSON context.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (tpl, ctx) = text.split_once('\n').unwrap_or((text, ""));
    let ctx: Value = serde_json::from_str(ctx).unwrap_or_else(
        |_| json!({"input": {"prompt": "a cat", "n": 2, "list": [1, 2, 3]}, "job": {"id": "j"}}),
    );
    let _ = crate::template::check_syntax(tpl, false);
    let _ = crate::template::check_syntax(tpl, true);
    let _ = crate::template::render_str(tpl, &ctx);
    let _ = crate::template::eval(tpl, &ctx);
    let _ = crate::template::truthy(tpl, &ctx);
    let _ = crate::template::referenced_roots(tpl, false);
    let _ = crate::template::render_value(&json!({"k": tpl, "l": [tpl]}), &ctx);
}

/// The webhook verifiers: the bytes are split into headers (lines `name: value` up to an
/// empty line) and a body, and checked by Standard Webhooks (Replicate) and fal's Ed25519.
pub fn webhook_verify(data: &[u8]) {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(data.len());
    let head = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 2..).unwrap_or_default();
    let headers: Vec<(String, String)> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let _ = crate::standard_webhooks::verify(secret, &headers, body, 1_614_265_330);
    let keys = CallbackKeys {
        replicate_webhook_secret: Some(secret.to_string()),
        fal_public_keys: vec!["O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik".to_string()],
    };
    for name in ["replicate", "fal"] {
        if let Some(a) = adapters::by_name(name) {
            let _ = a.verify_callback(&keys, &headers, body, 1_614_265_330_000);
        }
    }
}
