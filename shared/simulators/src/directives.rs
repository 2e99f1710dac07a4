//! Fault directives embedded in requests. Every string of the request JSON is scanned for
//! tokens `sim:NAME` or `sim:NAME=VALUE` (for example inside a prompt), so bundles written for
//! the real providers can trigger deterministic faults without any simulator-specific field.
//! Unknown names are kept in [`Directives::unknown`] and otherwise ignored.

use serde_json::Value;

/// A fault that applies to the first `times` calls carrying the same token-bearing string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// How many calls get the fault before calls succeed again.
    pub times: u32,
    /// The full string that carried the token: counts are kept per (provider, key).
    pub key: String,
}

/// The create call sleeps before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hang {
    /// Sleep in milliseconds.
    pub ms: u64,
    /// `Some(key)` for `sim:hang_once`: only the first create with this string sleeps.
    pub once_key: Option<String>,
}

/// Everything the request asked the simulator to do to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `sim:rate_limit=N`: the first N creates get the provider's rate-limit error (a 429,
    /// with `Retry-After: 1` where the provider sends one; MiniMax: HTTP 200, code 1002).
    pub rate_limit: Option<Counted>,
    /// `sim:server_error=N`: the first N creates get the provider's 5xx (MiniMax: HTTP 200,
    /// code 1024).
    pub server_error: Option<Counted>,
    /// `sim:insufficient_quota`: the provider's out-of-credits answer on every create
    /// (OpenAI 429 `insufficient_quota`, Stability 402, ElevenLabs 401 `quota_exceeded`,
    /// MiniMax code 1008).
    pub insufficient_quota: bool,
    /// `sim:poll_error=N`: the first N status reads of the job get 503 (MiniMax: HTTP 200,
    /// code 1000).
    pub poll_error: u32,
    /// `sim:hang=MS` / `sim:hang_once=MS`.
    pub hang: Option<Hang>,
    /// `sim:hang_after_create=MS`: the job is created, then the answer is delayed (an
    /// ambiguous create when the client times out).
    pub hang_after_create_ms: Option<u64>,
    /// `sim:drop_after_create=N`: the first N creates carrying the string create the job and
    /// then close the connection without answering (what a load balancer dropping the
    /// connection looks like: the client sees the connection closed before any response).
    pub drop_after_create: Option<Counted>,
    /// `sim:error_after_create=STATUS`: the first create carrying the string creates the job,
    /// then a gateway in front of the provider answers STATUS (502, 504, 524) with its HTML
    /// error page.
    pub error_after_create: Option<u16>,
    /// `sim:duration=MS`: creation-to-terminal time of the job.
    pub duration_ms: Option<u64>,
    /// `sim:fail`: the job ends with the provider's realistic failure.
    pub fail: bool,
    /// `sim:fail_jobs=N` (fal, Replicate): the first N jobs created with this prompt end as
    /// `sim:fail` does, the later ones as the rest of the prompt says (a transient failure
    /// of the job that a second run does not meet: fal's `runner_disconnected`).
    pub fail_jobs: Option<Counted>,
    /// `sim:content_policy`: the provider's safety rejection.
    pub content_policy: bool,
    /// `sim:invalid`: the provider's input validation error.
    pub invalid: bool,
    /// `sim:empty_output`: success with an empty output.
    pub empty_output: bool,
    /// `sim:early_output`: Replicate shows the output while still `processing`.
    pub early_output: bool,
    /// `sim:null_error`: fal spells the absent error of a successful COMPLETED status as
    /// `"error": null, "error_type": null` instead of leaving the fields out (the official
    /// Python client types both `str | None`; fal's older webhook docs sent `"error": null`).
    pub null_error: bool,
    /// `sim:throttled`: Runway reports `THROTTLED` instead of `PENDING` while queued.
    pub throttled: bool,
    /// `sim:lose_callback`: never send webhooks for this job.
    pub lose_callback: bool,
    /// `sim:duplicate_callback`: send every webhook twice with the same id.
    pub duplicate_callback: bool,
    /// `sim:late_callback=MS`: delay every webhook delivery.
    pub late_callback_ms: Option<u64>,
    /// Tokens with unknown names, as written.
    pub unknown: Vec<String>,
}

