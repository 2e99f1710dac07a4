//! Error rules as data: a provider file's `errors` table classifies the provider's error
//! answers and failed jobs, and the generated docs page prints the same table, so what the
//! documentation says and what the system does cannot drift apart.

use crate::format::{Bundle, ErrorFields, ErrorRule, RuleScope};
use crate::http::HttpResponse;
use executor_lifecycle::{ErrorClass, Failure};
use serde_json::Value;

/// The first string (or number, as text) at any of `pointers`.
pub fn first_text(body: &Value, pointers: &[String]) -> Option<String> {
    pointers.iter().find_map(|p| match body.pointer(p) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Array(a)) => a.iter().find_map(|x| match x {
            Value::String(s) => Some(s.clone()),
            Value::Object(_) => x["msg"]
                .as_str()
                .or(x["message"].as_str())
                .map(str::to_string),
            _ => None,
        }),
        _ => None,
    })
}

/// The provider's code and message of an error answer, by the declared pointers.
pub fn code_and_message(fields: &ErrorFields, body: &Value) -> (Option<String>, Option<String>) {
    (
        first_text(body, &fields.code),
        first_text(body, &fields.message),
    )
}

/// The first rule matching an error (status `None` for a failed job).
pub fn matching<'r>(
    rules: &'r [ErrorRule],
    status: Option<u16>,
    code: Option<&str>,
    message: Option<&str>,
) -> Option<&'r ErrorRule> {
    rules.iter().find(|r| {
        let scope_ok = match r.on {
            RuleScope::Any => true,
            RuleScope::Http => status.is_some(),
            RuleScope::Job => status.is_none(),
        };
        let status_ok = r.status.is_none_or(|s| Some(s) == status);
        let code_ok = r.code.as_deref().is_none_or(|c| Some(c) == code);
        let prefix_ok = r
            .code_prefix
            .as_deref()
            .is_none_or(|p| code.is_some_and(|c| c.starts_with(p)));
        let message_ok = r
            .message
            .as_deref()
            .is_none_or(|m| message.is_some_and(|x| x.to_lowercase().contains(&m.to_lowercase())));
        scope_ok && status_ok && code_ok && prefix_ok && message_ok
    })
}

/// Applies the bundle's rules to the failure an adapter made of an error answer: a matching
/// rule sets the class (and the provider code when the adapter found none). A rule that
/// changes the adapter's class to one other than `validation_error` drops the field the
/// adapter named (a 422 the rules call our configuration names no input field).
pub fn apply_http(bundle: &Bundle, resp: &HttpResponse, failure: Failure) -> Failure {
    classify_http(&bundle.error_fields, &bundle.errors, resp, failure)
}

/// [`apply_http`] with the error fields and rules given (a provider file's, in tests).
pub fn classify_http(
    fields: &ErrorFields,
    rules: &[ErrorRule],
    resp: &HttpResponse,
    mut failure: Failure,
) -> Failure {
    if rules.is_empty() {
        return failure;
    }
    let (code, message) = code_and_message(fields, &resp.body);
    let code = code.or_else(|| failure.provider_code.clone());
    let message = message.unwrap_or_else(|| failure.message.clone());
    if let Some(rule) = matching(rules, Some(resp.status), code.as_deref(), Some(&message))
        && let Some(class) = ErrorClass::parse(&rule.class)
    {
        if failure.class != class && class != ErrorClass::ValidationError {
            failure.field = None;
        }
        failure.class = class;
        if failure.provider_code.is_none() {
            failure.provider_code = code;
        }
    }
    failure
}

/// Applies the bundle's rules to a failed job's failure (its code and message as the adapter
/// read them).
pub fn apply_job(bundle: &Bundle, failure: Failure) -> Failure {
    classify_job(&bundle.errors, failure)
}

/// [`apply_job`] with the rules given.
pub fn classify_job(rules: &[ErrorRule], mut failure: Failure) -> Failure {
    if let Some(rule) = matching(
        rules,
        None,
        failure.provider_code.as_deref(),
        Some(&failure.message),
    ) && let Some(class) = ErrorClass::parse(&rule.class)
    {
        failure.class = class;
    }
    failure
}

/// Whether the rules say an answer of this status to a create call created nothing.
pub fn not_created(bundle: &Bundle, status: u16) -> bool {
    bundle
        .errors
        .iter()
        .any(|r| r.not_created && r.status == Some(status))
}

/// The rules as docs-table rows: (provider signal, class, note).
pub fn table(rules: &[ErrorRule]) -> Vec<(String, String, String)> {
    rules
        .iter()
        .map(|r| {
            let mut signal = Vec::new();
            match (r.status, r.on) {
                (Some(s), _) => signal.push(format!("HTTP {s}")),
                (None, RuleScope::Job) => signal.push("job failed".to_string()),
                (None, _) => {}
            }
            if let Some(c) = &r.code {
                signal.push(format!("code `{c}`"));
            }
            if let Some(c) = &r.code_prefix {
                signal.push(format!("code `{c}*`"));
            }
            if let Some(m) = &r.message {
                signal.push(format!("message contains \"{m}\""));
            }
            if signal.is_empty() {
                signal.push("any error".into());
            }
            let mut note = r.note.clone();
            if r.not_created {
                note = format!("{note} (nothing created: safe to submit again)")
                    .trim()
                    .to_string();
            }
            if let Some(s) = &r.source {
                note = format!("{note} [source]({s})").trim().to_string();
            }
            (signal.join(", "), r.class.clone(), note)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn rule(yaml: &str) -> ErrorRule {
        serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_first_matching_rule_wins_and_scopes_hold() {
        let rules = vec![
            rule("{status: 429, code: insufficient_quota, class: pipeline_configuration}"),
            rule("{status: 429, class: rate_limited}"),
            rule("{code_prefix: 'SAFETY.', on: job, class: content_policy}"),
            rule("{message: 'model is loading', class: provider_unavailable}"),
        ];
        let class = |s, c, m| matching(&rules, s, c, m).map(|r| r.class.as_str());
        assert_eq!(
            class(Some(429), Some("insufficient_quota"), None),
            Some("pipeline_configuration")
        );
        assert_eq!(class(Some(429), Some("other"), None), Some("rate_limited"));
        assert_eq!(
            class(None, Some("SAFETY.INPUT.TEXT"), None),
            Some("content_policy")
        );
        // A job-scoped rule does not classify an HTTP answer.
        assert_eq!(class(Some(400), Some("SAFETY.INPUT.TEXT"), None), None);
        assert_eq!(
            class(Some(503), None, Some("Model X is currently LOADING")),
            None
        );
        assert_eq!(
            class(Some(503), None, Some("Model is loading")),
            Some("provider_unavailable")
        );
    }

    #[test]
    fn pointers_read_strings_numbers_and_arrays() {
        let body = serde_json::json!({"error": {"code": 1102}, "errors": ["bad prompt"], "detail": [{"msg": "field required"}]});
        assert_eq!(
            first_text(&body, &["/error/code".into()]).as_deref(),
            Some("1102")
        );
        assert_eq!(
            first_text(&body, &["/nope".into(), "/errors".into()]).as_deref(),
            Some("bad prompt")
        );
        assert_eq!(
            first_text(&body, &["/detail".into()]).as_deref(),
            Some("field required")
        );
    }
}