impl Directives {
    /// [`Directives::scan`] as `provider`'s simulator reads a request. `sim:only=NAME` starts
    /// a section of a string whose directives only provider NAME's simulator follows (until
    /// the next `sim:only=`); directives before any section are everyone's. A test can so
    /// make one step of a fallback chain fail and the next, sent the same prompt, behave
    /// otherwise: `sim:only=bfl sim:empty_output sim:only=fal sim:duration=5000`.
    pub fn scan_as(body: &Value, provider: crate::provider::Provider) -> Directives {
        Directives::scan(&for_provider(body, provider.as_str()))
    }

    /// Scans every string in `body`, recursively.
    pub fn scan(body: &Value) -> Directives {
        let mut out = Directives::default();
        visit_strings(body, &mut |s| {
            for (name, value) in tokens(s) {
                out.apply(name, value, s);
            }
        });
        out
    }

    fn apply(&mut self, name: &str, value: Option<&str>, carrier: &str) {
        let number = value.and_then(|v| v.parse::<u64>().ok());
        let count = || u32::try_from(number.unwrap_or(1)).unwrap_or(u32::MAX);
        match name {
            "rate_limit" => {
                self.rate_limit = Some(Counted {
                    times: count(),
                    key: carrier.to_owned(),
                })
            }
            "server_error" => {
                self.server_error = Some(Counted {
                    times: count(),
                    key: carrier.to_owned(),
                })
            }
            "insufficient_quota" => self.insufficient_quota = true,
            "poll_error" => self.poll_error = count(),
            "hang" | "hang_once" => {
                self.hang = Some(Hang {
                    ms: number.unwrap_or(30_000),
                    once_key: (name == "hang_once").then(|| carrier.to_owned()),
                })
            }
            "hang_after_create" => self.hang_after_create_ms = Some(number.unwrap_or(30_000)),
            "drop_after_create" => {
                self.drop_after_create = Some(Counted {
                    times: count(),
                    key: carrier.to_owned(),
                })
            }
            "error_after_create" => {
                self.error_after_create = Some(
                    number
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| (500..600).contains(n))
                        .unwrap_or(502),
                )
            }
            "duration" => self.duration_ms = number,
            "fail" => self.fail = true,
            "fail_jobs" => {
                self.fail_jobs = Some(Counted {
                    times: count(),
                    key: carrier.to_owned(),
                })
            }
            "content_policy" => self.content_policy = true,
            "invalid" => self.invalid = true,
            "empty_output" => self.empty_output = true,
            "early_output" => self.early_output = true,
            "null_error" => self.null_error = true,
            "throttled" => self.throttled = true,
            "lose_callback" => self.lose_callback = true,
            "duplicate_callback" => self.duplicate_callback = true,
            "late_callback" => self.late_callback_ms = Some(number.unwrap_or(1000)),
            other => self.unknown.push(match value {
                Some(v) => format!("{other}={v}"),
                None => other.to_owned(),
            }),
        }
    }
}

impl Directives {
    /// A provider-specific directive kept in [`Directives::unknown`]: `Some(None)` for
    /// `sim:NAME`, `Some(Some(v))` for `sim:NAME=v`, `None` when absent. The directives only
    /// some providers know (`sim:aborted`, `sim:too_large`, `sim:model_loading=N`, …) are
    /// read this way, from the provider's own table.
    pub fn extra(&self, name: &str) -> Option<Option<&str>> {
        self.unknown.iter().find_map(|u| match u.split_once('=') {
            Some((n, v)) if n == name => Some(Some(v)),
            None if u == name => Some(None),
            _ => None,
        })
    }

    /// True when the provider-specific directive `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.extra(name).is_some()
    }
}

/// The `(name, value)` tokens in one string.
fn tokens(s: &str) -> Vec<(&str, Option<&str>)> {
    let mut found = Vec::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(pos) = rest.find("sim:") {
        let start = offset + pos;
        let boundary = s[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        let after = &s[start + 4..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..name_len];
        let mut consumed = name_len;
        let mut value = None;
        if let Some(tail) = after[name_len..].strip_prefix('=') {
            let len = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .unwrap_or(tail.len());
            value = Some(&tail[..len]);
            consumed += 1 + len;
        }
        if boundary && !name.is_empty() {
            found.push((name, value));
        }
        offset = start + 4 + consumed;
        rest = &s[offset..];
    }
    found
}

/// `body` with the `sim:` words of other providers' sections removed from every string.
fn for_provider(body: &Value, provider: &str) -> Value {
    match body {
        Value::String(text) if text.contains("sim:only=") => {
            let mut scope: Option<&str> = None;
            let kept: Vec<&str> = text
                .split_whitespace()
                .filter(|w| {
                    if let Some(p) = w.strip_prefix("sim:only=") {
                        scope = Some(p);
                        return false;
                    }
                    !w.starts_with("sim:") || scope.is_none_or(|p| p == provider)
                })
                .collect();
            Value::String(kept.join(" "))
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| for_provider(v, provider)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), for_provider(v, provider)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn visit_strings(value: &Value, f: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter().for_each(|v| visit_strings(v, f)),
        Value::Object(map) => map.values().for_each(|v| visit_strings(v, f)),
        _ => {}
    }
}

/// The string a create call is attributed to in the stats: the first `prompt`, `promptText`,
/// `prompt_text`, `text` or `content` string found depth-first, else the whole body as JSON.
pub fn prompt_key(body: &Value) -> String {
    const KEYS: [&str; 5] = ["prompt", "promptText", "prompt_text", "text", "content"];
    fn find<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
        match value {
            Value::Object(map) => map
                .get(key)
                .and_then(Value::as_str)
                .or_else(|| map.values().find_map(|v| find(v, key))),
            Value::Array(items) => items.iter().rev().find_map(|v| find(v, key)),
            _ => None,
        }
    }
    KEYS.iter()
        .find_map(|k| find(body, k))
        .map_or_else(|| body.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_tokens_in_nested_strings() {
        let body = json!({"input": {"prompt": "a cat sim:rate_limit=2, sim:fail", "n": 1},
                          "tags": ["x sim:late_callback=250"]});
        let d = Directives::scan(&body);
        let rl = d.rate_limit.unwrap();
        assert_eq!(rl.times, 2);
        assert_eq!(rl.key, "a cat sim:rate_limit=2, sim:fail");
        assert!(d.fail);
        assert_eq!(d.late_callback_ms, Some(250));
        assert!(!d.content_policy);
    }

    #[test]
    fn ignores_tokens_glued_to_words_and_keeps_unknown() {
        let d = Directives::scan(&json!("xsim:fail sim:bogus=3 sim:duration=10"));
        assert!(!d.fail);
        assert_eq!(d.unknown, vec!["bogus=3".to_owned()]);
        assert_eq!(d.extra("bogus"), Some(Some("3")));
        assert!(!d.has("bogu"));
        assert_eq!(d.duration_ms, Some(10));
    }

    #[test]
    fn prompt_key_prefers_prompt_fields() {
        assert_eq!(prompt_key(&json!({"input": {"prompt": "p"}})), "p");
        assert_eq!(prompt_key(&json!({"promptText": "r", "model": "m"})), "r");
        let chat = json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]});
        assert_eq!(prompt_key(&chat), "u");
    }
}

#[cfg(test)]
mod only_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::provider::Provider;

    #[test]
    fn sections_of_only_go_to_their_provider() {
        let body = serde_json::json!({"prompt": "a cat sim:fail sim:only=bfl sim:empty_output sim:only=fal sim:duration=5000"});
        let bfl = Directives::scan_as(&body, Provider::Bfl);
        assert!(bfl.fail && bfl.empty_output && bfl.duration_ms.is_none());
        let fal = Directives::scan_as(&body, Provider::Fal);
        assert!(fal.fail && !fal.empty_output && fal.duration_ms == Some(5000));
        let runway = Directives::scan_as(&body, Provider::Runway);
        assert!(runway.fail && !runway.empty_output && runway.duration_ms.is_none());
    }
}
